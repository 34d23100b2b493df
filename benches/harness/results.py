"""Collected outcomes of the runs and the statistics drawn from them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Cell:
    """What one (workload, variant, system, metric) came to over its repeats."""

    values: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    na: str | None = None
    capped: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


class Results:
    def __init__(self) -> None:
        self.outcomes: dict[tuple, list] = {}

    def add(self, workload: str, variant: str, system: str, outcome: dict) -> None:
        self.outcomes.setdefault((workload, variant, system), []).append(outcome)

    def cell(self, workload: str, variant: str, system: str, metric: str) -> Cell:
        cell = Cell()
        for outcome in self.outcomes.get((workload, variant, system), []):
            if "na" in outcome:
                cell.na = outcome["na"]
            elif "error" in outcome:
                cell.errors.append(outcome["error"])
            elif metric in outcome["metrics"]:
                cell.values.append(outcome["metrics"][metric])
                cell.capped = cell.capped or bool(outcome["metrics"].get("capped"))
            else:
                cell.errors.append(f"no '{metric}' in result")
        return cell

    def median(self, workload: str, variant: str, system: str, metric: str) -> float | None:
        return self.cell(workload, variant, system, metric).median

    def observed(self, workload: str, variant: str, system: str, metric: str) -> list:
        """Distinct values of a non-numeric field, e.g. exit codes."""
        seen = []
        for outcome in self.outcomes.get((workload, variant, system), []):
            value = outcome.get("metrics", {}).get(metric)
            if value is not None and value not in seen:
                seen.append(value)
        return seen

    def to_json(self) -> list:
        return [
            {"workload": w, "variant": v, "system": s, "runs": runs}
            for (w, v, s), runs in self.outcomes.items()
        ]


def ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom

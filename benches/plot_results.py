"""Draws docs/benchmarks.png from the figures in benches/RESULTS.md.

python benches/plot_results.py [--results benches/RESULTS.md] [--out docs/benchmarks.png]

Reads the medians of the tables the harness wrote (SQLite run beside huey and taskito 0.22,
the cross-process round trip beside Celery and RQ, PostgreSQL beside procrastinate and
pgqueuer) and plots each workload as bars on a log scale. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _number(cell: str) -> float | None:
    """The median of a cell such as '34,924 (27,117–38,898)' or '1.8 / 3.6 ms'."""
    m = re.match(r"\s*([0-9][0-9,]*\.?[0-9]*)", cell)
    return float(m.group(1).replace(",", "")) if m else None


def _tables(text: str) -> list[list[list[str]]]:
    tables, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _find(tables: list[list[list[str]]], header_start: list[str]) -> list[list[str]]:
    for table in tables:
        if table[0][: len(header_start)] == header_start:
            return table
    raise SystemExit(f"no table with header {header_start} in the results")


def figures(text: str) -> list[tuple[str, str, dict[str, float]]]:
    """(title, unit, {system: median}) for each plotted workload."""
    tables = _tables(text)
    main = _find(tables, ["#", "workload", "unit"])
    systems = main[0][3:6]
    names = {systems[0]: "huey", systems[1]: "taskito 0.22", systems[2]: "taskito"}
    out = []
    wanted = {
        "3": ("drain 5k no-op jobs, 4 workers", "jobs/s, higher is better"),
        "1": ("enqueue one by one", "jobs/s, higher is better"),
        "6": ("CLI worker end to end, 2k jobs", "jobs/s, higher is better"),
    }
    for row in main[1:]:
        if row[0] in wanted and row[2].startswith("jobs/s"):
            title, unit = wanted.pop(row[0])
            values = {names[s]: _number(v) for s, v in zip(systems, row[3:6])}
            out.append((title, unit, {k: v for k, v in values.items() if v is not None}))
    xproc = _find(tables, ["figure", "before", "after"])
    peers = xproc[0][2:]
    for row in xproc[1:]:
        if row[0].startswith("4c round trip p50"):
            values = {("taskito" if p == "after" else p.split(" (")[0]): _number(v)
                      for p, v in zip(peers, row[2:])}
            out.append(("round trip to a worker in another process, p50", "ms, lower is better",
                        {k: v for k, v in values.items() if v}))
    pg = _find(tables, ["workload", "taskito", "procrastinate", "pgqueuer"])
    for row in pg[1:]:
        if row[0].startswith("no-op drain of 20,000, 1 process"):
            values = {s: _number(v) for s, v in zip(pg[0][1:], row[1:])}
            out.append(("PostgreSQL: drain 20k no-op jobs, 1 process", "jobs/s, higher is better", values))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import math

    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    panels = figures(Path(args.results).read_text())
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.0 * len(panels)))
    for ax, (title, unit, values) in zip(axes, panels):
        labels = list(values)
        bars = ax.barh(labels, [values[k] for k in labels],
                       color=["#2f6db5" if k == "taskito" else "#b0b7c3" for k in labels])
        ax.set_xscale("log")
        ax.set_title(f"{title} ({unit}, log scale)", fontsize=10, loc="left")
        ax.invert_yaxis()
        for bar, label in zip(bars, labels):
            value = values[label]
            ax.text(value * 1.08, bar.get_y() + bar.get_height() / 2,
                    f"{value:,.0f}" if value >= 100 else f"{value:.3g}", va="center", fontsize=8)
        # Bars start at the decade below the smallest value, so their lengths compare fairly.
        ax.set_xlim(10 ** math.floor(math.log10(min(values.values()))), max(values.values()) * 8)
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

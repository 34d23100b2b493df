"""``retry_budget="N/s|m|h"``: a token bucket of N retries per period, shared by every job
of one task in every process (its state is one row of the shared settings store)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
#: Compare-and-set attempts before a contended bucket is treated as empty.
_MAX_ATTEMPTS = 32


def parse_retry_budget(spec: Any) -> tuple[int, float]:
    """``(retries, period_seconds)`` of a ``retry_budget``; ValueError naming it if bad."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f'retry_budget must look like "N/s", "N/m" or "N/h" with N >= 1, got {spec!r}')
    return int(match.group(1)), _PERIODS[match.group(2)]


class RetryBudget:
    """One task's bucket. ``take(core)`` spends one retry; False once the bucket is empty."""

    __slots__ = ("key", "capacity", "period")

    def __init__(self, task_name: str, spec: str) -> None:
        self.key = f"retry_budget:{task_name}"
        self.capacity, self.period = parse_retry_budget(spec)

    def take(self, core: Any) -> bool:
        rate = self.capacity / self.period
        for _ in range(_MAX_ATTEMPTS):
            now = time.time()
            stored = core.setting_get(self.key)
            if stored is None:
                tokens, version = float(self.capacity), 0
            else:
                state = _read(stored[0])
                elapsed = max(0.0, now - state["at"])
                tokens = min(float(self.capacity), state["tokens"] + elapsed * rate)
                version = stored[1]
            if tokens < 1.0:
                return False
            value = json.dumps({"tokens": tokens - 1.0, "at": now})
            if core.setting_put(self.key, value, version) is not None:
                return True
        return False


def _read(text: str) -> dict[str, float]:
    # The row is shared with other processes: anything unreadable counts as a full bucket
    # refilled now rather than breaking the task's failures.
    try:
        state = json.loads(text)
        return {"tokens": float(state["tokens"]), "at": float(state["at"])}
    except (ValueError, TypeError, KeyError):
        return {"tokens": 0.0, "at": 0.0}

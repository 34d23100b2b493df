"""Small helpers shared by the drivers and the task modules.

Only the standard library is used, so the same file runs in every venv
(and in a bare interpreter pointed at the repo).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
from pathlib import Path

RESULT_PREFIX = "BENCH_RESULT "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Countdown:
    """Counts task executions; fires once `target` executions have happened.

    Task bodies call tick(). Reaching the target sets an in-process event
    and, when a marker path is given, creates that file so that another
    process can see it.
    """

    def __init__(self, target: int = 0, marker: str | None = None) -> None:
        self.target = target
        self.marker = marker
        self.event = threading.Event()
        self.count = 0
        self._count = itertools.count(1)

    def arm(self, target: int) -> None:
        self.target = target
        self.event.clear()
        self.count = 0
        self._count = itertools.count(1)

    def tick(self) -> None:
        self.count = count = next(self._count)
        if count == self.target:
            self.event.set()
            if self.marker:
                Path(self.marker).touch()


def emit(payload: dict) -> None:
    """Print the single result line the harness looks for."""
    print(RESULT_PREFIX + json.dumps(payload, sort_keys=True), flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def wait_until(predicate, timeout: float, interval: float = 0.001, alive=None) -> None:
    """Poll predicate() until it is true; raise TimeoutError or RuntimeError."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if alive is not None and not alive():
            raise RuntimeError("worker process exited early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:.0f}s")
        time.sleep(interval)


def process_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the live threads of a process, from /proc.

    Sums the nanosecond counters of /proc/PID/task/*/schedstat; falls back
    to utime + stime of /proc/PID/stat (10 ms ticks) where those are absent.
    """
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                    total_ns += int(handle.read().split()[0])
            except FileNotFoundError:
                continue  # the thread has just exited
        return total_ns / 1e9
    except (FileNotFoundError, PermissionError):
        pass
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # Counting from the state field: utime is the 12th, stime the 13th.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_peak_rss_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM not found")

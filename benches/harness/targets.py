"""The targets ours must meet, each computed from the medians of one run."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from harness.results import Results, ratio

AT_LEAST, AT_MOST, BELOW = (">=", operator.ge), ("<=", operator.le), ("<", operator.lt)


@dataclass(frozen=True)
class Target:
    text: str
    workload: str
    variant: str
    metric: str
    compare: tuple
    limit: float
    peer: str | None = None  # ours divided by this system's median
    base_variant: str | None = None  # ours divided by ours on this variant
    unit: str = "×"

    def measure(self, results: Results) -> float | None:
        mine = results.median(self.workload, self.variant, "ours", self.metric)
        if self.peer:
            return ratio(mine, results.median(self.workload, self.variant, self.peer, self.metric))
        if self.base_variant:
            return ratio(mine, results.median(self.workload, self.base_variant, "ours", self.metric))
        return mine

    def met(self, value: float | None) -> bool | None:
        return None if value is None else self.compare[1](value, self.limit)


TARGETS = (
    Target("drain, 4 workers: at least 5× huey", "drain", "", "jobs_per_s", AT_LEAST, 5, peer="huey"),
    Target(
        "enqueue one by one: at least 2× taskito 0.22",
        "enqueue",
        "",
        "jobs_per_s",
        AT_LEAST,
        2,
        peer="taskito022",
    ),
    Target(
        "batch enqueue: at least 3× taskito 0.22", "batch", "", "jobs_per_s", AT_LEAST, 3, peer="taskito022"
    ),
    Target("round trip, same process: p50 at most 2 ms", "rt_inproc", "", "p50_ms", AT_MOST, 2, unit=" ms"),
    Target("round trip, same process: p99 at most 10 ms", "rt_inproc", "", "p99_ms", AT_MOST, 10, unit=" ms"),
    Target(
        "round trip, other process: p50 below the 50 ms poll interval",
        "rt_xproc",
        "",
        "p50_ms",
        BELOW,
        50,
        unit=" ms",
    ),
    Target("io-bound efficiency at least 0.95", "io", "", "efficiency", AT_LEAST, 0.95, unit=""),
    Target("CLI end to end: at least 3× huey", "cli", "", "jobs_per_s", AT_LEAST, 3, peer="huey"),
    Target(
        "drain with 1M queued: at least 0.8× the rate with 10k queued",
        "backlog",
        "big",
        "jobs_per_s",
        AT_LEAST,
        0.8,
        base_variant="small",
    ),
    Target(
        "round trip to a CLI worker: p50 at most 0.5× Celery on Redis",
        "rt_cli",
        "",
        "p50_ms",
        AT_MOST,
        0.5,
        peer="celery",
    ),
    Target(
        "round trip to a CLI worker: p50 at most 0.5× RQ on Redis",
        "rt_cli",
        "",
        "p50_ms",
        AT_MOST,
        0.5,
        peer="rq",
    ),
    Target(
        "round trip to a CLI worker: p99 at most Celery's", "rt_cli", "", "p99_ms", AT_MOST, 1, peer="celery"
    ),
    Target("round trip to a CLI worker: p99 at most RQ's", "rt_cli", "", "p99_ms", AT_MOST, 1, peer="rq"),
    Target("idle worker: at most 0.3% of a core", "idle", "", "pct_core", AT_MOST, 0.3, unit=" %"),
)

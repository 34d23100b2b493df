"""The workload table: driver arguments (full and --quick) and what to report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # key in the driver's JSON result
    label: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    full: dict
    quick: dict


@dataclass(frozen=True)
class Workload:
    key: str
    number: str
    title: str
    variants: tuple
    metrics: tuple
    timeout: int  # seconds for one full-size run; --quick runs get QUICK_TIMEOUT

    def args(self, variant: Variant, quick: bool) -> dict:
        return dict(variant.quick if quick else variant.full)

    def describe(self, variant: Variant, quick: bool) -> str:
        """Title with the sizes of this mode filled in."""
        sizes = {k: short(v) for k, v in self.args(variant, quick).items()}
        text = self.title.format(**sizes)
        return f"{text}: {variant.label.format(**sizes)}" if variant.label else text


def short(value) -> str:
    if isinstance(value, (int, float)) and value >= 1000 and value % 1000 == 0:
        return f"{value / 1_000_000:g}M" if value % 1_000_000 == 0 else f"{value / 1000:g}k"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


QUICK_TIMEOUT = 60
RATE = Metric("jobs_per_s", "jobs/s", "jobs/s", True)
P50 = Metric("p50_ms", "p50", "ms", False)
P99 = Metric("p99_ms", "p99", "ms", False)


def one(full: dict, quick: dict) -> tuple:
    return (Variant("", "", full, quick),)


WORKLOADS = (
    Workload(
        "enqueue", "1", "enqueue one by one, {jobs} jobs", one({"jobs": 5000}, {"jobs": 300}), (RATE,), 600
    ),
    Workload("batch", "2", "batch enqueue, {jobs} jobs", one({"jobs": 5000}, {"jobs": 1000}), (RATE,), 600),
    Workload(
        "drain",
        "3",
        "drain {jobs} queued no-op jobs, {workers} workers",
        one({"jobs": 5000, "workers": 4}, {"jobs": 200, "workers": 4}),
        (RATE,),
        1200,
    ),
    Workload(
        "rt_inproc",
        "4a",
        "round trip, worker in the same process, {jobs} jobs",
        one({"jobs": 200, "workers": 4}, {"jobs": 20, "workers": 4}),
        (P50, P99),
        600,
    ),
    Workload(
        "rt_xproc",
        "4b",
        "round trip, worker in another process, {jobs} jobs",
        one({"jobs": 200, "workers": 4}, {"jobs": 20, "workers": 4}),
        (P50, P99),
        600,
    ),
    Workload(
        "rt_cli",
        "4c",
        "round trip to a CLI worker in another process, 0-{think_ms} ms think time, {jobs} jobs",
        one({"jobs": 200, "workers": 4, "think_ms": 50}, {"jobs": 20, "workers": 4, "think_ms": 50}),
        (P50, P99),
        600,
    ),
    Workload(
        "io",
        "5",
        "{jobs} jobs sleeping {sleep_ms} ms, {workers} workers",
        one({"jobs": 400, "workers": 16, "sleep_ms": 20}, {"jobs": 160, "workers": 16, "sleep_ms": 20}),
        (Metric("efficiency", "efficiency", "ideal/actual", True),),
        600,
    ),
    Workload(
        "cli",
        "6",
        "CLI worker end to end, {jobs} jobs",
        one({"jobs": 2000, "workers": 4}, {"jobs": 200, "workers": 4}),
        (RATE, Metric("wall_s", "wall time", "s", False)),
        1200,
    ),
    Workload(
        "backlog",
        "7",
        "drain rate",
        (
            Variant(
                "small",
                "{queued} queued, first {jobs}",
                {"queued": 10_000, "jobs": 10_000, "seconds": 60, "workers": 4},
                {"queued": 2_000, "jobs": 300, "seconds": 2, "workers": 4},
            ),
            Variant(
                "big",
                "{queued} queued, first {jobs}",
                {"queued": 1_000_000, "jobs": 10_000, "seconds": 60, "workers": 4},
                {"queued": 20_000, "jobs": 300, "seconds": 2, "workers": 4},
            ),
        ),
        (RATE,),
        1800,
    ),
    Workload(
        "idle",
        "8",
        "CPU of an idle worker process over {seconds} s",
        one({"seconds": 30, "workers": 4}, {"seconds": 1, "workers": 4}),
        (Metric("pct_core", "CPU", "% of a core", False),),
        300,
    ),
    Workload(
        "rss",
        "9",
        "peak RSS of a worker draining {jobs}",
        one({"jobs": 100_000, "workers": 4, "seconds": 120}, {"jobs": 200, "workers": 4, "seconds": 5}),
        (Metric("peak_rss_mb", "peak RSS", "MiB", False),),
        1200,
    ),
)
BY_KEY = {w.key: w for w in WORKLOADS}

"""Prometheus metrics as 0.22 names them (``pip install taskito[metrics]``).

``PrometheusMiddleware`` counts the runs of this process's workers; the
``PrometheusStatsCollector`` thread polls the queue's database for depths, dead letters and
worker utilization; ``start_metrics_server`` serves the default registry. Metric objects are
made once per namespace and shared by every middleware and collector using it. (For a
registry of one queue's own, read from the database at scrape time, see ``taskito.metrics``.)
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from taskito.contrib._filtering import FilteredMiddleware

__all__ = ["PrometheusMiddleware", "PrometheusStatsCollector", "start_metrics_server", "METRIC_GROUPS"]

METRIC_GROUPS = ("jobs", "queue", "resource", "proxy", "intercept")
"""Groups ``disabled_metrics`` may name. This build has no resource, proxy or interception
layers, so those groups have no metrics to disable."""

_metrics_lock = threading.Lock()
_by_namespace: dict[str, dict[str, Any]] = {}


def _check_disabled(disabled: Any) -> frozenset[str]:
    groups = frozenset(disabled or ())
    unknown = sorted(groups - set(METRIC_GROUPS))
    if unknown:
        raise ValueError(f"disabled_metrics must name groups of {', '.join(METRIC_GROUPS)}, got {unknown}")
    return groups


def _metrics(namespace: str) -> dict[str, Any]:
    """The metric objects of one namespace, made on first use."""
    if not isinstance(namespace, str) or not namespace.isidentifier():
        raise ValueError(f"namespace must be a Prometheus name (letters, digits, _), got {namespace!r}")
    with _metrics_lock:
        found = _by_namespace.get(namespace)
        if found is None:
            found = {
                "jobs": Counter(f"{namespace}_jobs", "Jobs run, by task and status", ["task", "status"]),
                "duration": Histogram(f"{namespace}_job_duration_seconds", "Run time of jobs", ["task"]),
                "active": Gauge(f"{namespace}_active_workers", "Jobs running now in this process"),
                "retries": Counter(f"{namespace}_retries", "Retries scheduled, by task", ["task"]),
                "depth": Gauge(f"{namespace}_queue_depth", "Pending jobs per queue", ["queue"]),
                "dlq": Gauge(f"{namespace}_dlq_size", "Dead letters"),
                "utilization": Gauge(
                    f"{namespace}_worker_utilization",
                    "Running jobs per live worker process serving the queue",
                    ["queue"],
                ),
            }
            _by_namespace[namespace] = found
    return found


class PrometheusMiddleware(FilteredMiddleware):
    """Counts runs: ``<ns>_jobs_total{task,status=completed|failed}``,
    ``<ns>_job_duration_seconds{task}``, ``<ns>_active_workers``, ``<ns>_retries_total{task}``.
    ``extra_labels_fn`` is accepted and unused, as in 0.22."""

    def __init__(
        self,
        *,
        namespace: str = "taskito",
        extra_labels_fn: Callable[[Any], dict[str, str]] | None = None,
        disabled_metrics: Any = None,
        task_filter: Callable[[str], bool] | None = None,
        predicate: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(task_filter=task_filter, predicate=predicate)
        self.namespace = namespace
        self.extra_labels_fn = extra_labels_fn
        self.disabled_metrics = _check_disabled(disabled_metrics)
        self._m = _metrics(namespace)
        self._started: dict[str, float] = {}

    def before(self, ctx: Any) -> None:
        if "jobs" in self.disabled_metrics or not self.applies(ctx.task_name, ctx):
            return
        self._started[ctx.id] = time.perf_counter()
        self._m["active"].inc()

    def after(self, ctx: Any, result: Any, error: BaseException | None) -> None:
        started = self._started.pop(ctx.id, None)
        if started is None:
            return
        self._m["active"].dec()
        self._m["duration"].labels(ctx.task_name).observe(time.perf_counter() - started)
        self._m["jobs"].labels(ctx.task_name, "completed" if error is None else "failed").inc()

    def on_retry(self, ctx: Any, error: BaseException, retry_count: int) -> None:
        if "jobs" not in self.disabled_metrics and self.applies(ctx.task_name, ctx):
            self._m["retries"].labels(ctx.task_name).inc()


class PrometheusStatsCollector:
    """Polls the queue every ``interval`` seconds into ``<ns>_queue_depth{queue}``,
    ``<ns>_dlq_size`` and ``<ns>_worker_utilization{queue}``."""

    def __init__(
        self, queue: Any, interval: float = 10.0, *, namespace: str = "taskito", disabled_metrics: Any = None
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.queue = queue
        self.interval = float(interval)
        self.namespace = namespace
        self.disabled_metrics = _check_disabled(disabled_metrics)
        self._m = _metrics(namespace)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def collect_once(self) -> None:
        """One poll of the database."""
        if "queue" in self.disabled_metrics:
            return
        per_queue = self.queue.stats_all_queues()
        live = [w for w in self.queue.workers() if w.get("status") == "active"]
        for name, counts in per_queue.items():
            serving = sum(1 for w in live if name in str(w.get("queues") or "").split(","))
            self._m["depth"].labels(name).set(counts["pending"])
            self._m["utilization"].labels(name).set(counts["running"] / serving if serving else 0.0)
        self._m["dlq"].set(self.queue.stats()["dead"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.collect_once()
            except Exception:
                pass  # a database that is briefly out of reach is polled again next time
            self._stop.wait(self.interval)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="taskito-prometheus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None


def start_metrics_server(port: int = 9090, addr: str = "127.0.0.1") -> Any:
    """Serves the default registry's ``/metrics`` on ``addr:port`` from a background thread."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server

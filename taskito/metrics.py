"""Prometheus metrics (``pip install 'taskito[metrics]'``).

Families:

- ``taskito_queue_jobs{queue,status}``: jobs per queue and status, read from the database
  at scrape time (so every process reports the same numbers);
- ``taskito_workers_alive``: registered workers whose status is ``active``;
- ``taskito_jobs_processed_total{queue,task,outcome}``: jobs this worker process ran, by
  outcome (``complete retry failed dead cancelled``);
- ``taskito_job_duration_seconds{queue,task}``: how long those runs took.

The last two are counted in the worker process, and only when metrics are enabled for its
queue (``taskito worker --metrics-port``, or ``serve``/``Metrics.attach`` in code): a worker
without metrics runs the unwrapped dispatch function. With ``--pool prefork`` the children
run the jobs and tell the parent each outcome and run time over their pipe: the parent
counts them, once, with the same labels. Labels are task and queue names, never job ids,
and only names this process knows (its registered tasks, their queues and ``default``):
any other task or queue counts under ``OTHER``, so whoever can enqueue cannot grow the
number of series without limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("taskito.metrics needs prometheus_client: pip install 'taskito[metrics]'") from exc

if TYPE_CHECKING:
    from taskito.app import Queue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("complete", "retry", "failed", "dead", "cancelled")
_STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")
# The label value of every task and queue this process does not know.
OTHER = "_other"


def known_queues(queue: Queue) -> set[str]:
    """The queue names that get a label of their own."""
    names = {"default"}
    names.update(t.queue_name for t in list(queue._tasks.values()))
    names.update(getattr(queue, "_max_pending", None) or ())
    return names


def task_label(queue: Queue, task_name: str) -> str:
    return task_name if task_name in queue._tasks else OTHER


def queue_label(queue: Queue, queue_name: str) -> str:
    return queue_name if queue_name in known_queues(queue) else OTHER


class DatabaseCollector(Collector):
    """Reads job counts and live workers from the queue's database at each scrape."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "taskito_queue_jobs", "Jobs in the database by queue and status", labels=["queue", "status"]
        )
        known = known_queues(self._queue)
        merged: dict[str, dict[str, int]] = {}
        for name, counts in self._queue.stats_all_queues().items():
            into = merged.setdefault(name if name in known else OTHER, dict.fromkeys(_STATUSES, 0))
            for status in _STATUSES:
                into[status] += counts[status]
        for name, counts in sorted(merged.items()):
            for status in _STATUSES:
                jobs.add_metric([name, status], counts[status])
        yield jobs
        alive = sum(1 for w in self._queue.workers() if w["status"] == "active")
        yield GaugeMetricFamily("taskito_workers_alive", "Worker processes alive (heartbeating)", value=alive)


def outcome_of(answer: tuple, retry_count: int, max_retries: int) -> str:
    """The outcome of one run, from the dispatch answer and the job's retry budget (the
    engine retries a retryable failure while ``retry_count < max_retries``)."""
    if answer[0]:
        return "complete"
    error, retryable = answer[1], answer[3]
    if isinstance(error, str) and error.startswith("TaskCancelledError"):
        return "cancelled"
    if not retryable:
        return "failed"
    return "retry" if retry_count < max_retries else "dead"


class Metrics:
    """The metric families of one queue, in their own registry."""

    def __init__(self, queue: Queue, registry: CollectorRegistry | None = None) -> None:
        self.queue = queue
        self.registry = registry if registry is not None else CollectorRegistry()
        self.processed = Counter(
            "taskito_jobs_processed",
            "Jobs run by this worker process, by outcome",
            ["queue", "task", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "taskito_job_duration_seconds",
            "Run time of jobs in this worker process",
            ["queue", "task"],
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(queue))

    def attach(self) -> Metrics:
        """Counts the jobs this queue's workers run in this process from now on."""
        self.queue._metrics = self
        return self

    def count(self, queue_name: str, task_name: str, outcome: str, seconds: float) -> None:
        """Counts one run; never raises (metrics never fail a job)."""
        try:
            q, t = queue_label(self.queue, queue_name), task_label(self.queue, task_name)
            self.processed.labels(q, t, outcome).inc()
            self.duration.labels(q, t).observe(seconds)
        except Exception:
            pass

    def observe(
        self,
        task_name: str,
        queue_name: str,
        retry_count: int,
        max_retries: int,
        ok: bool,
        error: str | None,
        retryable: bool,
        seconds: float,
    ) -> None:
        """Counts a job a prefork child ran, as its parent is told it: the outcome and the
        child's own timing of the run."""
        answer = (True, b"") if ok else (False, error, "", retryable)
        self.count(queue_name, task_name, outcome_of(answer, retry_count, max_retries), seconds)

    def wrap_dispatch(self, dispatch: Callable[..., tuple]) -> Callable[..., tuple]:
        """The dispatch function, timed and counted."""
        count = self.count
        clock = time.perf_counter

        def counted(
            task_name: str,
            payload: bytes,
            job_id: str,
            queue_name: str,
            retry_count: int,
            max_retries: int,
            worker_id: str,
            *parents: Any,
        ) -> tuple:
            start = clock()
            # `parents`: a canvas step's predecessor results, passed through untouched.
            answer = dispatch(
                task_name, payload, job_id, queue_name, retry_count, max_retries, worker_id, *parents
            )
            count(queue_name, task_name, outcome_of(answer, retry_count, max_retries), clock() - start)
            return answer

        return counted

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serves ``/metrics`` on ``host:port`` from a background thread; returns the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


def serve(queue: Queue, port: int, host: str = "127.0.0.1") -> Metrics:
    """Enables metrics for ``queue``'s workers in this process and serves them on
    ``host:port`` (``/metrics``)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"metrics port must be an integer from 0 to 65535, got {port!r}")
    metrics = Metrics(queue).attach()
    metrics.serve(port, host)
    return metrics

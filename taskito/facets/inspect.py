"""The read side of ``Queue``: jobs, counts, errors, dead letters and workers. Every call
reads the database afresh through the engine."""

from __future__ import annotations

import time
from typing import Any

from taskito._settings import check_int, check_seconds
from taskito.events import EventType
from taskito.facets.base import QueueState
from taskito.result import JobResult

_STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")


def job_of(queue: Any, row: dict[str, Any]) -> JobResult:
    """A ``JobResult`` that shows the row it was listed with until refreshed."""
    job = JobResult(queue, row["id"])
    job._snapshot = row
    return job


def text_filters(
    metadata_like: Any, error_like: Any, created_after: Any, created_before: Any
) -> dict[str, Any]:
    """The checked extra filters of ``list_jobs_filtered`` as engine keyword arguments."""
    out: dict[str, Any] = {}
    for name, pattern in (("metadata_like", metadata_like), ("error_like", error_like)):
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"{name} must be a string pattern, got {pattern!r}")
        out[name] = pattern
    for name, at in (("created_after", created_after), ("created_before", created_before)):
        if at is not None:
            finite = isinstance(at, (int, float)) and not isinstance(at, bool) and abs(at) < float("inf")
            if not finite:
                raise ValueError(f"{name} must be epoch milliseconds (a finite number), got {at!r}")
            # Past any clock either way: clamp so the engine's 64-bit integer never overflows.
            at = int(max(-(2**62), min(2**62, at)))
        out[name] = at
    return out


class Inspection(QueueState):
    """Inspection and clean-up calls of ``Queue`` (``self._inner`` is the engine)."""

    def get_job(self, job_id: str) -> JobResult | None:
        """The job with this id, or None."""
        return self._job(job_id) if self._inner.get_job(job_id) is not None else None

    def list_jobs(
        self,
        status: str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        worker_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobResult]:
        """Jobs matching every filter given, oldest first. ``worker_id`` matches a worker
        thread (``<worker_id>-<n>``) or a whole worker process."""
        rows = self._inner.list_jobs(status, queue, task_name, worker_id, limit, offset)
        return [job_of(self, row) for row in rows]

    def list_jobs_filtered(
        self,
        status: str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        metadata_like: str | None = None,
        error_like: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobResult]:
        """``list_jobs`` plus ``metadata_like``/``error_like`` (a ``LIKE`` pattern found
        anywhere in the metadata or the last error: ``%`` and ``_`` are wildcards, ASCII
        case-insensitive) and ``created_after``/``created_before`` (epoch milliseconds, like
        ``created_at`` in ``JobResult.to_dict()``; both exclusive). Oldest first, like ``list_jobs``."""
        rows = self._inner.list_jobs(
            status,
            queue,
            task_name,
            None,
            check_int("limit", limit, minimum=0),
            check_int("offset", offset, minimum=0),
            **text_filters(metadata_like, error_like, created_after, created_before),
        )
        return [job_of(self, row) for row in rows]

    def stats(self, queue: str | None = None) -> dict[str, int]:
        """Job counts by status (all six keys), for one queue or all."""
        out = dict.fromkeys(_STATUSES, 0)
        for q, status, n in self._inner.counts():
            if queue is None or q == queue:
                out[status] += n
        return out

    def stats_all_queues(self) -> dict[str, dict[str, int]]:
        """``{queue: stats}`` for every queue that has jobs."""
        out: dict[str, dict[str, int]] = {}
        for q, status, n in self._inner.counts():
            out.setdefault(q, dict.fromkeys(_STATUSES, 0))[status] += n
        return out

    def info(self) -> dict[str, Any]:
        """An overview in one call: ``stats`` (counts over all queues), ``queues`` (per-queue
        counts plus ``oldest_pending_age``: how long, in seconds, the longest-waiting ready
        job has been ready (delayed jobs count from their scheduled time), or None) and
        ``workers`` (the registry rows of live workers)."""
        queues: dict[str, dict[str, Any]] = {
            q: {**s, "oldest_pending_age": None} for q, s in self.stats_all_queues().items()
        }
        now = time.time() * 1000
        for q, ready_since in self._inner.oldest_pending():
            queues.setdefault(q, {**dict.fromkeys(_STATUSES, 0), "oldest_pending_age": None})
            queues[q]["oldest_pending_age"] = max(0.0, (now - ready_since) / 1000)
        # An unhealthy worker (database refusing writes, threads stuck) is alive all the same.
        workers = [w for w in self.workers() if w["status"] in ("active", "unhealthy")]
        stats = dict.fromkeys(_STATUSES, 0)
        for counts in queues.values():
            for status in _STATUSES:
                stats[status] += counts[status]
        return {"stats": stats, "queues": queues, "workers": workers}

    def job_errors(self, job_id: str) -> list[dict[str, Any]]:
        """One dict per failed attempt: ``attempt, error, traceback, failed_at``."""
        return self._inner.job_errors(job_id)

    def cancel_job(self, job_id: str) -> bool:
        """Cancels a pending job; False if it is not pending (running, finished, unknown)."""
        cancelled: bool = self._inner.cancel_job(job_id)
        if cancelled and self._dispatcher is not None:
            job = self._inner.get_job(job_id)
            if job is not None:
                payload = {"job_id": job_id, "task_name": job["task_name"], "queue": job["queue"]}
                self._emit(EventType.JOB_CANCELLED, payload)
        return cancelled

    def dead_letters(self, limit: int = 10, offset: int = 0) -> list[dict[str, Any]]:
        """Jobs that failed for good, newest first."""
        limit, offset = check_int("limit", limit, minimum=0), check_int("offset", offset, minimum=0)
        return self._inner.dead_letters(limit, offset)

    def retry_dead(self, dead_id: str) -> str:
        """Enqueues a dead letter again (retry count reset); returns the new job id."""
        return self._inner.retry_dead(dead_id)

    def purge_dead(self, older_than: float = 86400) -> int:
        """Deletes dead letters older than ``older_than`` seconds; returns how many."""
        return self._inner.purge_dead(check_seconds("older_than", older_than))

    def purge_finished(self, older_than: float = 0) -> int:
        """Deletes finished jobs older than ``older_than`` seconds; returns how many."""
        return self._inner.purge_finished(check_seconds("older_than", older_than))

    def workers(self) -> list[dict[str, Any]]:
        """Registered worker processes (``status`` is ``"active"`` while alive, ``"unhealthy"``
        while alive but claiming nothing, then ``"stopped"`` or ``"dead"``)."""
        return self._inner.workers()

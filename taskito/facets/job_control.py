"""Operator calls on single jobs beyond inspection: dead-letter removal, requeueing a
running job, progress from outside a task."""

from __future__ import annotations

from typing import Any

from taskito.facets.base import QueueState


def _check_progress(progress: Any) -> int:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or progress != progress:
        raise ValueError(f"progress must be a number between 0 and 100, got {progress!r}")
    value = int(progress)
    if not 0 <= value <= 100:
        raise ValueError(f"progress must be between 0 and 100, got {progress!r}")
    return value


class JobControl(QueueState):
    """Single-job operations of ``Queue``."""

    def delete_dead(self, dead_id: str) -> bool:
        """Drops a dead letter for good; False if there is none with that id."""
        return self._inner.delete_dead(dead_id)

    def requeue_job(self, job_id: str) -> bool:
        """Moves a ``running`` job back to ``pending``: its claim ends (whatever its worker
        reports later is ignored), its retry count is kept. False if the job is missing or
        not running."""
        return self._inner.requeue_job(job_id)

    def update_progress(self, job_id: str, progress: int) -> None:
        """Sets a job's progress (0-100), as ``current_job.update_progress`` does inside it."""
        self._inner.update_progress(job_id, _check_progress(progress))

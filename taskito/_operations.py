"""Operator calls of ``Queue`` beyond inspection: dead-letter removal, requeueing a running
job, progress from outside a task, task logs, and the ``a``-prefixed asyncio twins of every
call that reads or changes stored jobs. Mixed into ``Queue``."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable

from taskito.context import LogLevel, log_level


def _check_progress(progress: Any) -> int:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or progress != progress:
        raise ValueError(f"progress must be a number between 0 and 100, got {progress!r}")
    value = int(progress)
    if not 0 <= value <= 100:
        raise ValueError(f"progress must be between 0 and 100, got {progress!r}")
    return value


def _log_row(row: dict[str, Any]) -> dict[str, Any]:
    extra = row.get("extra")
    return {**row, "extra": json.loads(extra) if extra else None}


class Operations:
    """Single-job operations and task logs (``self._inner`` is the engine)."""

    _inner: Any

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

    def task_logs(self, job_id: str) -> list[dict[str, Any]]:
        """The lines a job logged with ``current_job.log``, oldest first: dicts with
        ``job_id, task_name, level, message, extra, logged_at`` (epoch ms)."""
        return [_log_row(r) for r in self._inner.task_logs(job_id)]

    def query_logs(
        self,
        task_name: str | None = None,
        level: LogLevel | str | None = None,
        since: float = 3600,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Lines logged in the last ``since`` seconds, newest first, optionally of one task
        and one level."""
        name = None if level is None else log_level(level)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if isinstance(since, bool) or not isinstance(since, (int, float)):
            raise ValueError(f"since must be a number of seconds, got {since!r}")
        return [_log_row(r) for r in self._inner.query_logs(task_name, name, float(since), limit)]


def _twin(name: str) -> Callable[..., Any]:
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self, name)
        return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

    call.__name__ = f"a{name}"
    call.__qualname__ = f"AsyncOperations.a{name}"
    call.__doc__ = f"``{name}`` for asyncio: runs in a thread, off the event loop."
    return call


# Every call that reads or changes stored jobs, as ``a<name>``.
_TWINS = (
    "stats",
    "stats_all_queues",
    "info",
    "get_job",
    "list_jobs",
    "list_jobs_filtered",
    "job_errors",
    "cancel_job",
    "dead_letters",
    "delete_dead",
    "retry_dead",
    "purge_dead",
    "purge_finished",
    "requeue_job",
    "update_progress",
    "workers",
    "task_logs",
    "query_logs",
    "enqueue",
    "enqueue_many",
    "publish",
    "purge_completed",
    "archive",
    "list_archived",
    "list_archived_after",
    "dry_run_retention",
    "effective_retention",
    "list_periodic",
    "pause_periodic",
    "resume_periodic",
    "delete_periodic",
)


class AsyncOperations:
    """``astats``, ``aget_job``, ... : awaitable forms of the blocking calls."""


for _name in _TWINS:
    setattr(AsyncOperations, f"a{_name}", _twin(_name))

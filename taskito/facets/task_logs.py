"""Task logs: the lines jobs wrote with ``current_job.log``, read back by job or by query."""

from __future__ import annotations

import json
from typing import Any

from taskito.context import LogLevel, log_level
from taskito.facets.base import QueueState


def _log_row(row: dict[str, Any]) -> dict[str, Any]:
    extra = row.get("extra")
    return {**row, "extra": json.loads(extra) if extra else None}


class TaskLogs(QueueState):
    """``task_logs`` and ``query_logs`` of ``Queue``."""

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

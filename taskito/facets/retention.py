"""Retention, archive and purge calls of ``Queue`` (the windows themselves are
``taskito.retention``)."""

from __future__ import annotations

import math
from typing import Any

from taskito.facets.base import QueueState
from taskito.pagination import Page
from taskito.result import JobResult
from taskito.retention import _KINDS, EffectiveRetention, Retention, RetentionPreview, resolve


def _older_than(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"older_than must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _limit(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


class RetentionCalls(QueueState):
    """Retention, archive and purge calls of ``Queue`` (``self._inner`` is the engine)."""

    def dry_run_retention(self, retention: Retention | None = None) -> RetentionPreview:
        """Counts what a sweep with ``retention`` (default: this queue's) would delete now;
        deletes nothing."""
        if retention is None:
            windows, defaulted = self._retention, self._retention_defaulted
        else:
            windows, defaulted = resolve(retention, None)
        found, now = self._inner.retention_preview(windows._engine(defaulted))
        counts = dict(zip(_KINDS, found))
        return RetentionPreview(
            enabled=windows.enabled,
            defaulted=defaulted,
            namespace=None,
            reference_time=now,
            windows=windows.windows_ms(),
            counts=counts,
            total=sum(counts.values()),
        )

    def effective_retention(self) -> EffectiveRetention | None:
        """The windows of the last sweep any worker ran on this database; None before any."""
        report = self._inner.retention_report()
        if report is None:
            return None
        *windows, defaulted, reported_at = report
        by_kind = dict(zip(_KINDS, windows))
        return EffectiveRetention(
            enabled=any(w is not None for w in windows),
            defaulted=bool(defaulted),
            namespace=None,
            reported_at=reported_at,
            windows=by_kind,
        )

    def purge_completed(self, older_than: float = 86400) -> int:
        """Deletes complete jobs finished more than ``older_than`` seconds ago, with their
        errors and logs; returns how many jobs."""
        return self._inner.purge_completed(_older_than(older_than))

    def archive(self, older_than: float = 86400) -> int:
        """Moves finished jobs older than ``older_than`` seconds out of the jobs table into
        the archive (still readable by id, and with ``list_archived``); returns how many."""
        return self._inner.archive(_older_than(older_than))

    def list_archived(self, limit: int = 50, offset: int = 0) -> list[JobResult]:
        """Archived jobs, newest first."""
        rows = self._inner.list_archived(_limit("limit", limit), _limit("offset", offset))
        return [_job(self, row) for row in rows]

    def list_archived_after(self, limit: int = 50, after: str | None = None) -> Page[JobResult]:
        """One page of archived jobs, newest first; pass ``next_cursor`` back as ``after``."""
        limit = _limit("limit", limit)
        rows = self._inner.list_archived_after(limit + 1, after)
        items = [_job(self, row) for row in rows[:limit]]
        cursor = items[-1].id if len(rows) > limit and items else None
        return Page(items=items, next_cursor=cursor)


def _job(queue: Any, row: dict[str, Any]) -> JobResult:
    job = JobResult(queue, row["id"])
    job._snapshot = row
    return job

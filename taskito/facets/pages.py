"""The keyset listings of ``Queue`` (``list_jobs_after``, ``list_jobs_filtered_after``,
``dead_letters_after`` and their async twins), returning ``taskito.pagination.Page``.

A page ends with an opaque ``next_cursor``; pass it back as ``after=`` for the next page.
Each page is one indexed read that starts where the last one stopped (no OFFSET scan), so
paging stays fast at millions of rows, and jobs inserted meanwhile never make a page skip
or repeat a row.
"""

from __future__ import annotations

import asyncio
from typing import Any

from taskito.facets.base import QueueState
from taskito.facets.inspect import job_of, text_filters
from taskito.pagination import Page
from taskito.result import JobResult


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer, got {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    return limit


def _check_cursor(after: str | None) -> str | None:
    if after is not None and not isinstance(after, str):
        raise ValueError(f"after must be a cursor string from a previous page, got {after!r}")
    return after


class Pages(QueueState):
    """Keyset listings of ``Queue`` (``self._inner`` is the engine)."""

    def list_jobs_after(
        self,
        status: str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[JobResult]:
        """Jobs matching every filter given, newest first, one page at a time."""
        rows, cursor = self._inner.list_jobs_after(
            status, queue, task_name, _check_limit(limit), _check_cursor(after)
        )
        return Page(tuple(job_of(self, row) for row in rows), cursor)

    def list_jobs_filtered_after(
        self,
        status: str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        metadata_like: str | None = None,
        error_like: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[JobResult]:
        """``list_jobs_filtered``'s filters, newest first, one page at a time (see
        ``list_jobs_after``)."""
        rows, cursor = self._inner.list_jobs_after(
            status,
            queue,
            task_name,
            _check_limit(limit),
            _check_cursor(after),
            **text_filters(metadata_like, error_like, created_after, created_before),
        )
        return Page(tuple(job_of(self, row) for row in rows), cursor)

    def dead_letters_after(self, limit: int = 10, after: str | None = None) -> Page[dict[str, Any]]:
        """Dead letters, newest first, one page at a time."""
        rows, cursor = self._inner.dead_letters_after(_check_limit(limit), _check_cursor(after))
        return Page(tuple(rows), cursor)

    async def alist_jobs_after(
        self,
        status: str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[JobResult]:
        """``list_jobs_after`` run in a thread, off the event loop."""
        return await asyncio.to_thread(self.list_jobs_after, status, queue, task_name, limit, after)

    async def alist_jobs_filtered_after(self, *args: Any, **kwargs: Any) -> Page[JobResult]:
        """``list_jobs_filtered_after`` run in a thread, off the event loop."""
        return await asyncio.to_thread(self.list_jobs_filtered_after, *args, **kwargs)

    async def adead_letters_after(self, limit: int = 10, after: str | None = None) -> Page[dict[str, Any]]:
        """``dead_letters_after`` run in a thread, off the event loop."""
        return await asyncio.to_thread(self.dead_letters_after, limit, after)

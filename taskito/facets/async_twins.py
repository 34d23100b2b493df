"""The ``a``-prefixed asyncio twins of every ``Queue`` call that reads or changes stored
jobs: each runs the blocking call in a thread, off the event loop."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable


def _twin(name: str) -> Callable[..., Any]:
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self, name)
        return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

    call.__name__ = f"a{name}"
    call.__qualname__ = f"AsyncTwins.a{name}"
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


class AsyncTwins:
    """``astats``, ``aget_job``, ... : awaitable forms of the blocking calls."""


for _name in _TWINS:
    setattr(AsyncTwins, f"a{_name}", _twin(_name))

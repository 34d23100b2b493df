"""Periodic schedules: ``@queue.periodic(cron)`` and their management calls.

A decorated function is a task like any other; its schedule is stored in the database by
each worker that starts (so a schedule runs only while some worker runs). The workers' engine
fires each due time exactly once across every process on the file, and after downtime
enqueues one catch-up run, not one per missed time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from taskito._taskito import QueueCore


@dataclass(frozen=True)
class PeriodicInfo:
    """A stored schedule. ``last_run`` and ``next_run`` are epoch milliseconds (UTC), like
    every other time taskito reports; ``last_run`` is None until its first fire."""

    name: str
    task_name: str
    cron_expr: str
    queue: str
    enabled: bool
    last_run: int | None
    next_run: int
    timezone: str | None


# The name this class had before it took 0.22's.
PeriodicTask = PeriodicInfo


@dataclass(frozen=True)
class _Schedule:
    name: str
    task_name: str
    cron: str
    timezone: str
    args: tuple
    kwargs: dict
    queue: str


def next_run_time(cron: str, after: float | None = None, timezone: str | None = None) -> float | None:
    """The first time ``cron`` is due strictly after ``after`` (epoch seconds; default now),
    as epoch seconds, or None if it never is again. Raises ``ValueError`` for a bad cron
    expression or time zone."""
    after_ms = int((time.time() if after is None else after) * 1000)
    nxt = QueueCore.next_cron_time(cron, timezone, after_ms)
    return None if nxt is None else nxt / 1000.0

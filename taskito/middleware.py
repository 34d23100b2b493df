"""``TaskMiddleware``: code that wraps every job of a queue or of one task.

Subclass it and override the hooks you need; each is a no-op by default. Queue-level
middleware (``Queue(middleware=[...])``) runs first, then the task's own
(``@queue.task(middleware=[...])``), each list in order, for every hook. A hook that raises
is logged on the ``taskito`` logger and changes nothing else.

Order around one run: ``before`` of each middleware, the ``before_task`` hooks, the task,
``on_success``/``on_failure`` and ``after_task`` hooks, ``after`` of each middleware whose
``before`` did not raise, then the hook of how the run ended: ``on_timeout`` (the task hit its
timeout; then ``on_retry`` or ``on_dead_letter`` as well), ``on_cancel``, ``on_retry`` or
``on_dead_letter``. These last hooks run on the worker once the outcome is decided, just
before it is written to the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["TaskMiddleware"]

log = logging.getLogger("taskito")


class TaskMiddleware:
    """Base class of middleware; every hook does nothing unless overridden.

    ``predicate`` (a ``taskito.predicates.Predicate`` or a callable of a
    ``PredicateContext``) limits it to the jobs it allows: for any other job each hook of
    this middleware is skipped, ``on_enqueue`` included. A subclass may instead define
    ``task_filter(task_name) -> bool``; when both are given the predicate decides."""

    predicate: Any = None

    def __init__(self, *, predicate: Any = None) -> None:
        if predicate is not None:
            from taskito.predicates import coerce_predicate

            self.predicate = coerce_predicate(predicate)

    def on_enqueue(self, task_name: str, args: tuple, kwargs: dict, options: dict[str, Any]) -> None:
        """Before a job is stored. ``options`` (``priority delay queue max_retries timeout
        unique_key metadata``) may be edited in place; the edits apply to the job."""

    def before(self, ctx: Any) -> None:
        """Before the task body runs; ``ctx`` is ``current_job``."""

    def after(self, ctx: Any, result: Any, error: BaseException | None) -> None:
        """After the task body: ``error`` is None when it returned ``result``."""

    def on_retry(self, ctx: Any, error: BaseException, retry_count: int) -> None:
        """The run failed and the job will run again; ``retry_count`` is the coming retry's
        number (1 for the first retry)."""

    def on_dead_letter(self, ctx: Any, error: BaseException) -> None:
        """The run failed with no retries left: the job is dead-lettered."""

    def on_timeout(self, ctx: Any) -> None:
        """The run was stopped at its timeout."""

    def on_cancel(self, ctx: Any) -> None:
        """The run ended because the job was cancelled."""


def check_middleware(option: str, items: Iterable[Any] | None) -> tuple[TaskMiddleware, ...]:
    """The middleware list as a tuple, or ValueError naming the option and the bad item."""
    if items is None:
        return ()
    out = tuple(items)
    for m in out:
        if not isinstance(m, TaskMiddleware):
            raise ValueError(f"{option} items must be TaskMiddleware instances, got {m!r}")
    return out


def call_each(chain: Sequence[TaskMiddleware], hook: str, *args: Any) -> list[TaskMiddleware]:
    """Calls ``hook`` on each middleware in order; returns those whose call did not raise."""
    ok = []
    for m in chain:
        filtered = m.predicate is not None or getattr(m, "task_filter", None) is not None
        if filtered and not _allows(m, hook, args):
            continue
        try:
            getattr(m, hook)(*args)
        except Exception:
            log.exception("middleware %r raised in %s; the job is not affected", m, hook)
        else:
            ok.append(m)
    return ok


def _allows(m: TaskMiddleware, hook: str, args: tuple) -> bool:
    from taskito.predicates.gate import middleware_allows

    try:
        return middleware_allows(m, hook, args)
    except Exception:
        log.exception("the predicate of middleware %r raised; it is skipped for this call", m)
        return False

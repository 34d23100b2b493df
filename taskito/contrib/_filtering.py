"""Which jobs a contrib middleware looks at: ``task_filter(task_name)`` (0.22's) or
``predicate(ctx)``; when both are given the predicate decides."""

from __future__ import annotations

import logging
from typing import Any, Callable

from taskito.middleware import TaskMiddleware

log = logging.getLogger("taskito")


class EnqueueContext:
    """What a predicate sees at enqueue: no job yet (``job_id`` is None)."""

    __slots__ = ("task_name", "args", "kwargs", "job_id")

    def __init__(self, task_name: str, args: tuple, kwargs: dict) -> None:
        self.task_name = task_name
        self.args = args
        self.kwargs = kwargs
        self.job_id = None


class FilteredMiddleware(TaskMiddleware):
    """A middleware that applies only to the jobs its filter lets through."""

    def __init__(
        self,
        *,
        task_filter: Callable[[str], bool] | None = None,
        predicate: Callable[[Any], Any] | None = None,
    ) -> None:
        for option, value in (("task_filter", task_filter), ("predicate", predicate)):
            if value is not None and not callable(value):
                raise ValueError(f"{option} must be callable, got {value!r}")
        self.task_filter = task_filter
        self.predicate = predicate
        self.name = f"{type(self).__module__}.{type(self).__qualname__}"

    def applies(self, task_name: str, ctx: Any) -> bool:
        """Whether this job is one to look at; a filter that raises counts as no."""
        try:
            if self.predicate is not None:
                return bool(self.predicate(ctx))
            if self.task_filter is not None:
                return bool(self.task_filter(task_name))
        except Exception:
            log.exception("the filter of %s raised for %s; skipping the job", self.name, task_name)
            return False
        return True

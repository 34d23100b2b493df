"""Task and worker hooks: ``before_task``, ``on_success``, ``on_failure``, ``after_task``
(run by the worker around each job, see ``taskito.worker.dispatch``) and ``on_worker_start``,
``on_worker_stop`` (run once per worker run)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from taskito.facets.base import QueueState

log = logging.getLogger("taskito")

HOOK_KINDS = (
    "before_task",
    "on_success",
    "on_failure",
    "after_task",
    "on_worker_start",
    "on_worker_stop",
)


class Hooks(QueueState):
    """The hook decorators of ``Queue``."""

    def _hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self._hooks[kind].append(fn)
        return fn

    def before_task(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs)`` runs before each job."""
        return self._hook("before_task", fn)

    def on_success(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, result)`` runs after each job that returned."""
        return self._hook("on_success", fn)

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, error)`` runs after each job that raised."""
        return self._hook("on_failure", fn)

    def after_task(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, result, error)`` runs after every job, after
        ``on_success``/``on_failure``; ``error`` is None when the task returned ``result``."""
        return self._hook("after_task", fn)

    def on_worker_start(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn()`` runs once when a worker starts, before it takes a job."""
        return self._hook("on_worker_start", fn)

    def on_worker_stop(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn()`` runs once when a worker has stopped."""
        return self._hook("on_worker_stop", fn)

    def _worker_hooks(self, kind: str) -> None:
        for hook in self._hooks[kind]:
            try:
                hook()
            except Exception:
                log.exception("%s hook %r raised", kind, hook)

"""``current_job``: what a running task can learn about its own job."""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["current_job"]


class _JobContext:
    # A plain slotted class: built once per job on the hot path, so no dataclass machinery.
    __slots__ = ("id", "task_name", "queue_name", "retry_count", "worker_id", "core")

    def __init__(
        self, id: str, task_name: str, queue_name: str, retry_count: int, worker_id: str, core: Any
    ) -> None:
        self.id = id
        self.task_name = task_name
        self.queue_name = queue_name
        self.retry_count = retry_count
        self.worker_id = worker_id
        self.core = core


_current: contextvars.ContextVar[_JobContext | None] = contextvars.ContextVar(
    "taskito_current_job", default=None
)


def _enter(ctx: _JobContext) -> contextvars.Token:
    return _current.set(ctx)


def _leave(token: contextvars.Token) -> None:
    _current.reset(token)


class _CurrentJob:
    """Proxy to the job the calling task runs; outside a task every access raises."""

    def _ctx(self) -> _JobContext:
        ctx = _current.get()
        if ctx is None:
            raise RuntimeError("current_job is only available inside a running task")
        return ctx

    @property
    def id(self) -> str:
        return self._ctx().id

    @property
    def task_name(self) -> str:
        return self._ctx().task_name

    @property
    def queue_name(self) -> str:
        return self._ctx().queue_name

    @property
    def retry_count(self) -> int:
        return self._ctx().retry_count

    @property
    def worker_id(self) -> str:
        return self._ctx().worker_id

    def update_progress(self, percent: int | float) -> None:
        """Stores the job's progress (0-100), visible as ``JobResult.progress``."""
        ctx = self._ctx()
        value = int(percent)
        if not 0 <= value <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent!r}")
        ctx.core.update_progress(ctx.id, value)

    def __repr__(self) -> str:
        ctx = _current.get()
        return "<current_job: none>" if ctx is None else f"<current_job {ctx.id} {ctx.task_name}>"


current_job = _CurrentJob()

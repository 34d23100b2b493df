"""``current_job``: what a running task can learn about its own job."""

from __future__ import annotations

import contextvars
import enum
import json
import time
from typing import Any

__all__ = ["current_job", "LogLevel"]


class LogLevel(str, enum.Enum):
    """Levels of ``current_job.log``; ``RESULT`` marks a line that reports an outcome."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"
    RESULT = "RESULT"


def log_level(level: LogLevel | str) -> str:
    """The stored name of a level, or ValueError naming the bad one."""
    try:
        return LogLevel(level.upper() if isinstance(level, str) else level).value
    except ValueError:
        names = ", ".join(m.value for m in LogLevel)
        raise ValueError(f"unknown log level {level!r} (expected one of {names})") from None


class _JobContext:
    # A plain slotted class: built once per job on the hot path, so no dataclass machinery.
    # `soft_deadline` (monotonic seconds) is set only for a task with a `soft_timeout`;
    # `event_started` (perf_counter seconds) is set only while events are on.
    __slots__ = (
        "id", "task_name", "queue_name", "retry_count", "worker_id", "core", "soft_deadline", "event_started"
    )  # fmt: skip
    soft_deadline: float
    event_started: float

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

    def check_cancelled(self) -> None:
        """Raises ``TaskCancelledError`` if ``queue.cancel_running_job`` was called for
        this job; the job then ends ``cancelled``. Call it at safe points of a long task."""
        ctx = self._ctx()
        if ctx.core.cancel_requested(ctx.id):
            from taskito.exceptions import TaskCancelledError

            raise TaskCancelledError(f"job {ctx.id} was cancelled while running")

    def check_timeout(self) -> None:
        """Raises ``SoftTimeoutError`` once this attempt has run longer than its task's
        ``soft_timeout``; does nothing otherwise (or for a task without one). Cooperative:
        it fires only where the task calls it."""
        ctx = self._ctx()
        deadline = getattr(ctx, "soft_deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            from taskito.exceptions import SoftTimeoutError

            raise SoftTimeoutError(f"job {ctx.id} ({ctx.task_name}) ran past its soft timeout")

    def update_progress(self, percent: int | float) -> None:
        """Stores the job's progress (0-100), visible as ``JobResult.progress``."""
        ctx = self._ctx()
        if (
            isinstance(percent, bool)
            or not isinstance(percent, (int, float))
            or not -1e18 < percent < 1e18  # also false for NaN
        ):
            raise ValueError(f"progress must be a number between 0 and 100, got {percent!r}")
        value = int(percent)
        if not 0 <= value <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent!r}")
        ctx.core.update_progress(ctx.id, value)

    def log(self, message: str, level: LogLevel | str = LogLevel.INFO, extra: dict | None = None) -> None:
        """Stores a line about this job, read back with ``queue.task_logs(job_id)`` or
        ``queue.query_logs(...)``. ``extra`` is a JSON-serializable dict."""
        ctx = self._ctx()
        name = log_level(level)
        extra_json = None
        if extra is not None:
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be a dict, got {type(extra).__name__}")
            try:
                extra_json = json.dumps(extra, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"extra must be JSON-serializable: {exc}") from None
        ctx.core.write_task_log(ctx.id, ctx.task_name, name, str(message), extra_json)

    def __repr__(self) -> str:
        ctx = _current.get()
        return "<current_job: none>" if ctx is None else f"<current_job {ctx.id} {ctx.task_name}>"


current_job = _CurrentJob()

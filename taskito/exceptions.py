"""The exceptions taskito raises. Every one derives from :class:`TaskitoError`; where a
stdlib type is what users already catch, the class derives from it too."""

from __future__ import annotations

__all__ = [
    "TaskitoError",
    "TaskFailedError",
    "MaxRetriesExceededError",
    "TaskCancelledError",
    "TaskTimeoutError",
    "SoftTimeoutError",
    "CircuitBreakerOpenError",
    "RateLimitExceededError",
    "QueueError",
    "SerializationError",
    "CryptoError",
    "DatabaseError",
    "JobNotFoundError",
    "QueueFullError",
    "NotesValidationError",
    "PredicateRejectedError",
]


class TaskitoError(Exception):
    """Base class of every error taskito raises."""


class _JobError(TaskitoError):
    """A job that ended without a result. Carries what is known of its last error:
    ``job_id``, ``errtype`` (the exception's class name, or None), ``traceback`` (its lines,
    possibly empty) and ``raw_error`` (the stored error text, None if none was recorded)."""

    def __init__(
        self,
        message: str = "",
        *,
        job_id: str | None = None,
        errtype: str | None = None,
        traceback: list[str] | None = None,
        raw_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.errtype = errtype
        self.traceback: list[str] = list(traceback or [])
        self.raw_error = raw_error


class TaskFailedError(_JobError):
    """``JobResult.result()`` on a job that failed for good without being dead-lettered
    after retries (it raised with no retries left to try, or could not run at all)."""


class MaxRetriesExceededError(_JobError):
    """``JobResult.result()`` on a job that was dead-lettered after its retries. Not a
    ``TaskFailedError``: catch both, or ``TaskitoError``, to handle either."""


class TaskCancelledError(TaskitoError):
    """``JobResult.result()`` on a cancelled job."""


class TaskTimeoutError(TaskitoError, TimeoutError):
    """Raised inside a task that ran past its ``timeout``."""


class SoftTimeoutError(TaskitoError):
    """Raised by ``current_job.check_timeout()`` once the running attempt has run longer
    than its task's ``soft_timeout``."""


class CircuitBreakerOpenError(TaskitoError):
    """A task's circuit breaker is open: its jobs wait instead of running."""


class RateLimitExceededError(TaskitoError):
    """A task's rate limit has no token left for this run."""


class SerializationError(TaskitoError, TypeError):
    """Arguments or a result that cannot be serialized, or bytes that cannot be read back."""


class CryptoError(SerializationError):
    """Stored bytes whose signature did not verify or that did not decrypt: they were
    altered, or written with another key. Nothing reads them."""


class DatabaseError(TaskitoError):
    """The database cannot be used: bad path, foreign or damaged file, newer schema."""


class JobNotFoundError(TaskitoError, KeyError):
    """No job or dead letter has the given id. A ``KeyError`` (so a ``LookupError``) too."""

    def __str__(self) -> str:
        # KeyError shows its argument as a repr (quoted); the message reads better plain.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class QueueError(TaskitoError):
    """A queue refused an operation."""


class QueueFullError(QueueError):
    """An enqueue would take a queue past its ``max_pending``; nothing was stored."""


class NotesValidationError(TaskitoError, ValueError):
    """Job notes that break a limit of ``taskito.notes`` (the message names which)."""


class PredicateRejectedError(TaskitoError):
    """An enqueue refused by the task's predicate (a ``Cancel``, or False with
    ``on_false="cancel"``); nothing was stored. ``task_name`` and ``reason`` say which and why."""

    def __init__(self, task_name: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"task {task_name!r} was rejected by its predicate{detail}")
        self.task_name = task_name
        self.reason = reason

    def __reduce__(self) -> tuple:
        return (type(self), (self.task_name, self.reason))

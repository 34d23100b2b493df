"""The exceptions taskito raises. Every one derives from :class:`TaskitoError`; where a
stdlib type is what users already catch, the class derives from it too."""

from __future__ import annotations

__all__ = [
    "TaskitoError",
    "TaskFailedError",
    "MaxRetriesExceededError",
    "TaskCancelledError",
    "TaskTimeoutError",
    "SerializationError",
    "DatabaseError",
    "JobNotFoundError",
]


class TaskitoError(Exception):
    """Base class of every error taskito raises."""


class TaskFailedError(TaskitoError):
    """``JobResult.result()`` on a job that failed for good."""


class MaxRetriesExceededError(TaskFailedError):
    """``JobResult.result()`` on a job that was dead-lettered after its retries."""


class TaskCancelledError(TaskitoError):
    """``JobResult.result()`` on a cancelled job."""


class TaskTimeoutError(TaskitoError, TimeoutError):
    """Raised inside a task that ran past its ``timeout``."""


class SerializationError(TaskitoError, TypeError):
    """Arguments or a result that cannot be pickled."""


class DatabaseError(TaskitoError):
    """The database cannot be used: bad path, foreign or damaged file, newer schema."""


class JobNotFoundError(TaskitoError, LookupError):
    """No job or dead letter has the given id."""

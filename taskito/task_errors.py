"""Structured task errors: what a task raised, stored in ``job.error`` as compact JSON.

An exception raised by a task's own code is stored as
``{"errtype": "ValueError", "message": "bad input", "traceback": ["Traceback ...", ...]}``
(keys in that order, no spaces): ``errtype`` is the exception's qualified name without its
module, ``traceback`` the formatted lines. Errors taskito records itself (a timeout, a task
that is not registered, arguments that cannot be read, a lost worker) stay plain text.

``decode_task_error(job.error)`` reads the JSON form back; every place a person reads an
error (logs, the CLI, the dashboard, exception messages) shows ``readable(raw)``: the
``Type: message`` summary for a task error, the text itself otherwise.
"""

from __future__ import annotations

import json
import traceback as _traceback
from dataclasses import dataclass, field

__all__ = ["TaskError", "encode_task_error", "encode_from_parts", "decode_task_error", "readable"]


@dataclass(frozen=True)
class TaskError:
    """A decoded task error. ``raw`` is the stored text it was read from."""

    errtype: str
    message: str
    traceback: list[str] = field(default_factory=list)
    raw: str = ""

    def summary(self) -> str:
        """``Type: message`` (just ``Type`` when the message is empty)."""
        return f"{self.errtype}: {self.message}" if self.message else self.errtype


def encode_from_parts(errtype: str, message: str, traceback: list[str] | str | None = None) -> str:
    """The stored JSON form of an error given as its parts; a traceback given as one string
    is split into its lines."""
    if isinstance(traceback, str):
        lines = traceback.splitlines(keepends=True)
    else:
        lines = [str(line) for line in traceback or ()]
    return json.dumps(
        {"errtype": str(errtype), "message": str(message), "traceback": lines},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def encode_task_error(exc: BaseException, tb: list[str] | str | None = None) -> str:
    """The stored JSON form of the exception ``exc``. ``tb`` (lines or one string) is its
    traceback; without one it is formatted from ``exc.__traceback__``."""
    if tb is None:
        tb = _traceback.format_exception(type(exc), exc, exc.__traceback__)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the failure itself
        message = "<unprintable exception>"
    return encode_from_parts(type(exc).__qualname__, message, tb)


def decode_task_error(raw: str | None) -> TaskError | None:
    """The task error stored as ``raw``, or None for plain text (a system error, or one
    stored before errors were structured) and anything malformed. The text is untrusted:
    only a JSON object with a string ``errtype``, a string ``message`` and a list of strings
    as ``traceback`` decodes."""
    if not isinstance(raw, str) or not raw.startswith("{"):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    errtype, message, tb = data.get("errtype"), data.get("message"), data.get("traceback", [])
    if not isinstance(errtype, str) or not errtype or not isinstance(message, str):
        return None
    if not isinstance(tb, list) or not all(isinstance(line, str) for line in tb):
        return None
    return TaskError(errtype, message, list(tb), raw)


def readable(raw: str | None) -> str | None:
    """What a person should read for a stored error: a task error's summary, or the text."""
    decoded = decode_task_error(raw)
    return decoded.summary() if decoded is not None else raw


def stored_error(exc: BaseException, tb: str) -> str:
    """What a worker stores for an exception out of a task's run: the JSON form, except for
    the two taskito raises into a task itself (its timeout, a cancel of the running job),
    which are system errors and stay plain ``Type: message`` text."""
    from taskito.exceptions import TaskCancelledError, TaskTimeoutError

    if isinstance(exc, (TaskTimeoutError, TaskCancelledError)):
        return f"{type(exc).__name__}: {exc}"
    return encode_task_error(exc, tb)

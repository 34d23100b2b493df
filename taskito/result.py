"""``JobResult``: a handle on one stored job. Every attribute reads the database afresh."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskito._settings import check_seconds
from taskito.exceptions import (
    JobNotFoundError,
    MaxRetriesExceededError,
    TaskCancelledError,
    TaskFailedError,
)
from taskito.notes import decode_notes
from taskito.task_errors import decode_task_error, readable

if TYPE_CHECKING:
    from taskito.app import Queue

R = TypeVar("R")

def _error_details(queue: Queue, job_id: str, raw: str | None) -> dict[str, Any]:
    """What the exception of a failed job carries: its id, the error's class name (the
    stored text reads ``Type: message``), the last attempt's traceback lines and the raw
    stored text. A task's exception is stored as JSON (``taskito.task_errors``); a system
    error as plain text."""
    decoded = decode_task_error(raw)
    if decoded is not None:
        return {
            "job_id": job_id,
            "errtype": decoded.errtype,
            "traceback": decoded.traceback,
            "raw_error": raw,
        }
    errtype = None
    if raw:
        head = raw.split(":", 1)[0].strip()
        if head and head.replace(".", "").replace("_", "").isalnum() and " " not in head:
            errtype = head
    lines: list[str] = []
    errors = queue._inner.job_errors(job_id)
    if errors and errors[-1].get("traceback"):
        lines = errors[-1]["traceback"].splitlines(keepends=True)
    return {"job_id": job_id, "errtype": errtype, "traceback": lines, "raw_error": raw}


class JobResult(Generic[R]):
    """A job's id plus live views of its state and a way to wait for its result
    (``JobResult[R]`` to type checkers: ``result()`` returns the task's ``R``)."""

    __slots__ = ("id", "_queue", "_snapshot")

    def __init__(self, queue: Queue, job_id: str) -> None:
        self.id = job_id
        self._queue = queue
        self._snapshot: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        data = self._queue._inner.get_job(self.id)
        if data is None:
            raise JobNotFoundError(f"job {self.id} does not exist (it may have been purged)")
        self._snapshot = data
        return data

    def refresh(self) -> JobResult[R]:
        """Re-reads the job; returns self."""
        self._load()
        return self

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``complete``, ``failed``, ``dead`` or ``cancelled``."""
        return self._load()["status"]

    @property
    def error(self) -> str | None:
        """The last error of the job, if any: for an exception of the task, the JSON that
        ``taskito.task_errors.decode_task_error`` reads; for a system error, plain text."""
        return self._load()["error"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every failed attempt, oldest first."""
        return self._queue.job_errors(self.id)

    @property
    def progress(self) -> int | None:
        return self._load()["progress"]

    @property
    def worker_id(self) -> str | None:
        return self._load()["worker_id"]

    @property
    def metadata(self) -> str | None:
        """The metadata given at enqueue, as a JSON string (or the string given)."""
        return self._load()["metadata"]

    @property
    def notes(self) -> dict[str, Any] | None:
        """The notes given at enqueue, or None."""
        return decode_notes(self._load()["notes"])

    @property
    def dependencies(self) -> list[str]:
        """Ids of the jobs this one waits for."""
        return self._queue._inner.job_links(self.id)[0]

    @property
    def dependents(self) -> list[str]:
        """Ids of the jobs that wait for this one."""
        return self._queue._inner.job_links(self.id)[1]

    def to_dict(self) -> dict[str, Any]:
        """The stored job (times are epoch milliseconds; ``notes`` a dict or None;
        ``error`` the readable summary of ``job.error``)."""
        data = dict(self._load())
        data["notes"] = decode_notes(data.get("notes"))
        data["error"] = readable(data.get("error"))
        return data

    def result(
        self, timeout: float | None = 30.0, poll_interval: float = 0.05, max_poll_interval: float = 0.5
    ) -> R:
        """Waits up to ``timeout`` seconds (None: no limit) and returns the task's return
        value. The store is checked every ``poll_interval`` seconds, capped at
        ``max_poll_interval``.

        Raises ``TimeoutError`` if the job has not finished by then, ``TaskFailedError``
        if it failed, ``MaxRetriesExceededError`` if it was dead-lettered after its
        retries, ``TaskCancelledError`` if it was cancelled, ``CryptoError`` if the stored
        result does not verify or decrypt.
        """
        wait, poll = _wait_options(timeout, poll_interval)
        poll = min(poll, check_seconds("max_poll_interval", max_poll_interval, positive=True))
        status = self._queue._inner.wait(self.id, wait, poll)
        return self._finish(status, timeout)  # type: ignore[no-any-return]

    async def aresult(
        self, timeout: float | None = 30.0, poll_interval: float = 0.05, max_poll_interval: float = 0.5
    ) -> R:
        """``result()`` for asyncio: waits without blocking the event loop. The wait runs in
        a thread in slices of at most ``max_poll_interval`` seconds, so a cancelled await
        returns within one slice."""
        wait, poll = _wait_options(timeout, poll_interval)
        piece = check_seconds("max_poll_interval", max_poll_interval, positive=True)
        deadline = time.monotonic() + wait
        while True:
            left = max(0.0, deadline - time.monotonic())
            status = await asyncio.to_thread(self._queue._inner.wait, self.id, min(left, piece), poll)
            if status != "pending" and status != "running" or left <= 0:
                return self._finish(status, timeout)  # type: ignore[no-any-return]

    def _finish(self, status: str | None, timeout: float) -> Any:
        if status is None:
            raise JobNotFoundError(f"job {self.id} does not exist (it may have been purged)")
        if status == "complete":
            found = self._queue._inner.get_outcome(self.id)
            return self._queue._load_result(self.id, found[1] if found else None)
        if status in ("pending", "running"):
            raise TimeoutError(f"job {self.id} did not finish within {timeout}s (status {status})")
        found = self._queue._inner.get_outcome(self.id)
        raw = found[2] if found else None
        text = readable(raw) or "no error recorded"
        if status == "cancelled":
            raise TaskCancelledError(f"job {self.id} was cancelled")
        details = _error_details(self._queue, self.id, raw)
        if status == "dead":
            raise MaxRetriesExceededError(
                f"job {self.id} failed after all its retries and was dead-lettered: {text}", **details
            )
        raise TaskFailedError(f"job {self.id} failed: {text}", **details)

    def __repr__(self) -> str:
        return f"<JobResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


# A wait past any clock (or None) waits "forever": the engine saturates the deadline.
_FOREVER = 1e300


def _wait_options(timeout: object, poll_interval: object) -> tuple[float, float]:
    wait = _FOREVER if timeout is None else check_seconds("timeout", timeout)
    return wait, check_seconds("poll_interval", poll_interval)

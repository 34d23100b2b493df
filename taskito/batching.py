"""Producer-side batching: ``@queue.task(batch=...)`` collects ``.delay(item)`` calls in the
calling process and stores them as ONE job whose task receives the list of items.

A buffer is flushed when it holds ``max_size`` items or ``max_wait_ms`` after its first item,
whichever comes first, and by ``queue.close()`` and at interpreter exit. Items still buffered
when the process dies are lost: a batch is durable once flushed, not before. A flushed batch
is one job for concurrency, rate limits and retries.

With ``per_item_results=True`` the task returns one ``BatchItemResult`` per item; a failed item
makes the whole batch fail with ``BatchPartialFailureError`` (and retry), and each caller's
handle reads its own item's value.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from taskito.exceptions import MaxRetriesExceededError, TaskFailedError
from taskito.task_errors import decode_task_error

if TYPE_CHECKING:
    from taskito.result import JobResult
    from taskito.task import TaskWrapper

__all__ = [
    "BatchConfig",
    "BatchAccumulator",
    "BatchedJobResult",
    "BatchItemResult",
    "BatchPartialFailureError",
    "BatchResultTypeError",
]

log = logging.getLogger("taskito")


@dataclass(frozen=True)
class BatchConfig:
    """Flush at ``max_size`` items or ``max_wait_ms`` after the first; ``per_item_results``
    makes the task report each item's outcome."""

    max_size: int = 100
    max_wait_ms: int = 500
    per_item_results: bool = False

    def __post_init__(self) -> None:
        for name in ("max_size", "max_wait_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"batch {name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.per_item_results, bool):
            raise ValueError(f"batch per_item_results must be True or False, got {self.per_item_results!r}")

    @classmethod
    def normalize(cls, value: Any) -> BatchConfig | None:
        """``batch=`` as a config: True (defaults), a dict of fields or a ``BatchConfig``;
        None or False for no batching. ``TypeError`` for anything else."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, BatchConfig):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"max_size", "max_wait_ms", "per_item_results"}
            if unknown:
                raise ValueError(f"unknown batch option(s): {', '.join(sorted(unknown))}")
            return cls(**value)
        raise TypeError(f"batch must be True, a dict or a BatchConfig, got {type(value).__name__}")


class BatchResultTypeError(TypeError):
    """A ``per_item_results`` batch task returned something other than a list of
    ``BatchItemResult``."""


@dataclass(frozen=True)
class BatchItemResult:
    """The outcome of one item: ``status`` is ``"success"`` (with ``result``) or
    ``"failure"`` (with ``error``); ``item_index`` is the item's place in the batch."""

    status: str
    result: Any = None
    error: str | None = None
    item_index: int = 0

    def __post_init__(self) -> None:
        if self.status not in ("success", "failure"):
            raise ValueError(f"status must be one of 'success', 'failure', got {self.status!r}")
        i = self.item_index
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"item_index must be an integer >= 0, got {i!r}")
        if self.status == "success" and self.error is not None:
            raise ValueError("a successful item has no error")
        if self.status == "failure":
            if not self.error:
                raise ValueError("a failed item needs an error")
            if self.result is not None:
                raise ValueError("a failed item has no result")

    @classmethod
    def success(cls, item_index: int, result: Any = None) -> BatchItemResult:
        return cls("success", result=result, item_index=item_index)

    @classmethod
    def failure(cls, item_index: int, error: Any) -> BatchItemResult:
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        return cls("failure", error=None if error is None else str(error), item_index=item_index)

    def _stored(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "item_index": self.item_index,
        }


_FAILED_PREFIX = "batch items failed: "


class BatchPartialFailureError(TaskFailedError):
    """Raised by a ``per_item_results`` batch in which an item failed; the whole batch
    retries. ``failed_items`` lists the failed ``BatchItemResult``s."""

    def __init__(self, failed_items: list[BatchItemResult], **details: Any) -> None:
        self.failed_items = list(failed_items)
        listed = [{"item_index": f.item_index, "error": f.error} for f in self.failed_items]
        super().__init__(_FAILED_PREFIX + json.dumps(listed, separators=(",", ":")), **details)

    def __reduce__(self) -> tuple:
        return (type(self), (self.failed_items,))


def _failed_from_error(raw: str | None) -> list[BatchItemResult] | None:
    """The failed items a stored ``BatchPartialFailureError`` names, or None."""
    decoded = decode_task_error(raw)
    if decoded is None or decoded.errtype != "BatchPartialFailureError":
        return None
    if not decoded.message.startswith(_FAILED_PREFIX):
        return None
    try:
        listed = json.loads(decoded.message[len(_FAILED_PREFIX) :])
        return [BatchItemResult.failure(int(d["item_index"]), str(d["error"])) for d in listed]
    except (ValueError, TypeError, KeyError):
        return None


def per_item_checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a worker runs a ``per_item_results`` batch task: its list of
    ``BatchItemResult`` checked and stored as plain values; a failed item raises."""

    def check(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, BatchItemResult) for v in value):
            raise BatchResultTypeError(
                f"a batch task with per_item_results=True must return list[BatchItemResult], "
                f"got {type(value).__name__}"
            )
        failed = [v for v in value if v.status == "failure"]
        if failed:
            raise BatchPartialFailureError(failed)
        return [v._stored() for v in value]

    def run(*args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        if hasattr(value, "__await__"):

            async def awaited() -> Any:
                return check(await value)

            return awaited()
        return check(value)

    run.__wrapped__ = fn  # type: ignore[attr-defined]
    run.__name__ = getattr(fn, "__name__", "batch")
    run.__qualname__ = getattr(fn, "__qualname__", run.__name__)
    run.__module__ = getattr(fn, "__module__", __name__)
    return run


class BatchedJobResult:
    """The handle ``.delay(item)`` returns for a batch task: ``id`` is None and
    ``status()`` ``"batched"`` until the batch is flushed; then ``job`` is its one job."""

    batched = True

    def __init__(self, accumulator: BatchAccumulator, index: int) -> None:
        self.id: str | None = None
        self.job: JobResult | None = None
        self.item_index = index
        self._accumulator = accumulator
        self._flushed = threading.Event()
        self._flush_error: BaseException | None = None

    def _settle(self, job: JobResult | None, error: BaseException | None) -> None:
        self.job = job
        self._flush_error = error
        self._flushed.set()

    def status(self) -> str:
        """``"batched"`` while buffered; then the batch job's status."""
        if self.job is None:
            return "batched"
        return self.job.status

    def _job_within(self, timeout: Any) -> tuple[JobResult, float]:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        if not self._flushed.wait(timeout):
            raise TimeoutError(f"the batch holding this item was not flushed within {timeout}s")
        if self._flush_error is not None:
            raise TaskFailedError(f"the batch holding this item could not be stored: {self._flush_error}")
        assert self.job is not None
        return self.job, max(0.001, deadline - time.monotonic())

    def _items(self, timeout: Any) -> tuple[JobResult, list[dict[str, Any]] | None, BaseException | None]:
        if not self._accumulator.config.per_item_results:
            raise RuntimeError("per-item results need @queue.task(batch=BatchConfig(per_item_results=True))")
        job, left = self._job_within(timeout)
        try:
            return job, job.result(timeout=left), None
        except (TaskFailedError, MaxRetriesExceededError) as exc:
            return job, None, exc

    def result(self, timeout: float = 30.0) -> Any:
        """This item's value, once the batch ran; ``TaskFailedError`` if the item (or the
        batch) failed. Only with ``per_item_results``: a plain batch returns one value for
        all its items, so ``NotImplementedError``."""
        if not self._accumulator.config.per_item_results:
            raise NotImplementedError(
                "a batched call has no result of its own: use BatchConfig(per_item_results=True)"
            )
        job, items, error = self._items(timeout)
        if error is not None:
            failed = _failed_from_error(getattr(error, "raw_error", None)) or []
            mine = [f for f in failed if f.item_index == self.item_index]
            detail = mine[0].error if mine else str(error)
            raise TaskFailedError(
                f"item {self.item_index} of batch job {job.id} failed: {detail}",
                job_id=job.id,
                errtype=getattr(error, "errtype", None),
                traceback=getattr(error, "traceback", None),
                raw_error=getattr(error, "raw_error", None),
            )
        for item in items or ():
            if item.get("item_index") == self.item_index:
                return item.get("result")
        raise TaskFailedError(
            f"batch job {job.id} reported no result for item {self.item_index}", job_id=job.id
        )

    def partial_failures(self, timeout: float = 30.0) -> list[BatchItemResult]:
        """The failed items of this item's batch (``[]`` if none failed); RuntimeError
        without ``per_item_results``."""
        job, _, error = self._items(timeout)
        if error is None:
            return []
        failed = _failed_from_error(getattr(error, "raw_error", None))
        if failed is not None:
            return failed
        raise error

    def __repr__(self) -> str:
        return f"<BatchedJobResult item={self.item_index} job={self.job.id if self.job else None}>"


class BatchAccumulator:
    """The buffer of one batch task in this process."""

    def __init__(self, queue: Any, task: TaskWrapper, config: BatchConfig) -> None:
        self.queue = queue
        self.task = task
        self.config = config
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._handles: list[BatchedJobResult] = []
        self._timer: threading.Timer | None = None
        atexit.register(self.flush)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, args: tuple, kwargs: dict) -> BatchedJobResult:
        """Buffers one item (``.delay(item)``); flushes when the buffer is full."""
        if kwargs or len(args) != 1:
            raise ValueError(
                f"batch task {self.task.name} takes exactly one positional item per .delay() call "
                f"(got {len(args)} positional and {len(kwargs)} keyword argument(s))"
            )
        with self._lock:
            handle = BatchedJobResult(self, len(self._items))
            self._items.append(args[0])
            self._handles.append(handle)
            full = len(self._items) >= self.config.max_size
            if not full and self._timer is None:
                self._timer = threading.Timer(self.config.max_wait_ms / 1000.0, self._flush_on_timer)
                self._timer.daemon = True
                self._timer.name = f"taskito-batch-{self.task.name}"
                self._timer.start()
        if full:
            self.flush()
        return handle

    def _flush_on_timer(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("flushing the batch of task %s failed", self.task.name)

    def flush(self) -> JobResult | None:
        """Stores the buffered items as one job now; returns it (None if the buffer was
        empty). A failure to store is raised here and reported to every handle."""
        with self._lock:
            items, handles = self._items, self._handles
            self._items, self._handles = [], []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not items:
                return None
            try:
                job = self.queue.enqueue(self.task.name, (items,))
            except BaseException as exc:
                for h in handles:
                    h._settle(None, exc)
                raise
        for h in handles:
            h._settle(job, None)
        return job


def flush_all(queue: Any) -> None:
    """Flushes every batch buffer of ``queue`` (``Queue.close()``)."""
    for task in list(queue._tasks.values()):
        accumulator = getattr(task, "_batch", None)
        if accumulator is not None:
            try:
                accumulator.flush()
            except Exception:
                log.exception("flushing the batch of task %s failed", task.name)

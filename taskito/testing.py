"""Test mode: ``with queue.test_mode() as results:`` runs every task inline, at enqueue,
in the calling thread. Nothing is stored; each call appends a ``TestResult`` to
``results``. ``current_job`` works inside (ids ``test-...``); chains and groups run
inline too.

An inline run is a worker's run without the database: ``on_enqueue`` edits the options,
middleware ``before``/``after``, the task hooks and the events fire as on a worker, and a
failure with retries left runs again at once (no backoff wait) after ``on_retry``, with
``current_job.retry_count`` counting up, until it completes or ends ``dead``. Event
callbacks have run by the time the call that enqueued the job returns."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskito.context import _JobContext, log_level
from taskito.exceptions import MaxRetriesExceededError, TaskCancelledError, TaskFailedError
from taskito.facets.base import JobOptions, job_options, run_options

__all__ = ["TestResult", "TestResults"]



class TestResult:
    """One task call run in test mode: what ``delay()`` returns there."""

    __test__ = False  # not a pytest test class

    def __init__(self, job_id: str, task_name: str, args: tuple, kwargs: dict) -> None:
        self.id = job_id
        self.task_name = task_name
        self.args = args
        self.kwargs = kwargs
        self.return_value: Any = None
        #: The last run's exception, None once the task completed.
        self.error: BaseException | None = None
        self.traceback: str | None = None
        #: ``running``, then as a worker would end it: ``complete``, ``failed`` (no run
        #: can fix it), ``dead`` (failed on its last retry) or ``cancelled``.
        self.status = "running"
        #: How many times it was retried, and the exception of each failed run.
        self.retry_count = 0
        self.failures: list[BaseException] = []
        self.progress: int | None = None
        #: ``current_job.log`` lines: dicts of ``level``, ``message``, ``extra`` (JSON or None).
        self.logs: list[dict[str, Any]] = []

    @property
    def job_id(self) -> str:
        return self.id

    @property
    def succeeded(self) -> bool:
        return self.status == "complete"

    @property
    def failed(self) -> bool:
        return self.error is not None

    def result(self, timeout: float = 30, poll_interval: float = 0.05) -> Any:
        """The return value, or what ``JobResult.result()`` raises for a job that ended
        this way (``TaskFailedError``, ``MaxRetriesExceededError``, ``TaskCancelledError``)."""
        error = self.error
        if error is None:
            return self.return_value
        if self.status == "cancelled":
            raise TaskCancelledError(f"job {self.id} was cancelled")
        text = f"{type(error).__name__}: {error}"
        details: dict[str, Any] = {
            "job_id": self.id,
            "errtype": type(error).__name__,
            "traceback": (self.traceback or "").splitlines(),
            "raw_error": text,
        }
        if self.status == "dead":
            raise MaxRetriesExceededError(
                f"job {self.id} failed after all its retries and was dead-lettered: {text}", **details
            )
        raise TaskFailedError(f"job {self.id} failed: {text}", **details)

    def __repr__(self) -> str:
        return f"<TestResult {self.task_name} {self.status}>"


class TestResults(list):
    """The ``TestResult`` of each call, in enqueue order."""

    __test__ = False

    def filter(self, task_name: str | None = None, succeeded: bool | None = None) -> TestResults:
        """The results of one task and/or one outcome (``succeeded=False``: the failed)."""
        return TestResults(
            r
            for r in self
            if (task_name is None or r.task_name == task_name)
            and (succeeded is None or r.succeeded == succeeded)
        )

    @property
    def succeeded(self) -> TestResults:
        return self.filter(succeeded=True)

    @property
    def failed(self) -> TestResults:
        return TestResults(r for r in self if r.failed)


class _TestCore:
    """What ``current_job`` calls on the engine, for a job that is not stored."""

    def __init__(self, result: TestResult) -> None:
        self._result = result

    def update_progress(self, job_id: str, progress: int) -> None:
        self._result.progress = progress

    def cancel_requested(self, job_id: str) -> bool:
        return False

    def write_task_log(
        self, job_id: str, task_name: str, level: str, message: str, extra: str | None
    ) -> None:
        self._result.logs.append({"level": log_level(level), "message": message, "extra": extra})


def _run_options(
    queue: Any, task_name: str, args: tuple, kwargs: dict, options: dict[str, Any]
) -> dict[str, Any]:
    """The job's options after ``on_enqueue``, checked as an enqueue checks them."""
    given = job_options(**{k: options.get(k) for k in JobOptions.__annotations__})
    chain = queue._enqueue_chain(task_name)
    if chain:
        given = queue._on_enqueue(chain, task_name, args, kwargs, given)
    return queue._resolve_options(task_name, **run_options(given))  # type: ignore[no-any-return]


def _run_to_end(queue: Any, task: Any, result: TestResult, queue_name: str, max_retries: int) -> None:
    """Runs the task as a worker would, retrying at once while it has retries left."""
    from taskito.worker.dispatch import completed, drive, run_steps

    core = _TestCore(result)
    while True:
        context = _JobContext(result.id, result.task_name, queue_name, result.retry_count, "test", core)
        ran = drive(run_steps(queue, task, result.args, result.kwargs, context, max_retries), _complete)
        if ran[0]:
            result.return_value, result.status = ran[1], "complete"
            result.error = result.traceback = None
            completed(queue, context)
            return
        error, tb, retryable = ran[1:4]
        result.failures.append(error)
        result.error, result.traceback = error, tb
        if retryable and result.retry_count < max_retries:
            result.retry_count += 1
            continue
        if isinstance(error, TaskCancelledError):
            result.status = "cancelled"
        else:
            result.status = "dead" if retryable else "failed"
        return


def _complete(awaitable: Any) -> Any:
    """Runs an async task's awaitable to its value in this thread, or, when this thread's
    loop is busy (an async test enqueued it), on a fresh loop in a helper thread that sees
    the same ``current_job``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="taskito-test-mode") as pool:
        return pool.submit(context.run, asyncio.run, _await(awaitable)).result()


async def _await(value: Any) -> Any:
    return await value

"""Test mode: ``with queue.test_mode() as results:`` runs every task inline, at enqueue,
in the calling thread. Nothing is stored; each call appends a ``TestResult`` to
``results``. ``current_job`` works inside (ids ``test-...``); chains and groups run
inline too."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskito.context import _enter, _JobContext, _leave, current_job
from taskito.exceptions import TaskCancelledError, TaskFailedError
from taskito.middleware import call_each

__all__ = ["TestResult", "TestResults", "TestModeMixin"]


class TestResult:
    """One task call run in test mode."""

    __test__ = False  # not a pytest test class

    def __init__(self, job_id: str, task_name: str, args: tuple, kwargs: dict) -> None:
        self.id = job_id
        self.task_name = task_name
        self.args = args
        self.kwargs = kwargs
        self.return_value: Any = None
        self.error: BaseException | None = None
        self.progress: int | None = None
        self._done = False

    @property
    def succeeded(self) -> bool:
        return self._done and self.error is None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        return "complete" if self.succeeded else "failed" if self.failed else "running"

    def result(self, timeout: float = 30, poll_interval: float = 0.05) -> Any:
        """The return value, or ``TaskFailedError`` if the task raised."""
        if self.error is not None:
            raise TaskFailedError(f"job {self.id} failed: {type(self.error).__name__}: {self.error}")
        return self.return_value

    def __repr__(self) -> str:
        return f"<TestResult {self.task_name} {self.status}>"


class TestResults(list):
    """The ``TestResult`` of each call, in enqueue order."""

    __test__ = False

    @property
    def succeeded(self) -> list[TestResult]:
        return [r for r in self if r.succeeded]

    @property
    def failed(self) -> list[TestResult]:
        return [r for r in self if r.failed]


class _TestCore:
    """What ``current_job`` calls on the engine, for a job that is not stored."""

    def __init__(self, result: TestResult) -> None:
        self._result = result

    def update_progress(self, job_id: str, progress: int) -> None:
        self._result.progress = progress

    def cancel_requested(self, job_id: str) -> bool:
        return False


_ids = itertools.count(1)


class TestModeMixin:
    """``test_mode`` for ``Queue``."""

    _tasks: dict[str, Any]
    _test_results: TestResults | None = None
    _test_propagate = False
    _test_lock = threading.Lock()

    @contextmanager
    def test_mode(self, propagate_errors: bool = False) -> Iterator[TestResults]:
        """Runs tasks inline at enqueue for the duration of the block and yields the list
        of their results. With ``propagate_errors=True`` a task's exception propagates
        from the call that enqueued it."""
        previous = (self._test_results, self._test_propagate)
        results = TestResults()
        self._test_results, self._test_propagate = results, bool(propagate_errors)
        try:
            yield results
        finally:
            self._test_results, self._test_propagate = previous

    def _run_inline(self, task_name: str, args: tuple, kwargs: dict) -> TestResult:
        from taskito.canvas import builtin_task

        results = self._test_results
        assert results is not None
        result = TestResult(
            f"test-{next(_ids)}-{uuid.uuid4().hex[:12]}", task_name, tuple(args), dict(kwargs)
        )
        results.append(result)
        task = self._tasks.get(task_name) or builtin_task(self, task_name)  # type: ignore[arg-type]
        if task is None:
            result.error = LookupError(f"task {task_name!r} is not registered")
            if self._test_propagate:
                raise result.error
            return result
        queue_name = getattr(task, "queue_name", "default")
        token = _enter(_JobContext(result.id, task_name, queue_name, 0, "test", _TestCore(result)))
        # Middleware sees an inline run as it sees a worker's: `before`, then `after`.
        chain = task._middleware_chain() if hasattr(task, "_middleware_chain") else ()
        entered = call_each(chain, "before", current_job) if chain else chain
        try:
            value = task.fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            result.return_value = value
        except TaskCancelledError as exc:
            result.error = exc
        except Exception as exc:
            result.error = exc
            if self._test_propagate:
                raise
        finally:
            result._done = True
            if entered:
                call_each(entered, "after", current_job, result.return_value, result.error)
            _leave(token)
        return result


async def _await(value: Any) -> Any:
    return await value

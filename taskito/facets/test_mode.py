"""``queue.test_mode()``: every enqueue runs its task inline (see ``taskito.testing``)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskito.facets.base import QueueState
from taskito.testing import TestResult, TestResults, _run_options, _run_to_end

_ids = itertools.count(1)


class TestMode(QueueState):
    """``test_mode`` for ``Queue``."""

    @contextmanager
    def test_mode(self, propagate_errors: bool = False) -> Iterator[TestResults]:
        """Runs tasks inline at enqueue for the duration of the block and yields the list
        of their results. With ``propagate_errors=True`` the exception of a job that ends
        failed or dead propagates from the call that enqueued it."""
        previous = (self._test_results, self._test_propagate)
        results = TestResults()
        self._test_results, self._test_propagate = results, bool(propagate_errors)
        try:
            yield results
        finally:
            self._test_results, self._test_propagate = previous

    def _run_inline(
        self, task_name: str, args: tuple, kwargs: dict, options: dict[str, Any] | None = None
    ) -> TestResult:
        """Runs one enqueued call to its end; ``options`` are the enqueue's options."""
        queue: Any = self
        results = self._test_results
        assert results is not None
        args, kwargs = tuple(args), dict(kwargs)
        opts = _run_options(queue, task_name, args, kwargs, options or {})
        result = TestResult(f"test-{next(_ids)}-{uuid.uuid4().hex[:12]}", task_name, args, kwargs)
        results.append(result)
        queue._emit_enqueued(result.id, task_name, opts["queue"])
        task = self._tasks.get(task_name)
        try:
            if task is None:
                # As on a worker: a failure no retry can fix, before anything runs.
                result.error = LookupError(f"task {task_name!r} is not registered")
                result.status = "failed"
            else:
                _run_to_end(queue, task, result, opts["queue"], opts["max_retries"])
        finally:
            queue._flush_events()
        if self._test_propagate and result.status in ("failed", "dead"):
            raise result.error  # type: ignore[misc]
        return result

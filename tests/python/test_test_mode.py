"""``queue.test_mode()``: tasks run inline at enqueue and nothing is stored."""

from __future__ import annotations

import pytest

from taskito import Queue, current_job


def test_tasks_run_inline_and_nothing_is_stored(queue: Queue) -> None:
    seen = []

    @queue.task(name="add")
    def add(a, b):
        seen.append((current_job.id, current_job.task_name, current_job.queue_name, current_job.retry_count))
        current_job.update_progress(50)
        current_job.check_cancelled()
        return a + b

    @queue.task(name="boom")
    def boom():
        raise ValueError("bad")

    with queue.test_mode() as results:
        job = add.delay(1, 2)
        boom.delay()
        add.apply_async((3, 4), priority=5)
        queue.enqueue("add", (5, 6))
        add.map([(1, 1), (2, 2)])
    assert job.return_value == 3
    assert [r.return_value for r in results] == [3, None, 7, 11, 2, 4]
    assert [r.task_name for r in results] == ["add", "boom", "add", "add", "add", "add"]
    assert results[0].succeeded and not results[0].failed
    assert results[1].failed and isinstance(results[1].error, ValueError)
    assert len(results.succeeded) == 5 and len(results.failed) == 1
    assert all(r.id.startswith("test-") for r in results)
    assert seen[0][0].startswith("test-") and seen[0][1:] == ("add", "default", 0)
    assert results[0].progress == 50
    assert sum(queue.stats().values()) == 0
    # Outside the block, tasks are stored again.
    add.delay(1, 1)
    assert queue.stats()["pending"] == 1


def test_propagate_errors(queue: Queue) -> None:
    @queue.task(name="boom")
    def boom():
        raise ValueError("bad")

    with queue.test_mode(propagate_errors=True) as results:
        with pytest.raises(ValueError, match="bad"):
            boom.delay()
    assert len(results.failed) == 1
    assert sum(queue.stats().values()) == 0


def test_nested_calls_run_inline(queue: Queue) -> None:
    @queue.task(name="inner")
    def inner(x):
        return x * 2

    @queue.task(name="outer")
    def outer(x):
        return inner.delay(x).return_value + 1

    with queue.test_mode() as results:
        assert outer.delay(5).return_value == 11
    assert [r.task_name for r in results] == ["outer", "inner"]


def test_middleware_sees_inline_runs(queue: Queue) -> None:
    from taskito import TaskMiddleware

    calls: list[tuple[str, object]] = []

    class Recorder(TaskMiddleware):
        def before(self, ctx):  # type: ignore[no-untyped-def]
            calls.append(("before", ctx.task_name))

        def after(self, ctx, result, error):  # type: ignore[no-untyped-def]
            calls.append(("after", result if error is None else type(error).__name__))

    @queue.task(name="twice", middleware=[Recorder()])
    def twice(x):
        return 2 * x

    with queue.test_mode():
        twice.delay(4)
    assert calls == [("before", "twice"), ("after", 8)]

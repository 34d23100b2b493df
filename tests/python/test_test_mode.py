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


def test_a_failing_run_retries_inline_until_it_completes_or_is_dead(queue: Queue) -> None:
    from taskito.exceptions import MaxRetriesExceededError, TaskFailedError

    seen: list[int] = []

    @queue.task(name="flaky", max_retries=2)
    def flaky():
        seen.append(current_job.retry_count)
        if current_job.retry_count < 2:
            raise ConnectionError(f"try {current_job.retry_count}")
        return "ok"

    @queue.task(name="always", max_retries=1)
    def always():
        raise ValueError("never")

    with queue.test_mode() as results:
        recovered = flaky.delay()
        dead = always.delay()
        once = always.apply_async(max_retries=0)
        unknown = queue.enqueue("nobody.registered")
    assert seen == [0, 1, 2]
    assert recovered.succeeded and recovered.status == "complete" and recovered.result() == "ok"
    assert recovered.retry_count == 2 and [str(e) for e in recovered.failures] == ["try 0", "try 1"]
    assert recovered.error is None and recovered.traceback is None
    assert dead.status == "dead" and dead.failed and dead.retry_count == 1 and len(dead.failures) == 2
    assert isinstance(dead.error, ValueError) and "raise ValueError" in (dead.traceback or "")
    with pytest.raises(MaxRetriesExceededError) as raised:
        dead.result()
    assert raised.value.job_id == dead.job_id and raised.value.errtype == "ValueError"
    assert once.status == "dead" and once.retry_count == 0 and len(once.failures) == 1
    assert unknown.status == "failed"
    with pytest.raises(TaskFailedError):
        unknown.result()
    assert [len(results.succeeded), len(results.failed)] == [1, 3]
    assert results.filter(task_name="always", succeeded=False) == [dead, once]
    assert sum(queue.stats().values()) == 0


def test_middleware_hooks_and_retry_counts_match_a_worker(queue: Queue) -> None:
    from taskito import TaskMiddleware

    calls: list[tuple] = []

    class Recorder(TaskMiddleware):
        def before(self, ctx):  # type: ignore[no-untyped-def]
            calls.append(("before", ctx.retry_count))

        def after(self, ctx, result, error):  # type: ignore[no-untyped-def]
            calls.append(("after", result, None if error is None else str(error)))

        def on_retry(self, ctx, error, retry_count):  # type: ignore[no-untyped-def]
            calls.append(("on_retry", str(error), retry_count))

        def on_dead_letter(self, ctx, error):  # type: ignore[no-untyped-def]
            calls.append(("on_dead_letter", str(error)))

    @queue.before_task
    def before_task(task_name, args, kwargs):  # type: ignore[no-untyped-def]
        calls.append(("before_task", task_name, args))

    @queue.on_success
    def on_success(task_name, args, kwargs, result):  # type: ignore[no-untyped-def]
        calls.append(("on_success", result))

    @queue.on_failure
    def on_failure(task_name, args, kwargs, error):  # type: ignore[no-untyped-def]
        calls.append(("on_failure", str(error)))

    @queue.after_task
    def after_task(task_name, args, kwargs, result, error):  # type: ignore[no-untyped-def]
        calls.append(("after_task", result, None if error is None else str(error)))

    @queue.task(name="double", middleware=[Recorder()])
    def double(x):
        return 2 * x

    @queue.task(name="bad", max_retries=2, middleware=[Recorder()])
    def bad():
        raise RuntimeError(f"run {current_job.retry_count}")

    with queue.test_mode():
        double.delay(4)
    assert calls == [
        ("before", 0),
        ("before_task", "double", (4,)),
        ("on_success", 8),
        ("after_task", 8, None),
        ("after", 8, None),
    ]
    calls.clear()
    with queue.test_mode():
        bad.delay()
    expected: list[tuple] = []
    for n in range(3):
        error = f"run {n}"
        expected += [
            ("before", n),
            ("before_task", "bad", ()),
            ("on_failure", error),
            ("after_task", None, error),
            ("after", None, error),
            ("on_retry", error, n + 1) if n < 2 else ("on_dead_letter", error),
        ]
    assert calls == expected


def test_events_fire_as_on_a_worker_and_are_delivered_by_return(queue: Queue) -> None:
    from taskito import EventType

    seen: list[tuple[EventType, dict]] = []
    for t in EventType:
        queue.on_event(t, lambda event_type, payload: seen.append((event_type, payload)))

    @queue.task(name="ok", queue="mail")
    def ok():
        return 1

    @queue.task(name="bad", max_retries=1)
    def bad():
        raise KeyError("k")

    with queue.test_mode():
        good = ok.delay()
        # Delivered by the time delay() returns: no wait.
        assert [e for e, _ in seen] == [
            EventType.JOB_ENQUEUED,
            EventType.JOB_STARTED,
            EventType.JOB_COMPLETED,
        ]
        failed = bad.delay()
    assert all(
        p["job_id"] == good.id and p["queue"] == "mail" and p["task_name"] == "ok" for _, p in seen[:3]
    )
    rest = seen[3:]
    assert [e for e, _ in rest] == [
        EventType.JOB_ENQUEUED,
        EventType.JOB_STARTED,
        EventType.JOB_FAILED,
        EventType.JOB_RETRYING,
        EventType.JOB_STARTED,
        EventType.JOB_FAILED,
        EventType.JOB_DEAD,
    ]
    assert {p["job_id"] for _, p in rest} == {failed.id}
    assert [p["retry_count"] for e, p in rest if e == EventType.JOB_FAILED] == [0, 1]
    assert rest[2][1]["error"] == "KeyError: 'k'"


def test_on_enqueue_edits_apply_to_the_inline_run(queue: Queue) -> None:
    from taskito import TaskMiddleware

    class Reroute(TaskMiddleware):
        def on_enqueue(self, task_name, args, kwargs, options):  # type: ignore[no-untyped-def]
            options["queue"] = "rerouted"
            options["max_retries"] = 0

    runs: list[str] = []

    @queue.task(name="where", max_retries=5, middleware=[Reroute()])
    def where():
        runs.append(current_job.queue_name)
        raise ValueError("x")

    @queue.task(name="plain")
    def plain():
        return None

    with queue.test_mode() as results:
        where.delay()
        # Options are checked as an enqueue checks them.
        with pytest.raises(ValueError, match="max_retries"):
            plain.apply_async(max_retries=-1)
    assert runs == ["rerouted"] and results[0].status == "dead" and len(results) == 1


def test_propagate_errors_raises_once_the_job_has_ended(queue: Queue) -> None:
    attempts: list[int] = []

    @queue.task(name="twice", max_retries=1)
    def twice():
        attempts.append(current_job.retry_count)
        if current_job.retry_count == 0:
            raise ConnectionError("first")
        return "second"

    @queue.task(name="never", max_retries=2)
    def never():
        attempts.append(current_job.retry_count)
        raise ConnectionError("always")

    with queue.test_mode(propagate_errors=True):
        assert twice.delay().return_value == "second"
        with pytest.raises(ConnectionError, match="always"):
            never.delay()
    assert attempts == [0, 1, 0, 1, 2]


def test_task_logs_and_async_tasks_under_a_running_loop(queue: Queue) -> None:
    import asyncio

    @queue.task(name="logs")
    def logs():
        current_job.log("hello", extra={"n": 1})
        current_job.log("careful", level="warning")

    @queue.task(name="aio")
    async def aio(x):
        await asyncio.sleep(0)
        return (x, current_job.task_name)

    async def an_async_test():
        return aio.delay(3)

    with queue.test_mode():
        logged = logs.delay()
        inside_loop = asyncio.run(an_async_test())
    assert logged.succeeded
    assert logged.logs == [
        {"level": "INFO", "message": "hello", "extra": '{"n": 1}'},
        {"level": "WARNING", "message": "careful", "extra": None},
    ]
    assert inside_loop.succeeded and inside_loop.return_value == (3, "aio")

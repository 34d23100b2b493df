"""Hooks: ``before_task``, ``on_success``, ``on_failure``, ``on_worker_start`` and
``on_worker_stop``. A hook that raises is logged and changes nothing else."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from cli_support import run_cli, write_app

from taskito import Queue
from taskito.task_errors import decode_task_error


def test_task_hooks_get_name_args_kwargs_and_the_outcome(queue: Queue) -> None:
    calls: list[tuple] = []

    @queue.before_task
    def before(task_name, args, kwargs):
        calls.append(("before", task_name, args, kwargs))

    @queue.on_success
    def success(task_name, args, kwargs, result):
        calls.append(("success", task_name, args, kwargs, result))

    @queue.on_failure
    def failure(task_name, args, kwargs, error):
        calls.append(("failure", task_name, args, kwargs, type(error), str(error)))

    @queue.task(name="add")
    def add(a, b, extra=0):
        calls.append(("task", a, b, extra))
        return a + b + extra

    @queue.task(name="boom", max_retries=0)
    def boom(msg):
        raise KeyError(msg)

    add.delay(1, 2, extra=3)
    assert queue.run_worker(workers=1, run_once=True) == 1
    assert calls == [
        ("before", "add", (1, 2), {"extra": 3}),
        ("task", 1, 2, 3),
        ("success", "add", (1, 2), {"extra": 3}, 6),
    ]
    calls.clear()
    boom.delay("k")
    assert queue.run_worker(workers=1, run_once=True) == 1
    assert calls == [
        ("before", "boom", ("k",), {}),
        ("failure", "boom", ("k",), {}, KeyError, "'k'"),
    ]


def test_decorators_return_the_function_and_hooks_run_in_order(queue: Queue) -> None:
    order: list[str] = []

    def first(task_name, args, kwargs):
        order.append("first")

    def second(task_name, args, kwargs):
        order.append("second")

    assert queue.before_task(first) is first
    assert queue.before_task(second) is second

    @queue.task(name="noop")
    def noop():
        return None

    noop.delay()
    queue.run_worker(run_once=True)
    assert order == ["first", "second"]


def test_on_failure_runs_for_every_failed_attempt(queue: Queue) -> None:
    failures: list[int] = []

    @queue.on_failure
    def count(task_name, args, kwargs, error):
        failures.append(1)

    @queue.task(name="flaky", max_retries=2, retry_backoff=0)
    def flaky():
        raise RuntimeError("again")

    job = flaky.delay()
    for _ in range(3):
        assert queue.process_one()
    assert job.status == "dead"
    assert len(failures) == 3


def test_worker_hooks_run_once_per_worker_around_the_jobs(queue: Queue) -> None:
    events: list[str] = []
    lock = threading.Lock()

    @queue.on_worker_start
    def started():
        events.append("start")

    @queue.on_worker_stop
    def stopped():
        events.append("stop")

    @queue.task(name="work")
    def work(i):
        with lock:
            events.append("job")

    for i in range(8):
        work.delay(i)
    assert queue.run_worker(workers=4, run_once=True) == 8
    assert events == ["start"] + ["job"] * 8 + ["stop"]
    # A second worker run calls them again, once each.
    events.clear()
    assert queue.run_worker(workers=4, run_once=True) == 0
    assert events == ["start", "stop"]


def test_worker_hooks_are_not_called_by_process_one(queue: Queue) -> None:
    events: list[str] = []
    queue.on_worker_start(lambda: events.append("start"))
    queue.on_worker_stop(lambda: events.append("stop"))
    queue.before_task(lambda name, args, kwargs: events.append("before"))

    @queue.task(name="noop")
    def noop():
        return None

    noop.delay()
    assert queue.process_one()
    assert events == ["before"]


@pytest.mark.parametrize("kind", ["before_task", "on_success", "on_failure"])
def test_a_raising_task_hook_is_logged_and_never_changes_the_job(
    queue: Queue, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    def bad_hook(*args):
        raise ZeroDivisionError(f"hook {kind} broke")

    getattr(queue, kind)(bad_hook)
    after: list[str] = []

    @queue.task(name="ok")
    def ok():
        after.append("ran")
        return "fine"

    @queue.task(name="fails", max_retries=0)
    def fails():
        raise ValueError("task error")

    caplog.set_level(logging.ERROR, logger="taskito")
    good, bad = ok.delay(), fails.delay()
    assert queue.run_worker(workers=1, run_once=True) == 2
    assert good.result(timeout=0) == "fine" and after == ["ran"]
    assert bad.status == "dead"
    # The task's error, not the hook's.
    assert decode_task_error(bad.error).summary() == "ValueError: task error"  # type: ignore[union-attr]
    # And the worker went on: more jobs still run.
    again = ok.delay()
    assert queue.run_worker(workers=1, run_once=True) == 1
    assert again.status == "complete"
    logged = [r for r in caplog.records if r.name == "taskito" and kind in r.getMessage()]
    assert logged, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in logged)


@pytest.mark.parametrize("kind", ["on_worker_start", "on_worker_stop"])
def test_a_raising_worker_hook_is_logged_and_the_worker_runs(
    queue: Queue, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    def bad_hook():
        raise OSError(f"{kind} failed")

    getattr(queue, kind)(bad_hook)

    @queue.task(name="ok")
    def ok():
        return 1

    caplog.set_level(logging.ERROR, logger="taskito")
    jobs = [ok.delay() for _ in range(3)]
    assert queue.run_worker(run_once=True) == 3
    assert [j.status for j in jobs] == ["complete"] * 3
    logged = [r for r in caplog.records if kind in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info[0] is OSError  # type: ignore[index]


def test_hooks_run_for_execute_job(queue: Queue) -> None:
    seen: list[str] = []
    queue.before_task(lambda name, args, kwargs: seen.append(f"before {name}"))
    queue.on_success(lambda name, args, kwargs, result: seen.append(f"success {result}"))

    @queue.task(name="seven")
    def seven():
        return 7

    job = seven.apply_async(delay=3600)
    queue.execute_job(job.id)
    assert seen == ["before seven", "success 7"]


def test_worker_hooks_in_the_cli_worker(tmp_path: Path, db_path: str) -> None:
    marks = tmp_path / "marks.txt"
    app = write_app(
        tmp_path,
        db_path,
        body=f"""
        MARKS = {str(marks)!r}

        @queue.on_worker_start
        def started():
            with open(MARKS, "a") as f:
                f.write("start\\n")

        @queue.on_worker_stop
        def stopped():
            with open(MARKS, "a") as f:
                f.write("stop\\n")

        @queue.on_success
        def done(task_name, args, kwargs, result):
            with open(MARKS, "a") as f:
                f.write(f"success {{task_name}} {{result}}\\n")
        """,
    )
    q = Queue(db_path=db_path)
    q.enqueue("add", args=(2, 3))
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marks.read_text().splitlines() == ["start", "success add 5", "stop"]

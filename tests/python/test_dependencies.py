"""``depends_on``: a job runs only after every parent completed; a parent that fails, dies
or is cancelled cancels its dependents, transitively. Decided by the store, so a waiting
job is never claimed, by any worker process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flowkit import load_app, start_workers, stop_workers, write_app

from taskito import JobNotFoundError, Queue, TaskCancelledError


def test_child_waits_for_its_parent(queue: Queue) -> None:
    order: list[str] = []

    @queue.task(name="mark")
    def mark(tag):
        order.append(tag)
        return tag

    parent = mark.apply_async(("parent",), delay=0.3)
    child = mark.apply_async(("child",), depends_on=parent.id)
    assert child.status == "pending"
    assert child.dependencies == [parent.id]
    assert parent.dependents == [child.id]
    assert {j.id for j in queue.list_jobs(status="pending")} == {parent.id, child.id}
    # Only the parent can be claimed, and only once its delay has passed.
    assert queue.process_one() is False
    time.sleep(0.35)
    assert queue.process_one() is True
    assert queue.process_one() is True
    assert queue.process_one() is False
    assert order == ["parent", "child"]
    assert child.result(timeout=1) == "child"


def test_child_runs_after_every_parent(queue: Queue, worker: Any) -> None:
    @queue.task(name="slow")
    def slow(n):
        time.sleep(0.05 * n)
        return time.time()

    parents = [slow.delay(n) for n in (1, 4, 2)]
    child = slow.apply_async((0,), depends_on=parents)
    finished = child.result(timeout=10)
    assert finished >= max(p.result(timeout=1) for p in parents)
    assert sorted(child.dependencies) == sorted(p.id for p in parents)


def test_dependency_on_a_finished_job(queue: Queue, worker: Any) -> None:
    @queue.task(name="echo")
    def echo(x):
        return x

    parent = echo.delay(1)
    parent.result(timeout=10)
    assert echo.apply_async((2,), depends_on=parent).result(timeout=10) == 2


def test_failed_parent_cancels_dependents_transitively(queue: Queue, worker: Any) -> None:
    @queue.task(name="boom", max_retries=0)
    def boom():
        raise RuntimeError("no")

    @queue.task(name="echo")
    def echo(x):
        return x

    parent = boom.delay()
    child = echo.apply_async((1,), depends_on=parent.id)
    grandchild = queue.enqueue("echo", (2,), depends_on=[child.id])
    with pytest.raises(TaskCancelledError):
        grandchild.result(timeout=10)
    assert parent.status == "dead"
    assert child.status == "cancelled"
    assert parent.id in (child.error or "")
    # A dependency on a job that already failed is cancelled at once.
    late = echo.apply_async((3,), depends_on=parent.id)
    assert late.status == "cancelled"


def test_cancelling_a_pending_parent_cancels_its_dependents(queue: Queue) -> None:
    @queue.task(name="echo")
    def echo(x):
        return x

    parent = echo.delay(1)
    child = echo.apply_async((2,), depends_on=parent.id)
    assert queue.cancel_job(parent.id) is True
    assert child.status == "cancelled"
    assert queue.process_one() is False


def test_missing_dependency_is_refused_and_nothing_is_stored(queue: Queue) -> None:
    @queue.task(name="echo")
    def echo(x):
        return x

    real = echo.delay(1)
    missing = "01234567-89ab-7cde-8f01-23456789abcd"
    with pytest.raises(JobNotFoundError, match=missing):
        echo.apply_async((2,), depends_on=[real.id, missing])
    with pytest.raises(JobNotFoundError, match="nope"):
        queue.enqueue("echo", (3,), depends_on="nope")
    assert queue.stats()["pending"] == 1
    assert real.dependents == []
    with pytest.raises(ValueError, match="depends_on"):
        echo.apply_async((4,), depends_on=[42])


def test_dependencies_across_two_worker_processes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    write_app(
        tmp_path,
        """
        @queue.task(name="stamp")
        def stamp(i):
            time.sleep(0.01)
            return time.time()
        """,
    )
    workers = start_workers(tmp_path, db)
    try:
        app: Any = load_app(tmp_path, db)
        # 30 diamonds: a -> (b, c) -> d; d must start after b and c finished.
        diamonds = []
        for i in range(30):
            a = app.stamp.delay(i)
            b = app.stamp.apply_async((i,), depends_on=a)
            c = app.stamp.apply_async((i,), depends_on=a)
            d = app.stamp.apply_async((i,), depends_on=[b, c])
            diamonds.append((a, b, c, d))
        for a, b, c, d in diamonds:
            assert d.result(timeout=60) >= max(b.result(timeout=5), c.result(timeout=5))
            assert min(b.result(timeout=5), c.result(timeout=5)) >= a.result(timeout=5)
        stats = app.queue.stats()
        assert stats["completed"] == 120 and stats["pending"] == 0, stats
    finally:
        stop_workers(workers)

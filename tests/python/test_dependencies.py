"""``depends_on``: a job runs only after every parent completed; a parent that fails, dies
or is cancelled cancels its dependents, transitively. Decided by the store, so a waiting
job is never claimed, by any worker process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flowkit import load_app, start_workers, stop_workers, write_app

from taskito import JobNotFoundError, Queue, TaskCancelledError, chain


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


def test_chains_and_diamonds_across_two_worker_processes(tmp_path: Path, db_path: str) -> None:
    """Two worker processes drain chains, diamonds and a failing branch: every job runs
    exactly once, each after all its parents finished, and no dependent of a failure runs."""
    runs = tmp_path / "runs.log"
    write_app(
        tmp_path,
        f"""
        RUNS = {str(runs)!r}

        @queue.task(name="mark")
        def mark(label):
            start = time.monotonic_ns()
            time.sleep(0.005)
            with open(RUNS, "a") as f:
                f.write(f"{{label}} {{start}} {{time.monotonic_ns()}} {{os.getpid()}}\\n")
            return label

        @queue.task(name="boom", max_retries=0)
        def boom(label):
            raise RuntimeError(label)
        """,
    )
    workers = start_workers(tmp_path, db_path)
    try:
        app: Any = load_app(tmp_path, db_path)
        edges: list[tuple[str, str]] = []
        last = []
        for i in range(8):  # chains of four canvas steps
            labels = [f"c{i}-{k}" for k in range(4)]
            last.append(chain(*(app.mark.si(label) for label in labels)).apply())
            edges += list(zip(labels, labels[1:]))
        for i in range(8):  # diamonds a -> (b, c) -> d
            a = app.mark.delay(f"d{i}-a")
            b = app.mark.apply_async((f"d{i}-b",), depends_on=a)
            c = app.mark.apply_async((f"d{i}-c",), depends_on=a)
            last.append(app.mark.apply_async((f"d{i}-d",), depends_on=[b, c]))
            edges += [(f"d{i}-a", f"d{i}-b"), (f"d{i}-a", f"d{i}-c")]
            edges += [(f"d{i}-b", f"d{i}-d"), (f"d{i}-c", f"d{i}-d")]
        root = app.boom.delay("x")
        doomed = app.mark.apply_async(("x-1",), depends_on=root)
        doomed_too = app.mark.apply_async(("x-2",), depends_on=[doomed, last[0]])
        for job in last:
            job.result(timeout=90)
        with pytest.raises(TaskCancelledError):
            doomed_too.result(timeout=30)
        assert doomed.status == "cancelled"
    finally:
        stop_workers(workers)
    lines = [line.split() for line in runs.read_text().splitlines()]
    labels = [line[0] for line in lines]
    assert len(labels) == len(set(labels)) == 8 * 4 + 8 * 4, sorted(labels)  # each once
    assert not any(label.startswith("x") for label in labels)
    span = {line[0]: (int(line[1]), int(line[2])) for line in lines}
    for parent, child in edges:
        assert span[parent][1] < span[child][0], (parent, child)
    assert len({line[3] for line in lines}) == 2  # both processes took part

"""Canvas: signatures, chain, group, chord, starmap, chunks. Workflows are stored in one
transaction and carried on by the workers, even after the producer exits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_py
from flowkit import app_env, load_app, start_workers, stop_workers, write_app

from taskito import JobResult, Queue, Signature, TaskCancelledError, chain, chord, chunks, group, starmap


def make_tasks(queue: Queue):  # type: ignore[no-untyped-def]
    @queue.task(name="add")
    def add(a, b):
        return a + b

    @queue.task(name="total")
    def total(values):
        return sum(values)

    @queue.task(name="fail", max_retries=0)
    def fail(*_args):
        raise ValueError("step failed")

    return add, total, fail


def test_signature_apply_returns_a_job_result(queue: Queue, worker: object) -> None:
    add, _, _ = make_tasks(queue)
    sig = add.s(2, 3)
    assert isinstance(sig, Signature)
    job = sig.apply()
    assert isinstance(job, JobResult)
    assert job.result(timeout=10) == 5
    assert add.si(1, 1).set(priority=5).apply().result(timeout=10) == 2


def test_chain_passes_each_result_to_the_next_step(queue: Queue, worker: object) -> None:
    add, _, _ = make_tasks(queue)
    last = chain(add.s(1, 2), add.s(10), add.s(100)).apply()
    assert isinstance(last, JobResult)
    assert last.result(timeout=10) == 113
    assert len(last.dependencies) == 1


def test_immutable_signature_gets_no_result(queue: Queue, worker: object) -> None:
    add, _, _ = make_tasks(queue)
    last = chain(add.s(1, 2), add.si(5, 5)).apply()
    assert last.result(timeout=10) == 10


def test_chain_is_stored_at_once_and_waits_for_a_worker(queue: Queue) -> None:
    add, _, _ = make_tasks(queue)
    last = chain(add.s(1, 2), add.s(3), add.s(4)).apply()
    # All three stored, only the first claimable; users see the rest as pending.
    assert queue.stats()["pending"] == 3
    assert len(queue.list_jobs(status="pending")) == 3
    assert queue.process_one() is True
    assert queue.process_one() is True
    assert last.status == "pending"
    assert queue.process_one() is True
    assert queue.process_one() is False
    assert last.result(timeout=1) == 10


def test_group_runs_every_signature(queue: Queue, worker: object) -> None:
    add, _, _ = make_tasks(queue)
    jobs = group(add.s(1, 1), add.s(2, 2), add.s(3, 3)).apply()
    assert [j.result(timeout=10) for j in jobs] == [2, 4, 6]


def test_chord_callback_gets_the_group_results_in_order(queue: Queue, worker: object) -> None:
    add, total, _ = make_tasks(queue)

    @queue.task(name="collect")
    def collect(values):
        return values

    cb = chord(group(add.s(1, 0), add.s(2, 0), add.s(3, 0)), collect.s()).apply()
    assert cb.result(timeout=10) == [1, 2, 3]
    assert chord([add.s(5, 5), add.s(1, 1)], total.s()).apply().result(timeout=10) == 12
    assert len(cb.dependencies) == 3


def test_starmap_and_chunks(queue: Queue, worker: object) -> None:
    add, total, _ = make_tasks(queue)
    jobs = starmap(add, [(1, 2), (3, 4)]).apply()
    assert [j.result(timeout=10) for j in jobs] == [3, 7]
    parts = chunks(total, list(range(5)), 2).apply()
    assert len(parts) == 3
    # Each chunk is one call of the task with the chunk list as its argument.
    assert [p.result(timeout=10) for p in parts] == [1, 5, 4]


def test_chunks_rejects_no_items_and_bad_sizes(queue: Queue) -> None:
    add, _, _ = make_tasks(queue)
    with pytest.raises(ValueError, match="no items"):
        chunks(add, [], 2)
    for n in (0, -1, 1.5):
        with pytest.raises(ValueError, match="chunk_size must be"):
            chunks(add, [(1, 2)], n)  # type: ignore[arg-type]
    assert sum(queue.stats().values()) == 0


def test_a_failed_step_cancels_the_rest_of_the_chain(queue: Queue, worker: object) -> None:
    add, _, fail = make_tasks(queue)
    last = chain(add.s(1, 1), fail.s(), add.s(1), add.s(1)).apply()
    with pytest.raises(TaskCancelledError):
        last.result(timeout=10)
    assert queue.stats()["completed"] == 1
    assert queue.stats()["dead"] == 1
    assert queue.stats()["cancelled"] == 2
    assert "ended cancelled" in (last.error or "")


def test_chain_goes_on_after_the_producer_exits(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    write_app(
        tmp_path,
        """
        @queue.task(name="add")
        def add(a, b):
            time.sleep(0.05)
            return a + b
        """,
    )
    # The producer applies a chain and dies at once: the links live in the database.
    produced = run_py(
        "import os, flowapp\n"
        "from taskito import chain\n"
        "last = chain(flowapp.add.s(1, 2), flowapp.add.s(10), flowapp.add.s(100)).apply()\n"
        "print(last.id, flush=True)\n"
        "os._exit(0)\n",
        env=app_env(tmp_path, db),
        cwd=str(tmp_path),
    )
    assert produced.returncode == 0, produced.stderr
    last_id = produced.stdout.strip()
    workers = start_workers(tmp_path, db)
    try:
        queue = Queue(db_path=str(db))
        assert JobResult(queue, last_id).result(timeout=30) == 113
    finally:
        stop_workers(workers)


def test_many_chains_and_chords_across_two_worker_processes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    write_app(
        tmp_path,
        """
        @queue.task(name="step")
        def step(value, n):
            return value + [n]

        @queue.task(name="start")
        def start(n):
            return [n]

        @queue.task(name="merge")
        def merge(values):
            return sorted(v for part in values for v in part)
        """,
    )
    workers = start_workers(tmp_path, db)
    try:
        flowapp: Any = load_app(tmp_path, db)
        ends = [
            chain(flowapp.start.s(i), flowapp.step.s(i + 1), flowapp.step.s(i + 2)).apply() for i in range(20)
        ]
        merged = chord(group(*[flowapp.start.s(i) for i in range(10)]), flowapp.merge.s()).apply()
        for i, end in enumerate(ends):
            assert end.result(timeout=60) == [i, i + 1, i + 2]
        assert merged.result(timeout=60) == list(range(10))
        deadline = time.time() + 30
        while flowapp.queue.stats()["completed"] < 71:
            assert time.time() < deadline
            time.sleep(0.05)
        assert flowapp.queue.stats()["pending"] == 0
    finally:
        stop_workers(workers)


def test_canvas_in_test_mode_runs_inline(queue: Queue) -> None:
    add, total, _ = make_tasks(queue)
    with queue.test_mode() as results:
        last = chain(add.s(1, 2), add.s(3)).apply()
        cb = chord(group(add.s(1, 1), add.s(2, 2)), total.s()).apply()
        parts = chunks(total, [1, 2, 3], 2).apply()
    assert last.return_value == 6
    assert cb.return_value == 6
    assert [p.return_value for p in parts] == [3, 3]
    assert len(results) == 2 + 3 + 2
    assert sum(queue.stats().values()) == 0


def test_async_steps_get_the_previous_result(queue: Queue, worker: object) -> None:
    add, _, _ = make_tasks(queue)

    @queue.task(name="aadd")
    async def aadd(a, b):
        return a + b

    last = chain(add.s(1, 2), aadd.s(10), add.s(100)).apply()
    assert last.result(timeout=20) == 113


def test_chain_on_prefork_workers(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    write_app(
        tmp_path,
        """
        @queue.task(name="add")
        def add(a, b):
            return a + b

        @queue.task(name="collect")
        def collect(values):
            return sorted(values)
        """,
    )
    workers = start_workers(tmp_path, db, n=1, extra=("--pool", "prefork"))
    try:
        app: Any = load_app(tmp_path, db)
        last = chain(app.add.s(1, 2), app.add.s(10), app.add.s(100)).apply()
        merged = chord(group(app.add.s(1, 1), app.add.s(2, 2)), app.collect.s()).apply()
        assert last.result(timeout=60) == 113
        assert merged.result(timeout=60) == [2, 4]
    finally:
        stop_workers(workers)

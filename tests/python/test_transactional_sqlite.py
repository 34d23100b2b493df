"""Enqueue inside the application's transaction on SQLite: a ``sqlite3.Connection`` opened
on the queue's own file. The job exists if and only if that transaction commits."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from taskito import Queue
from taskito.exceptions import QueueFullError


def count(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("SELECT count(*) FROM jobs").fetchone()[0])


def test_rollback_leaves_nothing_and_commit_runs_the_job_once(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = Queue(db_path=str(path), workers=1, scheduler_poll_interval_ms=20)
    runs: list[int] = []

    @queue.task()
    def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    conn = sqlite3.connect(path)
    with queue.using(conn):
        add.delay(1, 1)
        add.map([(2, 2)])
        add.apply_async((3, 3), unique_key="once")
    assert count(path) == 0, "not visible before the commit"
    conn.rollback()
    job = add.apply_async((4, 4), unique_key="once", connection=conn)
    again = add.apply_async((5, 5), unique_key="once", connection=conn)
    assert again.id == job.id
    conn.commit()
    assert count(path) == 1
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    try:
        assert job.result(timeout=30) == 8
    finally:
        queue.shutdown()
        worker.join(30)
        queue.close()
    assert runs == [4]


def test_the_row_is_the_normal_paths(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = Queue(db_path=str(path))

    @queue.task(max_retries=4, timeout=7, priority=3)
    def work(x: int) -> int:
        return x

    normal = work.apply_async((1,), unique_key="a", metadata="m", delay=60)
    conn = sqlite3.connect(path)
    through = work.apply_async((1,), unique_key="b", metadata="m", delay=60, connection=conn)
    conn.commit()
    cols = (
        "queue, task_name, hex(payload), status, priority, max_retries, retry_backoff, timeout_ms, "
        "metadata, result_ttl_ms, scheduled_at - created_at BETWEEN 59000 AND 61000, length(id)"
    )
    rows = [
        conn.execute(f"SELECT {cols} FROM jobs WHERE id = ?", (j.id,)).fetchone() for j in (normal, through)
    ]
    assert rows[0] == rows[1] and rows[0] is not None
    queue.close()


def test_two_concurrent_transactions_with_one_unique_key_end_with_one_job(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = Queue(db_path=str(path))

    @queue.task()
    def job(x: int) -> int:
        return x

    job.delay(0)
    first = sqlite3.connect(path, timeout=10)
    second = sqlite3.connect(path, timeout=10, check_same_thread=False)
    a = job.apply_async((1,), unique_key="k", connection=first)
    got: list = []
    t = threading.Thread(target=lambda: got.append(job.apply_async((2,), unique_key="k", connection=second)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "the second writer waits for the first transaction"
    first.commit()
    t.join(15)
    second.commit()
    assert got[0].id == a.id
    assert count(path) == 2
    queue.close()


def test_max_pending_and_wrong_targets(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = Queue(db_path=str(path), max_pending={"default": 1})

    @queue.task()
    def job(x: int) -> int:
        return x

    conn = sqlite3.connect(path)
    job.apply_async((1,), connection=conn)
    with pytest.raises(QueueFullError, match="max_pending is 1"):
        job.apply_async((2,), connection=conn)
    conn.commit()
    assert count(path) == 1
    other = tmp_path / "other.db"
    with pytest.raises(ValueError, match="other.db.*the queue's is"):
        job.apply_async((3,), connection=sqlite3.connect(other))
    with pytest.raises(TypeError, match="sqlite3.Connection"):
        job.apply_async((3,), connection=object())
    queue.close()

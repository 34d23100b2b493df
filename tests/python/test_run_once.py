"""Run once: ``run_worker(run_once=True, max_jobs=...)``, ``process_one()`` and the CLI's
``--run-once`` / ``--max-jobs``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cli_support import run_cli, start_cli, wait_for, write_app

from taskito import Queue


def _tasks(queue: Queue) -> dict:
    ran: list[tuple[str, int]] = []

    @queue.task(name="record")
    def record(n: int) -> int:
        ran.append(("record", n))
        return n * 10

    @queue.task(name="fail", max_retries=0)
    def fail() -> None:
        raise RuntimeError("always fails")

    return {"ran": ran, "record": record, "fail": fail}


def test_run_once_processes_everything_ready_and_returns_the_count(queue: Queue) -> None:
    t = _tasks(queue)
    jobs = [t["record"].delay(i) for i in range(7)]
    assert queue.run_worker(run_once=True) == 7
    assert [j.status for j in jobs] == ["complete"] * 7
    assert sorted(n for _, n in t["ran"]) == list(range(7))
    assert [j.result(timeout=0) for j in jobs] == [i * 10 for i in range(7)]


def test_run_once_on_an_empty_queue_returns_zero(queue: Queue) -> None:
    _tasks(queue)
    assert queue.run_worker(run_once=True) == 0


def test_run_once_counts_failures(queue: Queue) -> None:
    t = _tasks(queue)
    ok = t["record"].delay(1)
    bad = t["fail"].delay()
    assert queue.run_worker(run_once=True) == 2
    assert ok.status == "complete"
    assert bad.status == "dead"
    assert "always fails" in (bad.error or "")


def test_run_once_with_max_jobs_stops_after_that_many(queue: Queue) -> None:
    t = _tasks(queue)
    jobs = [t["record"].delay(i) for i in range(5)]
    assert queue.run_worker(run_once=True, max_jobs=2) == 2
    statuses = [j.status for j in jobs]
    assert statuses.count("complete") == 2 and statuses.count("pending") == 3
    # The rest is still there for the next run.
    assert queue.run_worker(run_once=True, max_jobs=10) == 3
    assert [j.status for j in jobs] == ["complete"] * 5


def test_run_once_does_not_run_delayed_jobs_early(queue: Queue) -> None:
    t = _tasks(queue)
    later = t["record"].apply_async(args=(1,), delay=3600)
    now = t["record"].delay(2)
    assert queue.run_worker(run_once=True) == 1
    assert now.status == "complete"
    assert later.status == "pending"
    assert ("record", 1) not in t["ran"]


def test_run_once_only_serves_the_queues_given(queue: Queue) -> None:
    t = _tasks(queue)
    a = t["record"].apply_async(args=(1,), queue="a")
    b = t["record"].apply_async(args=(2,), queue="b")
    assert queue.run_worker(queues=["b"], run_once=True) == 1
    assert (a.status, b.status) == ("pending", "complete")


def test_process_one_runs_one_job_in_the_calling_thread(queue: Queue) -> None:
    idents: list[int] = []

    @queue.task(name="where")
    def where(n: int) -> int:
        idents.append(threading.get_ident())
        return n

    first, second = where.delay(1), where.delay(2)
    assert queue.process_one() is True
    assert idents == [threading.get_ident()]
    assert (first.status, second.status) == ("complete", "pending")
    assert first.result(timeout=0) == 1
    assert queue.process_one() is True
    assert second.status == "complete"
    assert queue.process_one() is False


def test_process_one_returns_false_when_nothing_is_ready(queue: Queue) -> None:
    t = _tasks(queue)
    assert queue.process_one() is False
    later = t["record"].apply_async(args=(1,), delay=3600)
    assert queue.process_one() is False
    assert later.status == "pending"


def test_process_one_records_a_failure_and_still_returns_true(queue: Queue) -> None:
    t = _tasks(queue)
    bad = t["fail"].delay()
    assert queue.process_one() is True
    assert bad.status == "dead"
    (err,) = queue.job_errors(bad.id)
    assert "always fails" in err["error"] and "RuntimeError" in err["traceback"]


def test_process_one_takes_the_highest_priority_and_honours_queues(queue: Queue) -> None:
    t = _tasks(queue)
    low = t["record"].apply_async(args=(1,), priority=0)
    high = t["record"].apply_async(args=(2,), priority=9)
    other = t["record"].apply_async(args=(3,), priority=99, queue="other")
    assert queue.process_one(queues=["default"]) is True
    assert (high.status, low.status, other.status) == ("complete", "pending", "pending")


def test_repeated_process_one_reuses_one_registry_row_per_thread(queue: Queue) -> None:
    t = _tasks(queue)
    for i in range(5):
        t["record"].delay(i)
    while queue.process_one():
        pass
    rows = queue.workers()
    assert len(rows) == 1, rows
    assert rows[0]["status"] != "active"  # deregistered after each call


# -- CLI -----------------------------------------------------------------------------------


def test_cli_run_once_processes_ready_jobs_and_exits(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    jobs = [q.enqueue("add", args=(i, i)) for i in range(4)]
    later = q.enqueue("add", args=(0, 0), delay=3600)
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Processed 4 job(s)." in proc.stdout
    assert "Worker stopped." in proc.stdout
    assert [j.result(timeout=0) for j in jobs] == [0, 2, 4, 6]
    assert later.status == "pending"


def test_cli_run_once_with_max_jobs(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    jobs = [q.enqueue("add", args=(i, 1)) for i in range(5)]
    proc = run_cli("worker", "--app", app, "--run-once", "--max-jobs", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Processed 2 job(s)." in proc.stdout
    statuses = [j.status for j in jobs]
    assert statuses.count("complete") == 2 and statuses.count("pending") == 3


def test_cli_max_jobs_is_a_continuous_worker_that_exits_after_n(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    first = q.enqueue("add", args=(1, 1))
    proc = start_cli("worker", "--app", app, "--max-jobs", "3", cwd=tmp_path)
    try:
        wait_for(lambda: first.status == "complete", what="the first job")
        # Nothing else is ready, yet the worker keeps waiting for its remaining two jobs.
        time.sleep(0.5)
        assert proc.poll() is None, "the worker exited before processing 3 jobs"
        more = [q.enqueue("add", args=(i, 2)) for i in range(4)]
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Processed 3 job(s)." in out
    statuses = [j.status for j in more]
    assert statuses.count("complete") == 2 and statuses.count("pending") == 2


def test_cli_max_jobs_must_be_positive(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    proc = run_cli("worker", "--app", app, "--max-jobs", "0", cwd=tmp_path)
    assert proc.returncode != 0
    assert "max_jobs" in proc.stderr

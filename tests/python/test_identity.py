"""Worker identity: ``run_worker(worker_id=...)`` / ``--worker-id``, the ``<hostname>-<pid>``
default, per-thread ids ``<worker_id>-<n>`` recorded on every job, and finding what each
worker runs with ``list_jobs(worker_id=...)``."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

from cli_support import run_cli, wait_for, write_app
from conftest import RunningWorker, run_py

from taskito import Queue


def test_jobs_record_the_thread_of_a_named_worker(queue: Queue) -> None:
    @queue.task(name="double")
    def double(n: int) -> int:
        return 2 * n

    jobs = [double.delay(i) for i in range(6)]
    assert queue.run_worker(worker_id="alpha", workers=3, run_once=True) == 6
    threads = {j.to_dict()["worker_id"] for j in jobs}
    assert threads <= {"alpha-0", "alpha-1", "alpha-2"}, threads
    assert {j.worker_id for j in jobs} == threads
    rows = [w for w in queue.workers() if w["worker_id"] == "alpha"]
    assert len(rows) == 1
    assert rows[0]["hostname"] == socket.gethostname()


def test_a_pending_job_has_no_worker_id(queue: Queue) -> None:
    @queue.task(name="noop")
    def noop() -> None:
        return None

    job = noop.delay()
    assert job.to_dict()["worker_id"] is None


def test_list_jobs_shows_what_each_worker_runs_now(db_path: str) -> None:
    gate = threading.Event()
    qa = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10)
    qb = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)
    for q in (qa, qb):

        @q.task(name="hold")
        def hold(n: int) -> int:
            assert gate.wait(60)
            return n

    jobs_a = [qa.enqueue("hold", args=(i,), queue="a") for i in range(2)]
    job_b = qb.enqueue("hold", args=(9,), queue="b")
    wa = RunningWorker(qa, worker_id="box-a", queues=["a"]).start()
    wb = RunningWorker(qb, worker_id="box-b", queues=["b"]).start()
    try:
        # The thread id is recorded as the job starts, not only when it ends.
        def running_with_threads() -> list:
            rows = [j.to_dict() for j in qa.list_jobs(status="running")]
            return rows if len(rows) == 3 and all(r["worker_id"] for r in rows) else []

        rows = wait_for(running_with_threads, what="three running jobs")
        by_thread = {r["worker_id"]: r["id"] for r in rows}  # type: ignore[union-attr]
        assert set(by_thread) == {"box-a-0", "box-a-1", "box-b-0"}
        assert by_thread["box-b-0"] == job_b.id
        # One call answers "what is worker box-a running now".
        on_a = qa.list_jobs(status="running", worker_id="box-a")
        assert sorted(j.id for j in on_a) == sorted(j.id for j in jobs_a)
        assert {j.worker_id for j in on_a} == {"box-a-0", "box-a-1"}
        # A thread id matches only that thread's job.
        (on_thread,) = qa.list_jobs(worker_id="box-a-1")
        assert on_thread.id == by_thread["box-a-1"]
        assert [j.id for j in qa.list_jobs(status="running", worker_id="box-b")] == [job_b.id]
    finally:
        gate.set()
        wa.stop()
        wb.stop()
    # After the run the job keeps the thread that ran it.
    assert qb.get_job(job_b.id).to_dict()["worker_id"] == "box-b-0"  # type: ignore[union-attr]
    assert len(qa.list_jobs(worker_id="box-a", status="complete")) == 2


def test_default_worker_id_is_hostname_and_pid(db_path: str) -> None:
    code = """
import json, os, socket, sys
from taskito import Queue
q = Queue(db_path=sys.argv[1], workers=2, scheduler_poll_interval_ms=10)

@q.task(name="noop")
def noop():
    return None

job = noop.delay()
q.run_worker(run_once=True)
print(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                  "job": job.to_dict()["worker_id"], "rows": q.workers()}))
"""
    proc = run_py(code, db_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    base = f"{out['host']}-{out['pid']}"
    assert [r["worker_id"] for r in out["rows"]] == [base]
    assert out["rows"][0]["pid"] == out["pid"]
    assert re.fullmatch(re.escape(base) + r"-[01]", out["job"]), out["job"]


def test_cli_worker_id_flag_and_default(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    named = q.enqueue("add", args=(1, 2))
    proc = run_cli("worker", "--app", app, "--run-once", "--worker-id", "cli-7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert named.worker_id in {"cli-7-0", "cli-7-1"}
    assert [j.id for j in q.list_jobs(worker_id="cli-7")] == [named.id]

    unnamed = q.enqueue("add", args=(3, 4))
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    other = [w for w in q.workers() if w["worker_id"] != "cli-7"]
    assert len(other) == 1
    row = other[0]
    assert row["worker_id"] == f"{socket.gethostname()}-{row['pid']}"
    assert unnamed.worker_id in {f"{row['worker_id']}-0", f"{row['worker_id']}-1"}


def test_process_one_records_its_own_worker_id(queue: Queue) -> None:
    @queue.task(name="noop")
    def noop() -> None:
        return None

    job = noop.delay()
    assert queue.process_one()
    wid = job.worker_id
    assert wid is not None and wid.startswith(f"{socket.gethostname()}-")
    (row,) = queue.workers()
    assert wid.startswith(row["worker_id"] + "-")
    assert [j.id for j in queue.list_jobs(worker_id=row["worker_id"])] == [job.id]

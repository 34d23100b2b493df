"""Pausing and resuming queues: the API, the CLI, a running worker and two worker
processes on one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import ROOT, run_cli, wait_for, write_app
from conftest import RunningWorker

from taskito import Queue


def test_pause_resume_and_list(queue: Queue, db_path: str) -> None:
    assert queue.paused_queues() == []
    assert queue.pause("emails") is True
    assert queue.pause("emails") is False  # already paused
    assert queue.pause("reports") is True
    assert queue.paused_queues() == ["emails", "reports"]
    assert queue.resume("emails") is True
    assert queue.resume("emails") is False
    assert queue.paused_queues() == ["reports"]
    # Another Queue object on the same file sees the same pauses.
    assert Queue(db_path=db_path).paused_queues() == ["reports"]


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_bad_queue_name_is_refused(queue: Queue, bad: object) -> None:
    with pytest.raises(ValueError, match="queue"):
        queue.pause(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue"):
        queue.resume(bad)  # type: ignore[arg-type]


def test_paused_queue_jobs_wait_while_others_run(queue: Queue) -> None:
    @queue.task(queue="slow")
    def slow(i: int) -> int:
        return i

    @queue.task()
    def fast(i: int) -> int:
        return i

    queue.pause("slow")
    held = [slow.delay(i) for i in range(5)]
    free = [fast.delay(i) for i in range(5)]
    # run_once drains what is claimable: the paused queue's jobs are not.
    assert queue.run_worker(run_once=True) == 5
    assert [j.status for j in free] == ["complete"] * 5
    assert [j.status for j in held] == ["pending"] * 5
    # process_one and an explicit queue list skip it too.
    assert queue.process_one() is False
    assert queue.process_one(queues=["slow"]) is False
    queue.resume("slow")
    assert queue.run_worker(queues=["slow"], run_once=True) == 5
    assert [j.result(timeout=5) for j in held] == list(range(5))


def test_pause_stops_a_running_worker_within_a_second(queue: Queue, tmp_path: Path) -> None:
    starts = tmp_path / "starts"

    @queue.task(queue="stream")
    def step(i: int) -> int:
        with open(starts, "a") as f:
            f.write(f"{time.time()}\n")
        time.sleep(0.02)
        return i

    jobs = queue.enqueue_many(step.name, [(i,) for i in range(400)])
    worker = RunningWorker(queue).start()
    try:
        wait_for(lambda: starts.exists() and len(starts.read_text().split()) >= 5, what="jobs to start")
        queue.pause("stream")
        paused_at = time.time()
        time.sleep(2.0)
        started = [float(t) for t in starts.read_text().split()]
        late = [t for t in started if t > paused_at + 1.0]
        assert late == [], f"{len(late)} job(s) started more than 1 s after the pause"
        assert queue.stats("stream")["pending"] > 0
        queue.resume("stream")
        resumed_at = time.time()
        wait_for(lambda: queue.stats("stream")["completed"] == 400, timeout=60, what="the rest to run")
        assert max(float(t) for t in starts.read_text().split()) > resumed_at
    finally:
        worker.stop()
    assert all(j.status == "complete" for j in jobs)


def test_cli_pause_and_resume(tmp_path: Path) -> None:
    app = write_app(tmp_path, str(tmp_path / "q.db"))
    out = run_cli("pause", "--app", app, "mail", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Paused queue mail" in out.stdout
    again = run_cli("pause", "--app", app, "mail", "--json", cwd=tmp_path)
    assert json.loads(again.stdout) == {"queue": "mail", "paused": True, "changed": False}
    assert Queue(db_path=str(tmp_path / "q.db")).paused_queues() == ["mail"]
    res = run_cli("resume", "--app", app, "mail", "--json", cwd=tmp_path)
    assert json.loads(res.stdout) == {"queue": "mail", "paused": False, "changed": True}
    plain = run_cli("resume", "--app", app, "mail", cwd=tmp_path)
    assert plain.returncode == 0 and "was not paused" in plain.stdout
    assert Queue(db_path=str(tmp_path / "q.db")).paused_queues() == []


MP_APP = """
import os, time
from taskito import Queue
queue = Queue(db_path=os.environ["PAUSE_DB"], workers=2, scheduler_poll_interval_ms=20)

@queue.task(queue="jobs")
def mark(i):
    fd = os.open(os.path.join(os.environ["RUNS_DIR"], str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, repr(time.time()).encode())
    os.close(fd)
    time.sleep(0.01)
    return i
"""


def test_two_worker_processes_honour_a_pause(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "pauseapp.py").write_text(MP_APP)
    db = str(tmp_path / "q.db")
    env = {**os.environ, "PAUSE_DB": db, "RUNS_DIR": str(runs)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env.pop("TASKITO_DB_PATH", None)
    queue = Queue(db_path=db)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", "pauseapp:queue"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        wait_for(
            lambda: len([w for w in queue.workers() if w["status"] == "active"]) >= 2,
            timeout=60,
            what="two workers",
        )
        # Paused from the CLI (a third process) while both workers poll.
        out = run_cli("pause", "--app", "pauseapp:queue", "jobs", cwd=tmp_path, env={"PAUSE_DB": db})
        assert out.returncode == 0, out.stderr
        queue.enqueue_many("pauseapp.mark", [(i,) for i in range(200)], queue="jobs")
        time.sleep(1.5)
        assert list(runs.iterdir()) == []
        assert queue.stats("jobs")["pending"] == 200
        resumed_at = time.time()
        out = run_cli("resume", "--app", "pauseapp:queue", "jobs", cwd=tmp_path, env={"PAUSE_DB": db})
        assert out.returncode == 0, out.stderr
        wait_for(lambda: queue.stats("jobs")["completed"] == 200, timeout=60, what="all jobs to run")
        assert len(list(runs.iterdir())) == 200  # each exactly once (O_EXCL)
        first = min(float(p.read_text()) for p in runs.iterdir())
        assert first - resumed_at < 5.0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.communicate(timeout=60)
    assert all(w.returncode == 0 for w in workers)

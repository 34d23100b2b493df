"""Engine liveness with real worker processes: a worker restarted under a dead run's id puts
that run's jobs back at once; two live processes sharing an id are warned about and still
told apart; a task holding the GIL in C neither stops heartbeats, timeouts or engine log
records, nor runs twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from faultkit import Lab, wait_for

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


@pytest.fixture
def lab_factory(tmp_path: Path, db_path: str) -> Iterator:
    labs: list[Lab] = []

    def make(hb: float = 2.0, stale: float = 10.0, **env: str) -> Lab:
        lab = Lab(tmp_path, hb=hb, stale=stale, db=db_path, **env)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop_all()


def _rows(queue, worker_id: str) -> list[dict]:
    return [w for w in queue.workers() if w["worker_id"] == worker_id]


def test_a_restart_under_the_same_id_reruns_the_dead_runs_job(lab_factory) -> None:
    """A process manager restarts a worker with its fixed ``--worker-id`` after a kill -9.
    The stale limit (10 min) is far too long to explain the rerun: the newcomer knows its
    predecessor's process is gone and puts the job back at once."""
    lab = lab_factory(hb=2.0, stale=600.0)
    queue = lab.queue()
    first = lab.worker(worker_id="w-fixed")
    job = queue.enqueue("work", args=(9,), kwargs={"first_seconds": 300.0})
    wait_for(lambda: lab.runs(), timeout=30, what="the first run to start")
    first.kill()
    first.wait(30)
    restarted_at = time.time()
    second = lab.worker(worker_id="w-fixed")

    rerun = wait_for(
        lambda: [r for r in lab.runs() if r.kind == "S" and r.pid == second.pid],
        timeout=60,
        what="the job to run again",
    )[0]
    took = rerun.at - restarted_at
    print(f"\n[figure] rerun {took:.2f} s after the same-id restart (heartbeat 2 s, stale 600 s)")
    assert took < 15.0
    assert job.result(timeout=60) == [9, rerun.nonce]
    assert [r.kind for r in lab.runs()] == ["S", "S", "E"]  # ran twice (one crash), ended once
    notes = [e for e in queue.job_errors(job.id) if "stopped heartbeating" in e["error"]]
    assert len(notes) == 1
    # The registry tells the two runs apart: the dead one and the live one.
    rows = _rows(queue, "w-fixed")
    assert sorted(r["status"] for r in rows) == ["active", "dead"]
    assert {r["pid"] for r in rows} == {first.pid, second.pid}
    keys = {"worker_id", "hostname", "pid", "queues", "started_at", "last_heartbeat", "status"}
    assert set(rows[0]) >= keys
    assert queue.stats()["completed"] == 1


def test_two_live_workers_with_one_id_are_warned_about_and_told_apart(lab_factory) -> None:
    lab = lab_factory(hb=0.3, stale=3.0)
    queue = lab.queue()
    a = lab.worker(worker_id="w-twin")
    b = lab.worker(worker_id="w-twin")
    warning = "another live worker uses the id w-twin"
    wait_for(lambda: warning in lab.all_output(), timeout=30, what="the duplicate-id warning")
    assert "WARNING" in next(line for line in lab.all_output().splitlines() if warning in line)
    assert [r["status"] for r in _rows(queue, "w-twin")] == ["active", "active"]

    # Each run's claims are its own: killing one puts back only its job, and the survivor
    # (same id) runs it again once its own job is done. One thread each: one job each.
    jobs = [queue.enqueue("work", args=(i,), kwargs={"first_seconds": 4.0}) for i in range(2)]
    wait_for(lambda: len(lab.runs()) == 2, timeout=30, what="both jobs to start")
    runs = lab.runs()
    assert {r.pid for r in runs} == {a.pid, b.pid}
    victim, survivor = (a, b) if runs[0].pid == a.pid else (b, a)
    victim_job = next(j for j in jobs if j.id == runs[0].job_id)
    survivor_job = next(j for j in jobs if j is not victim_job)
    victim.kill()
    victim.wait(30)
    assert survivor_job.result(timeout=60)[0] == jobs.index(survivor_job)
    value = victim_job.result(timeout=60)
    rerun = [r for r in lab.runs() if r.job_id == victim_job.id and r.kind == "S"][-1]
    assert rerun.pid == survivor.pid and value[1] == rerun.nonce
    # The survivor's own job was never put back, though it runs under the killed run's id.
    assert not [e for e in queue.job_errors(survivor_job.id) if "stopped heartbeating" in e["error"]]
    assert len([r for r in lab.runs() if r.job_id == survivor_job.id and r.kind == "S"]) == 1
    assert sorted(r["status"] for r in _rows(queue, "w-twin")) == ["active", "dead"]


def _asctime(line: str) -> float:
    # "[taskito] 2026-01-01 10:00:00,123 WARNING ..." (the CLI's format, local time)
    stamp = " ".join(line.split()[1:3])
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_a_task_holding_the_gil_runs_once_while_others_time_out_and_the_engine_logs(lab_factory) -> None:
    """One worker process runs two jobs that sleep (GIL released) with a 2 s timeout, then
    a task that holds the GIL inside C for 14 s; a second worker process shares the
    database. While the GIL is held: heartbeats go on, the two jobs time out and are
    recorded dead, and the engine's warnings are logged (delivered to Python afterwards,
    stamped with the time they were logged). The GIL-bound task runs exactly once."""
    hold = 14.0
    lab = lab_factory(hb=1.0, stale=5.0)
    queue = lab.queue()
    holder = lab.worker(threads=3, worker_id="w-holder")
    wait_for(lambda: _rows(queue, "w-holder"), timeout=30, what="the worker to register")
    sleepers = [
        queue.enqueue("work", args=(i,), kwargs={"seconds": 40.0}, timeout=2.0, max_retries=0)
        for i in range(2)
    ]
    wait_for(lambda: len(lab.runs()) == 2, timeout=30, what="the sleepers to start")
    gil = queue.enqueue("hold_gil", args=(hold,), timeout=120, max_retries=0)
    wait_for(lambda: any(r.job_id == gil.id for r in lab.runs()), timeout=30, what="the GIL holder to start")
    other = lab.worker(threads=2, worker_id="w-other")

    beats: set[int] = set()
    dead_while_held: list[bool] = []

    def ended() -> bool:
        rows = _rows(queue, "w-holder")
        beats.update(r["last_heartbeat"] for r in rows)
        held = not any(r.kind == "E" and r.job_id == gil.id for r in lab.runs())
        if held:
            dead_while_held.append(all(s.status == "dead" for s in sleepers))
        return not held and gil.status == "complete"

    wait_for(ended, timeout=90, interval=0.05, what="the GIL-holding task to end")
    start = next(r.at for r in lab.runs() if r.job_id == gil.id and r.kind == "S")
    end = next(r.at for r in lab.runs() if r.job_id == gil.id and r.kind == "E")
    assert end - start >= hold - 0.5
    during = sorted(b for b in beats if (start + 2) * 1000 < b < (end - 1) * 1000)
    assert len(during) >= 5, f"heartbeats stopped while the GIL was held: {sorted(beats)}"
    # The sleepers timed out and were recorded while the GIL was still held.
    assert any(dead_while_held), "the timed-out jobs were recorded only after the GIL was released"
    for s in sleepers:
        assert s.to_dict()["completed_at"] / 1000 < end
        assert "TaskTimeoutError" in s.errors[-1]["error"]
    # Exactly once, by the process that held the GIL; the other process never ran it.
    gil_runs = [r for r in lab.runs() if r.job_id == gil.id]
    assert [r.kind for r in gil_runs] == ["S", "E"] and gil_runs[0].pid == holder.pid
    assert not [e for e in queue.job_errors(gil.id) if "stopped heartbeating" in e["error"]]
    assert other.poll() is None

    # The engine's records arrived, stamped with the moment they were logged (during the hold).
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(30) == 0
    text = lab.all_output()
    lines = [line for line in text.splitlines() if "passed its timeout" in line]
    assert len(lines) == 2, text
    assert all(start < _asctime(line) < end for line in lines), (lines, start, end)
    assert any("written off" in line for line in text.splitlines())

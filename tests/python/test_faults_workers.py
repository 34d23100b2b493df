"""Workers that die: the registry and its heartbeats, recovery of a killed worker's jobs,
fencing of a presumed-dead worker's late result, and random kill -9 under load.

Every worker here is a real process (``python -m taskito worker``) killed with real signals.
Waits are bounded generously: they catch hangs, they do not measure speed (the recovery time
after a kill -9 is the one figure checked against its target, 15 s)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
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


def _worker_row(queue, worker_id: str) -> dict | None:
    return next((w for w in queue.workers() if w["worker_id"] == worker_id), None)


def _recovery_notes(queue, job_id: str) -> list[dict]:
    return [e for e in queue.job_errors(job_id) if "stopped heartbeating" in e["error"]]


def test_queue_rejects_a_stale_limit_not_above_the_heartbeat(tmp_path: Path) -> None:
    from taskito import Queue

    with pytest.raises(ValueError, match="stale_after"):
        Queue(db_path=str(tmp_path / "q.db"), heartbeat_interval=2, stale_after=2)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        Queue(db_path=str(tmp_path / "q.db"), heartbeat_interval=0)
    q = Queue(db_path=str(tmp_path / "q.db"), heartbeat_interval=0.5, stale_after=3)
    assert (q.heartbeat_interval, q.stale_after) == (0.5, 3.0)


def test_registry_lists_workers_heartbeats_and_marks_the_dead(lab_factory) -> None:
    lab = lab_factory(hb=0.2, stale=1.5)
    queue = lab.queue()
    a = lab.worker(worker_id="w-all")
    b = lab.worker(worker_id="w-ab", TASKITO_QUEUES="alpha,beta")
    rows = wait_for(
        lambda: (
            [_worker_row(queue, "w-all"), _worker_row(queue, "w-ab")]
            if _worker_row(queue, "w-all") and _worker_row(queue, "w-ab")
            else None
        ),
        timeout=30,
        what="both workers registered",
    )
    for row, proc in zip(rows, (a, b)):
        assert set(row) >= {
            "worker_id",
            "hostname",
            "pid",
            "queues",
            "started_at",
            "last_heartbeat",
            "status",
        }
        assert row["pid"] == proc.pid
        assert row["hostname"] == socket.gethostname()
        assert row["status"] == "active"
        assert row["started_at"] <= row["last_heartbeat"]
    assert rows[1]["queues"] == "alpha,beta"

    # Heartbeats keep coming.
    first = rows[0]["last_heartbeat"]
    wait_for(lambda: _worker_row(queue, "w-all")["last_heartbeat"] > first, timeout=10, what="a heartbeat")

    # A clean stop marks the worker stopped.
    b.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0
    assert _worker_row(queue, "w-ab")["status"] == "stopped"

    # kill -9: nobody is left to notice, so the row stays active...
    a.kill()
    a.wait(30)
    time.sleep(2.0)
    assert _worker_row(queue, "w-all")["status"] == "active"
    # ...until another live worker sees it has gone quiet.
    lab.worker(worker_id="w-other")
    wait_for(lambda: _worker_row(queue, "w-all")["status"] == "dead", timeout=30, what="w-all marked dead")
    assert _worker_row(queue, "w-other")["status"] == "active"


@pytest.mark.parametrize("timeout", [None, 1.0], ids=["no-timeout", "timeout-passes-meanwhile"])
def test_heartbeat_goes_on_while_a_task_holds_the_gil(lab_factory, timeout: float | None) -> None:
    """The heartbeat needs no GIL, not even while the watchdog waits for the GIL to interrupt
    a task that passed its timeout inside a C call."""
    hold = 4.0
    lab = lab_factory(hb=0.2, stale=30)
    queue = lab.queue()
    lab.worker(worker_id="w-gil")
    wait_for(lambda: _worker_row(queue, "w-gil"), timeout=30, what="worker registered")
    job = queue.enqueue("hold_gil", args=(hold,), timeout=timeout, max_retries=0)
    beats = set()

    def ended() -> bool:
        beats.add(_worker_row(queue, "w-gil")["last_heartbeat"])
        return job.status in ("complete", "dead") and any(r.kind == "E" for r in lab.runs())

    wait_for(ended, timeout=60, interval=0.02, what="the GIL-holding task to end")
    (start,) = [r.at for r in lab.runs() if r.kind == "S"]
    took = job.to_dict()["completed_at"] / 1000 - start
    if timeout is None:
        assert took >= hold - 0.2  # the task really held the GIL that long
    else:
        # The watchdog needs no GIL either: the job failed at its timeout (+ the 1 s grace)
        # while the task still held the GIL.
        assert took < hold - 0.5, took
    window = (start + 1.3, start + hold - 0.3)  # after the deadline, while the GIL is held
    during = sorted(b for b in beats if window[0] * 1000 < b < window[1] * 1000)
    assert len(during) >= 3, f"no heartbeat while the GIL was held: {sorted(beats)} vs {window}"
    assert job.status == ("complete" if timeout is None else "dead")


def test_a_claimed_job_records_the_worker_holding_it(lab_factory) -> None:
    lab = lab_factory(hb=0.2, stale=5)
    queue = lab.queue()
    lab.worker(worker_id="w-hold")
    job = queue.enqueue("work", args=(1,), kwargs={"seconds": 3.0})
    wait_for(lambda: lab.runs(), timeout=30, what="the job to start")
    wait_for(lambda: job.to_dict()["worker_id"], timeout=10, what="worker_id on the job")
    assert job.status == "running"
    assert job.to_dict()["worker_id"].startswith("w-hold")
    assert [j.id for j in queue.list_jobs(worker_id="w-hold", status="running")] == [job.id]
    assert job.result(timeout=30)[0] == 1
    assert job.to_dict()["worker_id"].startswith("w-hold")


def test_kill9_mid_job_reruns_within_target_and_completes_once(lab_factory) -> None:
    """Default heartbeat (2 s) and stale limit (10 s): the orphan must run again within 15 s."""
    lab = lab_factory()  # the defaults
    queue = lab.queue()
    victim = lab.worker(worker_id="w-victim")
    job = queue.enqueue("work", args=(7,), kwargs={"first_seconds": 120.0})
    wait_for(lambda: lab.runs(), timeout=30, what="the first run to start")
    victim.kill()
    killed_at = time.time()
    victim.wait(30)
    lab.worker(worker_id="w-rescuer")

    rerun = wait_for(
        lambda: [r for r in lab.runs() if r.kind == "S" and r.pid != victim.pid],
        timeout=60,
        what="the job to run again",
    )[0]
    recovery = rerun.at - killed_at
    print(f"\n[figure] rerun {recovery:.2f} s after kill -9 (heartbeat 2 s, stale 10 s)")
    assert recovery < 15.0

    value = job.result(timeout=60)
    assert value == [7, rerun.nonce]  # the second run's result
    runs = lab.runs()
    assert [r.kind for r in runs] == ["S", "S", "E"]  # started twice (one crash), ended once
    notes = _recovery_notes(queue, job.id)
    assert len(notes) == 1 and "w-victim" in notes[0]["error"]
    assert _worker_row(queue, "w-victim")["status"] == "dead"
    assert _worker_row(queue, "w-rescuer")["status"] == "active"
    assert queue.stats()["completed"] == 1


def test_presumed_dead_worker_that_comes_back_has_its_late_result_discarded(lab_factory) -> None:
    lab = lab_factory(hb=0.3, stale=2.0)
    queue = lab.queue()
    frozen = lab.worker(worker_id="w-frozen")
    job = queue.enqueue("work", args=(3,), kwargs={"seconds": 2.0})
    first = wait_for(lambda: lab.runs(), timeout=30, what="the first run to start")[0]
    lab.freeze(frozen)
    try:
        rescuer = lab.worker(worker_id="w-rescuer")
        value = job.result(timeout=60)
        second = [r for r in lab.runs() if r.kind == "S" and r.pid == rescuer.pid]
        assert len(second) == 1 and value == [3, second[0].nonce]
        assert _worker_row(queue, "w-frozen")["status"] == "dead"
        completed_at = job.to_dict()["completed_at"]
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(30) == 0
    finally:
        frozen.send_signal(signal.SIGCONT)

    # The first run now finishes and its worker tries to record it.
    wait_for(
        lambda: any(r.kind == "E" and r.nonce == first.nonce for r in lab.runs()),
        timeout=30,
        what="the frozen run to finish",
    )
    # The worker is alive again and goes on serving.
    wait_for(lambda: _worker_row(queue, "w-frozen")["status"] == "active", timeout=30, what="heartbeat")
    later = queue.enqueue("work", args=(4,))
    assert later.result(timeout=30)[0] == 4
    frozen.send_signal(signal.SIGTERM)
    assert frozen.wait(30) == 0  # drained: its result handler flushed everything

    assert job.status == "complete"
    assert job.result(timeout=1) == [3, second[0].nonce]
    assert job.to_dict()["completed_at"] == completed_at
    assert len(_recovery_notes(queue, job.id)) == 1
    ends = [r for r in lab.runs() if r.kind == "E" and r.job_id == job.id]
    assert len(ends) == 2  # both runs returned; only the second was recorded
    assert queue.stats()["completed"] == 2


def test_random_kill9_of_workers_while_producers_enqueue(lab_factory, tmp_path: Path) -> None:
    rounds, live_workers, producers, per_producer = 12, 3, 2, 150
    lab = lab_factory(hb=0.3, stale=2.0)
    queue = lab.queue()
    rng = random.Random(int(os.environ.get("FAULT_SEED", "0")) or None)
    workers = [lab.worker(threads=2) for _ in range(live_workers)]
    outs = [tmp_path / f"produced-{i}.json" for i in range(producers)]
    prods = [lab.producer(per_producer, 0.1, out, longest=0.2) for out in outs]

    kills = 0
    for _ in range(rounds):
        time.sleep(rng.uniform(0.3, 1.0))
        victim = rng.choice(workers)
        victim.kill()
        victim.wait(30)
        kills += 1
        workers.remove(victim)
        workers.append(lab.worker(threads=2))
    for p in prods:
        assert p.wait(120) == 0, lab.all_output()
    produced = [json.loads(out.read_text()) for out in outs]
    ids = [i for p in produced for i in p["ids"]]
    assert [e for p in produced for e in p["errors"]] == []
    assert len(ids) == len(set(ids)) == producers * per_producer

    def drained() -> bool:
        s = queue.stats()
        return s["completed"] == len(ids) and s["pending"] == 0 and s["running"] == 0

    wait_for(drained, timeout=120, interval=0.2, what=f"all jobs complete: {queue.stats()}")
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.wait(30) == 0

    if not lab.db.startswith(("postgresql://", "postgres://")):
        with sqlite3.connect(lab.db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {j.id: j.status for j in queue.list_jobs(limit=100_000)}
    assert set(stored) == set(ids)  # none lost, none invented
    assert set(stored.values()) == {"complete"}

    starts: dict[str, list] = defaultdict(list)
    ends: dict[str, set] = defaultdict(set)
    for r in lab.runs():
        if r.kind == "S":
            starts[r.job_id].append(r)
        else:
            ends[r.job_id].add(r.nonce)
    recovered = 0
    for job_id in ids:
        notes = _recovery_notes(queue, job_id)
        recovered += bool(notes)
        n = len(starts[job_id])
        # A job starts again only after a recovery put it back.
        assert 1 <= n <= 1 + len(notes), (job_id, n, notes)
        value = queue.get_job(job_id).result(timeout=1)
        (winner,) = [r for r in starts[job_id] if r.nonce == value[1]]
        assert winner.nonce in ends[job_id]
        # The recorded run held the last claim: it started after the last recovery, so
        # no run that had lost its claim was recorded.
        if notes:
            assert winner.at * 1000 >= notes[-1]["failed_at"] - 1, (job_id, winner, notes)
    print(f"\n[figure] {kills} kill -9 rounds, {len(ids)} jobs, {recovered} recovered, all complete once")
    output = lab.all_output()
    assert "locked" not in output.lower()
    assert "Traceback" not in output


def test_a_lone_worker_paused_past_the_stale_limit_keeps_its_own_jobs(lab_factory) -> None:
    """A whole machine paused (suspend, VM freeze) wakes up with every heartbeat stale: a
    worker must not take itself for dead and run its own jobs a second time."""
    lab = lab_factory(hb=0.2, stale=1.0)
    queue = lab.queue()
    alone = lab.worker(threads=2, worker_id="w-alone")
    jobs = [queue.enqueue("work", args=(i,), kwargs={"seconds": 1.5}) for i in range(2)]
    wait_for(lambda: len(lab.runs()) == 2, timeout=30, what="both jobs to start")
    alone.send_signal(signal.SIGSTOP)
    time.sleep(3.0)
    alone.send_signal(signal.SIGCONT)
    assert [j.result(timeout=30)[0] for j in jobs] == [0, 1]
    time.sleep(1.0)  # a wrongly recovered job would start again meanwhile
    assert [r.kind for r in lab.runs()].count("S") == 2
    assert all(_recovery_notes(queue, j.id) == [] for j in jobs)
    assert _worker_row(queue, "w-alone")["status"] == "active"


def test_process_one_heartbeats_at_the_queue_interval(lab_factory) -> None:
    """A job run by ``process_one`` in this process is held by this process: a worker elsewhere
    with a short stale limit must not take it for an orphan while it runs."""
    lab = lab_factory(hb=0.2, stale=1.0)
    # Serves another queue: it cannot claim the job, only recover it.
    lab.worker(worker_id="w-elsewhere", TASKITO_QUEUES="elsewhere")
    queue = lab.queue()
    wait_for(lambda: _worker_row(queue, "w-elsewhere"), timeout=30, what="the other worker")

    @queue.task(name="slow_here")
    def slow_here() -> str:
        time.sleep(3.0)
        return "done"

    job = queue.enqueue("slow_here", queue="other")
    assert queue.process_one(queues=["other"]) is True
    assert job.status == "complete" and job.result(timeout=1) == "done"
    assert _recovery_notes(queue, job.id) == []

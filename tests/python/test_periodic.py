"""Periodic schedules: fired once per due time across worker processes, on time, with one
catch-up run after downtime, managed by name, and validated at decoration."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import RunningWorker
from faultkit import wait_for
from procs_support import WorkerProcesses

from taskito import JobNotFoundError, Queue
from taskito.periodic import PeriodicTask, next_run_time


def _fires(queue: Queue, task_name: str) -> list[dict]:
    """The jobs a schedule enqueued, each with its claimed due time (epoch ms)."""
    out = []
    for job in queue.list_jobs(task_name=task_name, limit=10_000):
        d = job.to_dict()
        d["due"] = json.loads(d["metadata"])["due"]
        out.append(d)
    return sorted(out, key=lambda d: d["due"])


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["", "* * *", "1 2 3 4 5 6 7", "61 * * * * *", "*/0 * * * *", "every day"])
def test_bad_cron_is_a_value_error_naming_it(queue: Queue, cron: str) -> None:
    with pytest.raises(ValueError, match="cron"):

        @queue.periodic(cron)
        def job() -> None:
            pass

    assert not queue.tasks
    assert queue.list_periodic() == []


def test_bad_timezone_is_a_value_error_naming_it(queue: Queue) -> None:
    with pytest.raises(ValueError, match="timezone.*Mars/Olympus"):

        @queue.periodic("* * * * *", timezone="Mars/Olympus")
        def job() -> None:
            pass

    assert not queue.tasks


def test_decorator_registers_the_task(queue: Queue) -> None:
    @queue.periodic("0 */5 * * * *", name="every-5", args=(2,), kwargs={"b": 3})
    def add(a: int, b: int) -> int:
        return a + b

    assert add.name in queue.tasks
    assert add(1, b=1) == 2
    assert add.delay(4, b=5).status == "pending"  # enqueued like any task
    # Schedules reach the database when a worker starts.
    assert queue.list_periodic() == []
    queue.run_worker(run_once=True)
    (p,) = queue.list_periodic()
    assert isinstance(p, PeriodicTask)
    assert (p.name, p.task_name, p.cron_expr, p.queue, p.enabled, p.timezone) == (
        "every-5",
        add.name,
        "0 */5 * * * *",
        "default",
        True,
        "UTC",
    )
    assert p.last_run is None
    now = time.time() * 1000
    assert now < p.next_run <= now + 5 * 60_000
    assert datetime.fromtimestamp(p.next_run / 1000, timezone.utc).minute % 5 == 0


def test_changed_cron_for_the_same_name_updates_the_row(db_path: str) -> None:
    first = Queue(db_path=db_path)

    @first.periodic("0 0 0 1 1 *", name="report")
    def report() -> None:
        pass

    first.run_worker(run_once=True)
    (p,) = first.list_periodic()
    assert p.next_run > time.time() * 1000 + 86_400_000

    second = Queue(db_path=db_path)

    @second.periodic("*/2 * * * * *", name="report", timezone="Europe/Paris")
    def report2() -> None:
        pass

    second.run_worker(run_once=True)
    (p,) = second.list_periodic()
    assert (p.cron_expr, p.timezone, p.task_name) == ("*/2 * * * * *", "Europe/Paris", report2.name)
    assert p.next_run <= time.time() * 1000 + 2_500


# -- firing --------------------------------------------------------------------------------

APP = """
import os
from taskito import Queue, current_job

queue = Queue(db_path=os.environ.get("FEAT_DB") or {db!r}, scheduler_poll_interval_ms=50)

@queue.periodic("*/1 * * * * *", name="tick")
def tick():
    # One file per run: a second run of the same job would fail to create it.
    fd = os.open(os.path.join({runs!r}, current_job.id), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
"""


def test_two_worker_processes_fire_each_due_time_exactly_once(tmp_path: Path, db_path: str) -> None:
    db = db_path
    runs = tmp_path / "runs"
    runs.mkdir()
    queue = Queue(db_path=db)
    with WorkerProcesses(tmp_path, APP.format(db=db, runs=str(runs)), n=2, threads=2) as ws:
        ws.start(queue)
        started = time.time() * 1000
        time.sleep(8)
        stopped = time.time() * 1000
        wait_for(lambda: queue.stats()["pending"] + queue.stats()["running"] == 0, 20, what="runs to finish")
    fires = _fires(queue, "featapp.tick")
    dues = [f["due"] for f in fires]
    assert len(dues) == len(set(dues)), Counter(dues).most_common(3)
    # Every second between the two workers' start and their stop fired, once.
    inside = [d for d in dues if started + 1000 <= d <= stopped - 1000]
    expected = int((stopped - 1000) // 1000 - (started + 1000 - 1) // 1000)
    assert abs(len(inside) - expected) <= 1, (len(inside), expected)
    assert all(b - a == 1000 for a, b in zip(dues, dues[1:])), dues
    # Each job ran once, within a second of its due time.
    assert sorted(p.name for p in runs.iterdir()) == sorted(f["id"] for f in fires)
    late = sorted(f["started_at"] - f["due"] for f in fires)
    assert all(f["status"] == "complete" for f in fires)
    assert late[0] >= 0 and late[len(late) // 2] < 1000, late
    assert late[-1] < 3000, late  # generous: the machine may be loaded


def test_catch_up_after_downtime_is_one_run(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path, scheduler_poll_interval_ms=10)

    @queue.periodic("*/1 * * * * *", name="tick")
    def tick() -> None:
        pass

    w = RunningWorker(queue).start()
    wait_for(lambda: len(_fires(queue, tick.name)) >= 2, 15, what="two fires")
    w.stop()
    down_from = time.time() * 1000
    time.sleep(4.2)  # four due times pass with no worker running
    w = RunningWorker(queue).start()
    restarted = time.time() * 1000
    time.sleep(2.5)
    w.stop()
    dues = [f["due"] for f in _fires(queue, tick.name)]
    assert len(dues) == len(set(dues))
    missed = [d for d in dues if down_from < d < restarted - 1000]
    assert len(missed) == 1, (missed, down_from, restarted)
    after = [d for d in dues if d >= restarted]
    assert 1 <= len(after) <= 4


def test_pause_resume_delete(db_path: str) -> None:
    queue = Queue(db_path=db_path, scheduler_poll_interval_ms=10)

    @queue.periodic("*/1 * * * * *", name="tick")
    def tick() -> None:
        pass

    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: len(_fires(queue, tick.name)) >= 1, 10, what="a fire")
        queue.pause_periodic("tick")
        assert queue.list_periodic()[0].enabled is False
        paused_at = time.time() * 1000
        time.sleep(2.5)
        assert [f for f in _fires(queue, tick.name) if f["due"] > paused_at] == []
        queue.resume_periodic("tick")
        (p,) = queue.list_periodic()
        assert p.enabled and p.next_run > paused_at + 2000
        wait_for(lambda: [f for f in _fires(queue, tick.name) if f["due"] > paused_at], 5, what="a fire")
        queue.delete_periodic("tick")
        assert queue.list_periodic() == []
        gone_at = time.time() * 1000
        time.sleep(2)
        assert [f for f in _fires(queue, tick.name) if f["due"] > gone_at] == []
    finally:
        w.stop()
    for call in (queue.pause_periodic, queue.resume_periodic, queue.delete_periodic):
        with pytest.raises(JobNotFoundError, match="nope"):
            call("nope")


def test_existing_database_upgrades(tmp_path: Path) -> None:
    # A database from before periodic schedules existed (schema version 1).
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(
        Path(__file__)
        .resolve()
        .parents[2]
        .joinpath("rust/storage/sqlite/schema.rs")
        .read_text()
        .split('r#"')[1]
        .split('"#')[0]
    )
    con.execute("PRAGMA user_version = 1")
    con.execute(
        "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, "
        "scheduled_at, max_retries, retry_backoff, timeout_ms) "
        "VALUES (1, '0000000000000000001', 'default', 't', x'00', 0, 0, 0, 0, 0, 1.0, 1000)"
    )
    con.commit()
    con.close()
    queue = Queue(db_path=str(path))
    assert queue.stats()["pending"] == 1
    assert queue.list_periodic() == []


# -- next due times (DST) ------------------------------------------------------------------


def _fires_between(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every due time of ``cron`` in ``tz`` in ``[start, end)``, as UTC datetimes."""
    out, t = [], start.timestamp()
    while True:
        nxt = next_run_time(cron, after=t, timezone=tz)
        assert nxt is not None
        if nxt >= end.timestamp():
            return out
        out.append(datetime.fromtimestamp(nxt, timezone.utc))
        t = nxt


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_spring_forward_fires_a_skipped_time_once() -> None:
    # New York, 2026-03-08: 02:00 EST (UTC-5) jumps to 03:00 EDT (UTC-4); 02:30 never exists.
    fires = _fires_between("0 30 2 * * *", "America/New_York", _utc(2026, 3, 7, 17), _utc(2026, 3, 10, 4))
    assert fires == [
        _utc(2026, 3, 8, 7, 0),  # 03:00 EDT, the first instant after the gap
        _utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_fall_back_fires_a_repeated_time_once() -> None:
    # New York, 2026-11-01: 02:00 EDT (UTC-4) falls back to 01:00 EST (UTC-5); 01:30 happens twice.
    fires = _fires_between("0 30 1 * * *", "America/New_York", _utc(2026, 10, 31, 16), _utc(2026, 11, 3, 5))
    assert fires == [
        _utc(2026, 11, 1, 5, 30),  # 01:30 EDT, the first of the two
        _utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]


def test_five_fields_mean_second_zero_and_utc_by_default() -> None:
    after = datetime(2026, 5, 1, 10, 7, 31, tzinfo=timezone.utc).timestamp()
    nxt = next_run_time("*/15 * * * *", after=after)
    assert nxt == datetime(2026, 5, 1, 10, 15, 0, tzinfo=timezone.utc).timestamp()
    nxt = next_run_time("*/15 * * * * *", after=after)
    assert nxt == datetime(2026, 5, 1, 10, 7, 45, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError, match="timezone"):
        next_run_time("* * * * *", timezone="Nowhere/Else")

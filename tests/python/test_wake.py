"""Wake-ups across processes: a job committed by one process starts in an idle worker of
another well inside the poll interval, and everything still completes by polling where
wake-ups are unavailable.

The workers here poll every 5 s, so a job that waited for the poll would start 2.5 s
late on average; the bounds (1 s) are loose for a loaded machine and still fail a worker
that only polls."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, run_py

from taskito import MaxRetriesExceededError, Queue

LONG_POLL_MS = 5000
FAST = 1.0  # seconds: "woken", against a 5 s poll

APP = """
import os, time
from taskito import Queue

queue = Queue(
    db_path=os.environ["TASKITO_DB_PATH"],
    workers=2,
    scheduler_poll_interval_ms=int(os.environ["WAKE_POLL_MS"]),
)
RUNS = os.environ["RUNS_DIR"]

@queue.task(name="stamp")
def stamp(i):
    # One file per run: a second run of the same job would fail to create it.
    fd = os.open(os.path.join(RUNS, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return time.time()

@queue.task(name="flaky")
def flaky(i):
    # The first attempt fails (and says when); the retry returns when it started.
    path = os.path.join(RUNS, f"flaky-{i}")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(repr(time.time()))
        raise RuntimeError("first attempt fails")
    return time.time()

@queue.task(name="bad_once")
def bad_once(i):
    path = os.path.join(RUNS, f"bad-{i}")
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("fails the first time")
    return time.time()
"""


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = str(tmp_path / "q.db")
        self.runs = tmp_path / "runs"
        self.runs.mkdir()
        (tmp_path / "wakeapp.py").write_text(APP)
        self.procs: list[subprocess.Popen[str]] = []

    def env(self, poll_ms: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_")}
        env.update(
            TASKITO_DB_PATH=self.db,
            RUNS_DIR=str(self.runs),
            WAKE_POLL_MS=str(poll_ms),
            PYTHONPATH=os.pathsep.join([str(self.tmp), str(ROOT)]),
        )
        env.update(extra or {})
        return env

    def start_workers(
        self, n: int, poll_ms: int = LONG_POLL_MS, extra: dict[str, str] | None = None
    ) -> Queue:
        """Starts ``n`` CLI worker processes, waits until they are registered and idle, and
        returns a producer queue of this process (which never runs a worker)."""
        for _ in range(n):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "taskito", "worker", "--app", "wakeapp:queue"],
                    cwd=self.tmp,
                    env=self.env(poll_ms, extra),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        producer = Queue(db_path=self.db)
        deadline = time.monotonic() + 60
        while len([w for w in producer.workers() if w["status"] == "active"]) < n:
            assert all(p.poll() is None for p in self.procs), self.stop()
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # past their first claim: asleep in the long poll
        return producer

    def stop(self) -> str:
        errors = []
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                _, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if p.returncode != 0:
                errors.append(err)
        self.procs = []
        return "\n".join(errors)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    assert s.stop() == ""


def mostly_fast(latencies: list[float]) -> None:
    """All but one under FAST, and the median well under it."""
    slow = [x for x in latencies if x >= FAST]
    assert len(slow) <= 1, latencies
    assert statistics.median(latencies) < FAST / 2, latencies


def pause() -> None:
    time.sleep(random.uniform(0.05, 0.3))


def test_enqueue_from_another_process_wakes_an_idle_worker(setup: Setup) -> None:
    producer = setup.start_workers(1)
    starts, trips = [], []
    for i in range(5):
        pause()
        t0 = time.time()
        started = producer.enqueue("stamp", args=(i,)).result(timeout=30)
        trips.append(time.time() - t0)
        starts.append(started - t0)
    mostly_fast(starts)
    mostly_fast(trips)  # the result wait is woken too, not only the worker


def test_producer_process_that_never_starts_a_worker(setup: Setup) -> None:
    setup.start_workers(1)
    out = run_py(
        "import json, os, random, time\n"
        "from taskito import Queue\n"
        "q = Queue(db_path=os.environ['TASKITO_DB_PATH'])\n"
        "lat = []\n"
        "for i in range(5):\n"
        "    time.sleep(random.uniform(0.05, 0.3))\n"
        "    t0 = time.time()\n"
        "    lat.append(q.enqueue('stamp', args=(100 + i,)).result(timeout=30) - t0)\n"
        "print(json.dumps(lat))\n",
        env=setup.env(LONG_POLL_MS),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    mostly_fast(json.loads(out.stdout.strip().splitlines()[-1]))


def test_enqueue_many_wakes_an_idle_worker(setup: Setup) -> None:
    producer = setup.start_workers(1)
    latencies = []
    for i in range(4):
        pause()
        t0 = time.time()
        jobs = producer.enqueue_many("stamp", [(10 * i + k,) for k in range(3)])
        latencies.append(max(j.result(timeout=30) for j in jobs) - t0)
    mostly_fast(latencies)


def test_two_worker_processes_are_woken_and_each_job_runs_once(setup: Setup) -> None:
    producer = setup.start_workers(2)
    latencies = []
    for i in range(10):
        pause()
        t0 = time.time()
        latencies.append(producer.enqueue("stamp", args=(i,)).result(timeout=30) - t0)
    mostly_fast(latencies)
    jobs = producer.enqueue_many("stamp", [(1000 + k,) for k in range(200)])
    assert [j.result(timeout=60) > 0 for j in jobs] == [True] * 200
    ran = sorted(int(p.name) for p in setup.runs.iterdir())
    assert ran == list(range(10)) + list(range(1000, 1200))


def test_delayed_job_starts_at_its_time_not_a_poll_later(setup: Setup) -> None:
    producer = setup.start_workers(1)
    late = []
    for i in range(3):
        t0 = time.time()
        started = producer.enqueue("stamp", args=(i,), delay=1.0).result(timeout=30)
        late.append(started - (t0 + 1.0))
    assert all(-0.05 <= x < 0.5 for x in late), late


def test_retry_comes_due_without_waiting_for_the_poll(setup: Setup) -> None:
    producer = setup.start_workers(1)
    gaps = []
    for i in range(3):
        pause()
        retried_at = producer.enqueue("flaky", args=(i,)).result(timeout=30)
        failed_at = float((setup.runs / f"flaky-{i}").read_text())
        gaps.append(retried_at - failed_at)
    # The producer does not know the task, so the job has the queue's default backoff
    # (1 s): its retry is due at most 1 s after the failure.
    assert all(0 <= g < 1.0 + 0.5 for g in gaps), gaps


def test_retry_dead_wakes_an_idle_worker(setup: Setup) -> None:
    producer = setup.start_workers(1)
    latencies = []
    for i in range(3):
        job = producer.enqueue("bad_once", args=(i,), max_retries=0)
        with pytest.raises(MaxRetriesExceededError):
            job.result(timeout=30)
        (letter,) = [d for d in producer.dead_letters(limit=100) if d["original_job_id"] == job.id]
        pause()
        t0 = time.time()
        new = producer.get_job(producer.retry_dead(letter["id"]))
        assert new is not None
        latencies.append(new.result(timeout=30) - t0)
    mostly_fast(latencies)


@pytest.mark.parametrize("how", ["switched off", "socket folder unusable"])
def test_without_wake_ups_everything_completes_by_polling(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    folder = Path(setup.db + "-wake")
    extra: dict[str, str] = {}
    if how == "switched off":
        extra["TASKITO_WAKE"] = "off"
        monkeypatch.setenv("TASKITO_WAKE", "off")
    else:
        folder.write_text("not a folder")  # no socket can be made there
    producer = setup.start_workers(2, poll_ms=300, extra=extra)
    single = [producer.enqueue("stamp", args=(i,)) for i in range(5)]
    many = producer.enqueue_many("stamp", [(100 + k,) for k in range(50)])
    delayed = producer.enqueue("stamp", args=(500,), delay=0.5)
    retried = producer.enqueue("flaky", args=(1,))
    for job in [*single, *many, delayed, retried]:
        assert job.result(timeout=60) > 0
    assert len(list(setup.runs.glob("[0-9]*"))) == 5 + 50 + 1
    if how == "switched off":
        assert not folder.exists()
    else:
        assert folder.read_text() == "not a folder"

"""A worker whose database stops accepting writes (a full disk, simulated with
``RLIMIT_FSIZE`` in the worker process) loses nothing: outcomes wait and are recorded once
writes succeed again, the worker says so loudly and claims nothing meanwhile, and every job
completes exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faultkit import ROOT, wait_for

from taskito import Queue

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGXFSZ") or sys.platform != "linux", reason="needs RLIMIT_FSIZE"
)

APP = """
import os, resource, signal, time
from taskito import Queue

queue = Queue(db_path=os.environ["DF_DB"], workers=2, scheduler_poll_interval_ms=20,
              heartbeat_interval=0.5, stale_after=30)

# A write past the limit fails with EFBIG instead of killing the process.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# SIGUSR1: every file write fails, as on a full disk. SIGUSR2: the disk has room again.
signal.signal(signal.SIGUSR1, lambda *a: resource.setrlimit(resource.RLIMIT_FSIZE, (1, _hard)))
signal.signal(signal.SIGUSR2, lambda *a: resource.setrlimit(resource.RLIMIT_FSIZE, (_hard, _hard)))
RUNS = os.environ["DF_DB"] + ".runs"


@queue.task(name="nap")
def nap(i, seconds):
    time.sleep(seconds)
    return i
"""


def test_a_full_disk_loses_nothing_and_the_worker_resumes(tmp_path: Path) -> None:
    (tmp_path / "dfapp.py").write_text(APP)
    db = str(tmp_path / "q.db")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "DF_DB": db}
    queue = Queue(db_path=db)
    # stderr goes to a pipe: a pipe is not a file, so the worker can still log while no file
    # may grow.
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskito", "worker", "--app", "dfapp:queue", "--worker-id", "w-full"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: queue.workers(), timeout=30, what="the worker to register")
        first = [queue.enqueue("nap", args=(i, 2.0)) for i in range(2)]
        wait_for(lambda: all(j.to_dict()["worker_id"] for j in first), timeout=30, what="both to start")

        proc.send_signal(signal.SIGUSR1)  # the disk is full from now on
        time.sleep(0.5)
        later = [queue.enqueue("nap", args=(i, 0.0)) for i in range(2, 5)]
        # The first two finish meanwhile; their outcomes cannot be written.
        wait_for(lambda: any("refuses writes" in line for line in lines), timeout=30, what="the ERROR line")
        # Longer than a stopping worker would keep retrying (30 s): a running worker holds
        # the outcomes for as long as the disk stays full.
        time.sleep(32.0)
        assert [j.status for j in first] == ["running", "running"]  # held, not lost
        assert [j.status for j in later] == ["pending"] * 3  # nothing claimed meanwhile
        assert proc.poll() is None
        full_line = next(line for line in lines if "refuses writes" in line)
        assert " ERROR " in full_line, full_line

        proc.send_signal(signal.SIGUSR2)  # room again
        assert [j.result(timeout=60) for j in first + later] == [0, 1, 2, 3, 4]
        wait_for(
            lambda: [w["status"] for w in queue.workers()] == ["active"], timeout=30, what="active again"
        )
        assert queue.stats()["completed"] == 5
        assert all(j.errors == [] for j in first + later)  # each ran and was recorded once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    reader.join(10)
    assert proc.stderr is not None
    proc.stderr.close()
    text = "".join(lines)
    assert "accepts writes again" in text, text
    shown = [line.strip() for line in lines if "writes" in line or "healthy" in line]
    print("\n[disk full] " + " | ".join(shown))


@pytest.mark.sqlite_only  # makes SQLite refuse the write with a trigger
def test_a_result_the_store_refuses_fails_only_its_own_job(db_path: str) -> None:
    """One outcome in a batch that SQLite refuses (here a trigger refuses results over 1 kB,
    as SQLite refuses a value over its length limit) fails that job, with the reason; the
    other outcomes of the batch are recorded and nothing is left running."""
    queue = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10)

    @queue.task(name="sized")
    def sized(n: int) -> str:
        return "x" * n

    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_big_results BEFORE UPDATE OF result ON jobs "
            "WHEN length(NEW.result) > 1000 BEGIN SELECT RAISE(ABORT, 'result too big'); END"
        )
    jobs = queue.enqueue_many("sized", [(10,)] * 20 + [(5000,)] + [(10,)] * 20)
    big = jobs[20]
    assert queue.run_worker(run_once=True) == 41
    assert big.status == "failed"
    error = big.to_dict()["error"]
    assert "could not record the result" in error and "result too big" in error, error
    assert [j.status for j in jobs if j is not big] == ["complete"] * 40
    assert all(j.result(timeout=1) == "x" * 10 for j in jobs if j is not big)
    assert queue.stats()["running"] == 0
    assert [w["status"] for w in queue.workers()] == ["stopped"]

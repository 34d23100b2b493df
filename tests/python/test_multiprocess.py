"""Several worker processes on one database file: each job runs exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_py

APP = """
import os, time
from taskito import Queue
queue = Queue(db_path=os.environ["TASKITO_DB_PATH"], workers=4, scheduler_poll_interval_ms=20)
RUNS = os.environ["RUNS_DIR"]

@queue.task()
def mark(i):
    # One file per run: a second run of the same job would fail to create it.
    fd = os.open(os.path.join(RUNS, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(0.001)
    return i
"""


def test_two_worker_processes_drain_2000_jobs_exactly_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "mpapp.py").write_text(APP)
    env = {
        **os.environ,
        "TASKITO_DB_PATH": str(tmp_path / "q.db"),
        "RUNS_DIR": str(runs),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", "mpapp:queue"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        # Both workers are up before the jobs exist, so both compete for every claim.
        ready = run_py(
            "import mpapp, time\n"
            "deadline = time.time() + 60\n"
            "while len([w for w in mpapp.queue.workers() if w['status'] == 'active']) < 2:\n"
            "    assert time.time() < deadline\n"
            "    time.sleep(0.02)\n"
            "mpapp.queue.enqueue_many(mpapp.mark.name, [(i,) for i in range(2000)])\n"
            "while mpapp.queue.stats()['completed'] < 2000:\n"
            "    assert time.time() < deadline + 240\n"
            "    time.sleep(0.05)\n",
            env=env,
            cwd=str(tmp_path),
            timeout=360,
        )
        assert ready.returncode == 0, ready.stderr
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=120) for w in workers]
    for w, (_out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert "locked" not in err.lower()
    processed = [
        int(line.split()[2]) for out, _ in outputs for line in out.splitlines() if "Processed" in line
    ]
    assert sum(processed) == 2000
    assert sorted(int(p.name) for p in runs.iterdir()) == list(range(2000))
    pids = {p.read_text() for p in runs.iterdir()}
    assert len(pids) == 2

    stats = run_py("import mpapp\nprint(mpapp.queue.stats())\n", env=env, cwd=str(tmp_path))
    assert stats.stdout.strip() == str(
        {"pending": 0, "running": 0, "completed": 2000, "failed": 0, "dead": 0, "cancelled": 0}
    ), stats.stderr
    con = sqlite3.connect(tmp_path / "q.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()

"""Several worker processes on one database file: each job runs exactly once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_py

APP = """
import os
from taskito import Queue
queue = Queue(db_path=os.environ["TASKITO_DB_PATH"], workers=4, scheduler_poll_interval_ms=20)
RUNS = os.environ["RUNS_DIR"]

@queue.task()
def mark(i):
    # One file per run: a second run of the same job would fail to create it.
    fd = os.open(os.path.join(RUNS, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
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
    enq = run_py(
        "import mpapp\nmpapp.queue.enqueue_many(mpapp.mark.name, [(i,) for i in range(2000)])\n",
        env=env,
        cwd=str(tmp_path),
    )
    assert enq.returncode == 0, enq.stderr
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", "mpapp:queue", "--run-once"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert "locked" not in err.lower()
    processed = [
        int(line.split()[2]) for out, _ in outputs for line in out.splitlines() if "Processed" in line
    ]
    assert sum(processed) == 2000
    assert all(n > 0 for n in processed), f"both workers took jobs: {processed}"
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

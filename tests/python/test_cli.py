"""The quickstart, as a user runs it: a CLI worker process and a producer process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_py

APP = """
import os, time
from taskito import Queue, current_job
queue = Queue(db_path=os.environ["TASKITO_DB_PATH"], workers=2, scheduler_poll_interval_ms=20)

@queue.task()
def add(a, b):
    return a + b

@queue.task(queue="slow")
def nap(seconds):
    time.sleep(seconds)
    return seconds
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "myapp.py").write_text(APP)
    return tmp_path


def _env(app_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TASKITO_DB_PATH"] = str(app_dir / "q.db")
    env["PYTHONPATH"] = os.pathsep.join([str(app_dir), str(ROOT)])
    return env


def _start_worker(app_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskito", "worker", "--app", "myapp:queue", *extra],
        cwd=app_dir,
        env=_env(app_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_running(app_dir: Path, count: int) -> None:
    """Waits (from another process, as a user would look) until `count` jobs are running."""
    proc = run_py(
        "import myapp, sys, time\n"
        "deadline = time.time() + 60\n"
        f"while myapp.queue.stats()['running'] < {count}:\n"
        "    if time.time() > deadline: sys.exit('jobs never started')\n"
        "    time.sleep(0.02)\n",
        env=_env(app_dir),
        cwd=str(app_dir),
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr


def test_quickstart_worker_and_producer_processes(app_dir: Path) -> None:
    worker = _start_worker(app_dir)
    try:
        producer = run_py(
            "import myapp\n"
            "jobs = [myapp.add.delay(i, i) for i in range(50)]\n"
            "print(sum(j.result(timeout=60) for j in jobs))\n",
            env=_env(app_dir),
            cwd=str(app_dir),
            timeout=90,
        )
        assert producer.returncode == 0, producer.stderr
        assert producer.stdout.strip() == str(sum(2 * i for i in range(50)))
    finally:
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "myapp.add" in out and "myapp.nap" in out, "the worker lists its tasks"
    assert "Queues: all" in out
    assert out.rstrip().endswith("Worker stopped.")

    info = subprocess.run(
        [sys.executable, "-m", "taskito", "info", "--app", "myapp:queue"],
        cwd=app_dir,
        env=_env(app_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    lines = dict(line.split() for line in info.stdout.splitlines() if len(line.split()) == 2)
    assert lines["completed"] == "50"
    for status in ("pending", "running", "completed", "failed", "dead", "cancelled"):
        assert status in lines


def test_sigterm_drains_running_jobs_and_exits_zero(app_dir: Path) -> None:
    run_py("import myapp\nfor _ in range(2): myapp.nap.delay(1.0)\n", env=_env(app_dir), cwd=str(app_dir))
    worker = _start_worker(app_dir, "--queues", "slow")
    _wait_running(app_dir, 2)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Worker stopped." in out
    check = run_py("import myapp\nprint(myapp.queue.stats())\n", env=_env(app_dir), cwd=str(app_dir))
    assert "'completed': 2" in check.stdout, "running jobs were allowed to finish"


def test_second_signal_exits_at_once_and_jobs_go_back(app_dir: Path) -> None:
    run_py("import myapp\nmyapp.nap.delay(30)\n", env=_env(app_dir), cwd=str(app_dir))
    worker = _start_worker(app_dir, "--drain-timeout", "60")
    _wait_running(app_dir, 1)
    worker.send_signal(signal.SIGINT)
    time.sleep(0.5)
    start = time.monotonic()
    worker.send_signal(signal.SIGINT)
    worker.communicate(timeout=30)
    assert time.monotonic() - start < 20, "the second signal does not wait for the job"
    assert worker.returncode != 0
    check = run_py("import myapp\nprint(myapp.queue.stats())\n", env=_env(app_dir), cwd=str(app_dir))
    assert "'pending': 1" in check.stdout and "'running': 0" in check.stdout, check.stdout


def test_drain_timeout_puts_unfinished_jobs_back(app_dir: Path) -> None:
    run_py("import myapp\nmyapp.nap.delay(30)\n", env=_env(app_dir), cwd=str(app_dir))
    worker = _start_worker(app_dir, "--drain-timeout", "0.5")
    _wait_running(app_dir, 1)
    start = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert time.monotonic() - start < 20, "shutdown never hangs on a running task"
    assert worker.returncode == 0, err
    assert "Worker stopped." in out
    check = run_py("import myapp\nprint(myapp.queue.stats())\n", env=_env(app_dir), cwd=str(app_dir))
    assert "'pending': 1" in check.stdout and "'running': 0" in check.stdout, check.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("myapp", "module:attribute"),
        ("no_such_module_xyz:queue", "could not import module"),
        ("myapp:nothing", "has no attribute"),
        ("myapp:add", "is not a Queue instance"),
    ],
)
def test_bad_app_values(app_dir: Path, spec: str, message: str) -> None:
    for command in ("worker", "info"):
        proc = subprocess.run(
            [sys.executable, "-m", "taskito", command, "--app", spec],
            cwd=app_dir,
            env=_env(app_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0
        assert message in proc.stderr


def test_console_script_is_installed() -> None:
    from shutil import which

    exe = which("taskito") or str(Path(sys.executable).parent / "taskito")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "worker" in proc.stdout


RUNS_APP = """
import os, time
from taskito import Queue
queue = Queue(db_path=os.environ["TASKITO_DB_PATH"], workers=2, scheduler_poll_interval_ms=20)

@queue.task()
def step(i):
    # One file per run: a second run of the same job fails to create it.
    fd = os.open(os.path.join(os.environ["RUNS_DIR"], str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    time.sleep(0.1)
    return i
"""


def test_signal_with_jobs_in_flight_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    (tmp_path / "runsapp.py").write_text(RUNS_APP)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {
        **os.environ,
        "TASKITO_DB_PATH": str(tmp_path / "q.db"),
        "RUNS_DIR": str(runs),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    enq = run_py(
        "import runsapp\nrunsapp.queue.enqueue_many(runsapp.step.name, [(i,) for i in range(40)])\n",
        env=env,
        cwd=str(tmp_path),
    )
    assert enq.returncode == 0, enq.stderr

    def worker(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", "runsapp:queue", *extra],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = worker()
    deadline = time.monotonic() + 60
    while len(list(runs.iterdir())) < 6:
        assert time.monotonic() < deadline, "the worker never started jobs"
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    ran_first = len(list(runs.iterdir()))
    assert 0 < ran_first < 40, "stopped midway"

    second = worker("--run-once")
    out2, err2 = second.communicate(timeout=120)
    assert second.returncode == 0, err2
    assert sorted(int(p.name) for p in runs.iterdir()) == list(range(40))
    stats = run_py("import runsapp\nprint(runsapp.queue.stats())\n", env=env, cwd=str(tmp_path))
    assert stats.stdout.strip() == str(
        {"pending": 0, "running": 0, "completed": 40, "failed": 0, "dead": 0, "cancelled": 0}
    ), stats.stderr
    for text in (err, err2):
        assert "Traceback" not in text

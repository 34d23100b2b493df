"""An idle worker process costs little: its engine threads sleep until there is something to
do (the scheduler once per poll interval, the timeout watchdog until a job starts, the calling
thread until records, a signal or the engine's end), and it still answers at once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import wait_for
from conftest import run_py
from procs_support import WorkerProcesses

from taskito import Queue

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")

# A poll interval of 100 ms: ten polls a second, so the bound below leaves room for the polls,
# heartbeats and maintenance (about 14 wake-ups a second in all on SQLite) while a thread that
# ticks ten times a second on its own (as the watchdog and the calling thread once did), or
# timers handed to a thread pool and back (as the housekeeping once was), push the process
# past it.
APP = """
from taskito import Queue

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=100)

@queue.task()
def echo(value):
    return value
"""
WAKES_PER_SECOND_BOUND = 25
# On PostgreSQL every statement is a round trip the thread sleeps through: each poll's claim
# and each maintenance tick's few queries add wake-ups of their own.
WAKES_PER_SECOND_BOUND_POSTGRES = 50
WINDOW_S = 4.0


def _switches(pid: int) -> dict[str, int]:
    """Voluntary context switches so far of each thread of process ``pid``, by ``tid:name``."""
    counts = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                counts[f"{task.name}:{name}"] = int(line.split()[1])
    return counts


def _wakes_per_second(pid: int, seconds: float) -> tuple[float, dict[str, float]]:
    before = _switches(pid)
    time.sleep(seconds)
    after = _switches(pid)
    per_thread = {k: (n - before.get(k, 0)) / seconds for k, n in after.items()}
    return sum(per_thread.values()), {k: v for k, v in per_thread.items() if v}


def _run(proc: subprocess.Popen[str], queue: Queue, value: int) -> None:
    job = queue.enqueue("featapp.echo", args=(value,))
    assert job.result(timeout=30) == value
    assert proc.poll() is None


def test_an_idle_worker_process_wakes_rarely_and_still_answers_at_once(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    with WorkerProcesses(tmp_path, APP.format(db=db_path), n=1, threads=4) as ws:
        ws.start(queue)
        proc = ws.procs[0]
        _run(proc, queue, 1)  # every thread has started and run once
        time.sleep(1.0)
        total, per_thread = _wakes_per_second(proc.pid, WINDOW_S)
        postgres = db_path.startswith(("postgresql://", "postgres://"))
        bound = WAKES_PER_SECOND_BOUND_POSTGRES if postgres else WAKES_PER_SECOND_BOUND
        assert total < bound, f"{total:.1f} wakes/s: {per_thread}"
        # Asleep, yet a job enqueued by another process runs at once, and the next one too.
        _run(proc, queue, 2)
        _run(proc, queue, 3)


def test_sigint_stops_an_idle_worker_promptly(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    ws = WorkerProcesses(tmp_path, APP.format(db=db_path), n=1, threads=2)
    ws.start(queue)
    proc = ws.procs[0]
    time.sleep(1.5)  # long past any startup work: the calling thread sleeps
    proc.send_signal(signal.SIGINT)
    # Heard through the signal wakeup descriptor, not a tick; the bound only guards a hang.
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    wait_for(
        lambda: not [w for w in queue.workers() if w["status"] == "active"], what="the worker to deregister"
    )


def test_the_applications_signal_wakeup_descriptor_is_restored(db_path: str) -> None:
    code = f"""
import os, signal, socket
from taskito import Queue

queue = Queue(db_path={db_path!r})

@queue.task()
def echo(value):
    return value

mine, other = socket.socketpair()
mine.setblocking(False)
signal.set_wakeup_fd(mine.fileno())
job = echo.delay(7)
assert queue.run_worker(run_once=True) == 1
assert job.result(timeout=10) == 7
print(signal.set_wakeup_fd(-1) == mine.fileno())
"""
    done = run_py(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"

"""Shared pieces of the fault-injection tests: an app module written into a temporary folder, worker
and producer processes started from it, and a run log that every task run appends to.

The app module takes everything from environment variables, so one file serves every test:
``FAULT_DB`` (database), ``FAULT_LOG`` (run log), ``FAULT_MARKS`` (folder for once-only
markers), ``FAULT_HB`` / ``FAULT_STALE`` (heartbeat interval and stale limit, seconds).

Run log lines: ``S|E <job_id> <nonce> <pid> <epoch_seconds>``, one ``S`` when a run starts and
one ``E`` when it returns. Each line is one ``write`` on an ``O_APPEND`` descriptor, so lines from
different processes never interleave and a ``kill -9`` never leaves half a line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = "faultapp"

APP_SOURCE = '''
import ctypes
import os
import time
import uuid

from taskito import Queue, current_job

queue = Queue(
    db_path=os.environ["FAULT_DB"],
    workers=int(os.environ.get("FAULT_WORKERS", "2")),
    scheduler_poll_interval_ms=20,
    heartbeat_interval=float(os.environ.get("FAULT_HB", "2")),
    stale_after=float(os.environ.get("FAULT_STALE", "10")),
    drain_timeout=5,
    default_retry=int(os.environ.get("FAULT_RETRIES", "3")),
)


def _log(kind, nonce):
    line = f"{kind} {current_job.id} {nonce} {os.getpid()} {time.time():.3f}\\n"
    fd = os.open(os.environ["FAULT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@queue.task(name="work")
def work(n, seconds=0.0, first_seconds=None):
    """Logs its start, sleeps, logs its end and returns ``[n, nonce]``. With
    ``first_seconds``, only the first run of the job sleeps that long (a marker remembers)."""
    nonce = uuid.uuid4().hex
    _log("S", nonce)
    if first_seconds is not None:
        mark = os.path.join(os.environ["FAULT_MARKS"], current_job.id)
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            seconds = first_seconds
        except FileExistsError:
            pass
    time.sleep(seconds)
    _log("E", nonce)
    return [n, nonce]


@queue.task(name="hold_gil")
def hold_gil(seconds):
    """Sleeps inside a C call that keeps the GIL (ctypes.PyDLL does not release it)."""
    nonce = uuid.uuid4().hex
    _log("S", nonce)
    ctypes.PyDLL(None).usleep(int(seconds * 1_000_000))
    _log("E", nonce)
    return nonce
'''

PRODUCER_SOURCE = """
import json
import os
import random
import sys
import time

from faultapp import queue

count, pause, longest, out = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
# Producers started together wait for a common moment, so their writes really overlap.
time.sleep(max(0.0, float(os.environ.get("FAULT_START_AT", "0")) - time.time()))
ids, errors = [], []
started = time.time()
start = time.perf_counter()
for i in range(count):
    try:
        ids.append(queue.enqueue("work", args=(i,), kwargs={"seconds": random.random() * longest}).id)
    except Exception as exc:  # counted: the test expects none
        errors.append(f"{type(exc).__name__}: {exc}")
    if pause:
        time.sleep(random.random() * pause)
elapsed = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"ids": ids, "errors": errors, "elapsed": elapsed, "started": started, "ended": time.time()}, f)
"""

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Polls until ``predicate()`` is truthy and returns it; fails the test after ``timeout``
    seconds (a hang-catcher, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Run:
    kind: str
    job_id: str
    nonce: str
    pid: int
    at: float


def read_log(path: Path) -> list[Run]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        kind, job_id, nonce, pid, at = line.split()
        runs.append(Run(kind, job_id, nonce, int(pid), float(at)))
    return runs


class Lab:
    """One test's folder, app module, database and child processes."""

    def __init__(
        self, root: Path, hb: float = 2.0, stale: float = 10.0, db: str | None = None, **env: str
    ) -> None:
        self.root = root
        # A SQLite file of the folder, or the database the test was given (a PostgreSQL URL).
        self.db = db or str(root / "queue.db")
        self.log = root / "runs.log"
        self.marks = root / "marks"
        self.marks.mkdir()
        (root / f"{APP_MODULE}.py").write_text(APP_SOURCE)
        (root / "producer.py").write_text(PRODUCER_SOURCE)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(root)]),
            "FAULT_DB": self.db,
            "FAULT_LOG": str(self.log),
            "FAULT_MARKS": str(self.marks),
            "FAULT_HB": str(hb),
            "FAULT_STALE": str(stale),
            **env,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: list[Path] = []
        self._n = 0

    def queue(self):  # -> taskito.Queue, imported in the test process
        """A Queue on the same database, configured like the workers."""
        from taskito import Queue

        return Queue(
            db_path=self.db,
            heartbeat_interval=float(self.env["FAULT_HB"]),
            stale_after=float(self.env["FAULT_STALE"]),
        )

    def _spawn(self, args: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        self._n += 1
        out = self.root / f"{name}-{self._n}.out"
        err = self.root / f"{name}-{self._n}.err"
        self.outputs += [out, err]
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                [sys.executable, *args], cwd=self.root, env={**self.env, **env}, stdout=o, stderr=e
            )
        self.procs.append(proc)
        return proc

    def worker(self, threads: int = 1, worker_id: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        args = ["-m", "taskito", "worker", "--app", f"{APP_MODULE}:queue", "--workers", str(threads)]
        if worker_id:
            args += ["--worker-id", worker_id]
        return self._spawn(args, "worker", **env)

    def producer(
        self, count: int, pause: float, out: Path, longest: float = 0.0, start_at: float = 0.0
    ) -> subprocess.Popen[bytes]:
        """Enqueues ``count`` ``work`` jobs one by one (each sleeping up to ``longest`` s),
        pausing up to ``pause`` s between them, from the epoch time ``start_at`` on; writes
        ids, errors and times to ``out``."""
        args = ["producer.py", str(count), str(pause), str(longest), str(out)]
        return self._spawn(args, "producer", FAULT_START_AT=str(start_at))

    def script(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Starts ``<root>/<name>`` (a script the test wrote) with the app's environment."""
        return self._spawn([name, *args], Path(name).stem)

    def freeze(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGSTOP ``proc`` at a moment it holds no write lock on the database.

        A process stopped inside a SQLite write transaction keeps the file's write lock until
        it resumes: no other process can write at all, so nothing can recover its jobs (SQLite
        cannot break another process's lock). Tests of a frozen worker are about its heartbeats
        and claims, so the stop is retried until the lock is seen free."""
        for _ in range(200):
            proc.send_signal(signal.SIGSTOP)
            if self.db.startswith(("postgres://", "postgresql://")) or self._write_lock_free():
                return
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the process held the database's write lock at every stop")

    def _write_lock_free(self) -> bool:
        # From another process: in this one, closing a second SQLite library's connection
        # to the file would drop the engine's POSIX locks on it.
        probe = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=0.5, isolation_level=None)\n"
            "try:\n"
            "    c.execute('BEGIN IMMEDIATE'); c.execute('ROLLBACK')\n"
            "except sqlite3.OperationalError:\n"
            "    sys.exit(3)\n"
        )
        return subprocess.run([sys.executable, "-c", probe, self.db], timeout=30).returncode == 0

    def runs(self) -> list[Run]:
        return read_log(self.log)

    def all_output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.outputs if p.exists())

    def stop_all(self) -> None:
        """SIGTERM (then SIGKILL) every child still running; SIGCONT first in case one is
        stopped."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(15)

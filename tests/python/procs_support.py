"""Worker processes for the tests of features that span processes (periodic schedules,
flow control): an app module written to a folder, N ``taskito worker`` processes on it."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path
from types import TracebackType

from cli_support import start_cli, wait_for

from taskito import Queue


class WorkerProcesses:
    """``with WorkerProcesses(folder, source, n) as ws:`` writes ``<folder>/featapp.py``
    (``source`` defines ``queue``), starts ``n`` worker processes and waits until they are
    registered; on exit stops them with SIGTERM and checks that they exited cleanly."""

    def __init__(
        self, folder: Path, source: str, n: int = 2, threads: int = 4, module: str = "featapp"
    ) -> None:
        self.folder = folder
        self.module = module
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
        self.n = n
        self.threads = threads
        self.procs: list[subprocess.Popen[str]] = []
        self.outputs: list[tuple[str, str]] = []

    def start(self, queue: Queue, n: int | None = None, queues: list[str] | None = None) -> WorkerProcesses:
        """Starts ``n`` workers; with ``queues``, the i-th serves only ``queues[i]``."""
        n = self.n if n is None else n
        before = len([w for w in queue.workers() if w["status"] == "active"])
        for i in range(n):
            args = ["worker", "--app", f"{self.module}:queue", "--workers", str(self.threads)]
            if queues is not None:
                args += ["--queues", queues[i]]
            self.procs.append(start_cli(*args, cwd=self.folder))

        def registered() -> bool:
            for p in self.procs:
                if p.poll() is not None:
                    raise AssertionError(f"a worker exited early ({p.returncode}): {p.communicate()[1]}")
            return len([w for w in queue.workers() if w["status"] == "active"]) >= before + n

        wait_for(
            registered,
            timeout=60,
            what=f"{n} worker process(es) to register",
        )
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            out, err = p.communicate(timeout=120)
            self.outputs.append((out, err))
            assert p.returncode == 0, err
        self.procs = []

    def __enter__(self) -> WorkerProcesses:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.stop()
            return
        for p in self.procs:
            p.kill()
            p.communicate(timeout=30)

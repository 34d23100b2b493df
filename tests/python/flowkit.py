"""Helpers for the workflow tests (canvas, dependencies, cancel): an app module in a
temporary folder and worker processes of the ``taskito`` command serving it."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT


def app_env(folder: Path, db: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_")}
    env["TASKITO_DB_PATH"] = str(db)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    return env


def write_app(folder: Path, body: str, name: str = "flowapp") -> str:
    """Writes ``<folder>/<name>.py``: ``queue`` on TASKITO_DB_PATH, then ``body``."""
    header = (
        "import os, time\n"
        "from taskito import Queue, current_job\n"
        "queue = Queue(db_path=os.environ['TASKITO_DB_PATH'], workers=2, "
        "scheduler_poll_interval_ms=10)\n"
    )
    (folder / f"{name}.py").write_text(header + textwrap.dedent(body))
    return name


def start_workers(
    folder: Path, db: Path | str, n: int = 2, name: str = "flowapp", extra: tuple[str, ...] = ()
) -> list[subprocess.Popen[str]]:
    """Starts ``n`` worker processes and waits until all are registered."""
    env = app_env(folder, db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", f"{name}:queue", *extra],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    # Waits from another process: a Queue opened in this one while the workers open the
    # file could keep reading an old snapshot (see the note in the merge report).
    waited = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from taskito import Queue\n"
            "q = Queue(db_path=sys.argv[1])\n"
            "deadline = time.time() + 60\n"
            "while len([w for w in q.workers() if w['status'] == 'active']) < int(sys.argv[2]):\n"
            "    assert time.time() < deadline, q.workers()\n"
            "    time.sleep(0.05)\n",
            str(db),
            str(n),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    if waited.returncode != 0:
        for p in procs:
            p.kill()
        raise AssertionError(f"workers did not start: {waited.stderr} {[p.communicate() for p in procs]}")
    return procs


def stop_workers(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Stops the workers gracefully; returns their stderr. Fails if one did not exit 0."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    errs = []
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        errs.append(err)
    return errs


def load_app(folder: Path, db: Path | str, name: str = "flowapp") -> object:
    """Imports the app module in this process (under a fresh module name, so each test
    gets its own ``queue``)."""
    import importlib.util

    unique = f"{name}_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(unique, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    old = os.environ.get("TASKITO_DB_PATH")
    os.environ["TASKITO_DB_PATH"] = str(db)
    try:
        spec.loader.exec_module(module)
    finally:
        if old is None:
            del os.environ["TASKITO_DB_PATH"]
        else:
            os.environ["TASKITO_DB_PATH"] = old
    return module


_loads = itertools.count(1)

"""Helpers for tests that run the ``taskito`` command in a subprocess against an app module
written to a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]

APP_HEADER = """\
import os
import threading
import time

from taskito import Queue

queue = Queue({queue_args})

@queue.task(name="add")
def add(a, b):
    return a + b

@queue.task(name="boom", max_retries=0)
def boom(message="bad"):
    raise ValueError(message)

@queue.task(name="touch")
def touch(path, text="x"):
    with open(path, "a") as f:
        f.write(text + "\\n")
    return text
"""


def write_app(
    folder: Path, db_path: str | None, body: str = "", name: str = "appmod", queue_args: str | None = None
) -> str:
    """Writes ``<folder>/<name>.py`` defining ``queue`` (on ``db_path``; None leaves the
    path to TASKITO_DB_PATH) and the tasks ``add``, ``boom`` and ``touch``, then ``body``.
    Returns the ``--app`` value."""
    if queue_args is None:
        queue_args = "scheduler_poll_interval_ms=10"
        if db_path is not None:
            queue_args = f"db_path={db_path!r}, workers=2, " + queue_args
    source = APP_HEADER.format(queue_args=queue_args) + "\n" + textwrap.dedent(body)
    (folder / f"{name}.py").write_text(source)
    return f"{name}:queue"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI run: this one without TASKITO_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m taskito ARGS`` in ``cwd`` and returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "taskito", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts ``python -m taskito ARGS`` in ``cwd`` without waiting for it."""
    return subprocess.Popen(
        [sys.executable, "-m", "taskito", *args],
        cwd=cwd,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check: Callable[[], object], timeout: float = 30, what: str = "condition") -> object:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)

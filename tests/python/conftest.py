"""Shared fixtures: a fresh database per test and a worker running in a thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pg
import pytest

from taskito import Queue

ROOT = Path(__file__).resolve().parents[2]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a database runs on SQLite and on PostgreSQL, except those
    marked ``sqlite_only`` (file paths, file modes, SQLite internals)."""
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", ["sqlite"] if only_sqlite else ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        if pg.server_url() is None:
            pytest.skip("no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path, backend: str) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL database of its own given as its
    URL (``Queue(db_path=url)`` selects PostgreSQL)."""
    if backend == "sqlite":
        yield str(tmp_path / "queue.db")
        return
    with pg.fresh_database() as url:
        yield url


@pytest.fixture
def queue(db_path: str) -> Iterator[Queue]:
    q = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10)
    yield q
    q.close()


class RunningWorker:
    def __init__(self, queue: Queue, **kwargs: object) -> None:
        self.queue = queue
        self.processed: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=kwargs, daemon=True)

    def _run(self, **kwargs: object) -> None:
        try:
            self.processed = self.queue.run_worker(**kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> RunningWorker:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> int:
        self.queue.shutdown()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error
        assert self.processed is not None
        return self.processed


@pytest.fixture
def worker(queue: Queue) -> Iterator[RunningWorker]:
    w = RunningWorker(queue).start()
    yield w
    if w.thread.is_alive():
        w.stop()


def run_py(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs Python code in a fresh interpreter and returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )

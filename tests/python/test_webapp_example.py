"""examples/webapp.py under a real uvicorn process: enqueue and read over HTTP, and a
SIGTERM in the middle of jobs loses none of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, wait_for

from taskito import Queue

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_")}
        env["TASKITO_DB_PATH"] = db
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.webapp:app", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(self._up, timeout=60, what="the web app to start")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.proc.communicate()[0]
        try:
            return httpx.get(self.url + "/docs", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> str:
        """SIGTERMs the server; returns its output once it has shut down cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        # uvicorn finishes its shutdown (lifespan included), then re-raises the signal.
        assert self.proc.returncode in (0, -signal.SIGTERM), out
        assert "Application shutdown complete." in out, out
        return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(str(tmp_path / "web.db"))
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.communicate()


def _job(server: Server, job_id: str) -> dict:
    r = httpx.get(f"{server.url}/jobs/{job_id}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_post_then_get(server: Server) -> None:
    r = httpx.post(server.url + "/jobs", json={"text": "hello"}, timeout=5)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    done = wait_for(lambda: (d := _job(server, job_id))["status"] == "complete" and d, what="the job")
    assert done["result"] == "HELLO"  # type: ignore[index]
    assert httpx.get(server.url + "/jobs/nope", timeout=5).status_code == 404
    server.stop()


def test_sigterm_mid_job_loses_nothing(server: Server, tmp_path: Path) -> None:
    ids = [
        httpx.post(server.url + "/jobs", json={"text": f"job{i}", "seconds": 1.5}, timeout=5).json()["id"]
        for i in range(6)
    ]
    wait_for(lambda: any(_job(server, i)["status"] == "running" for i in ids), what="a job to run")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 30
    queue = Queue(db_path=str(tmp_path / "web.db"))
    statuses = {i: queue.get_job(i).status for i in ids}  # type: ignore[union-attr]
    # Jobs that had started finished during the drain; the rest wait, none is running.
    assert set(statuses.values()) <= {"complete", "pending"}, statuses
    assert "complete" in statuses.values()
    for i, s in statuses.items():
        if s == "complete":
            assert queue.get_job(i).result(timeout=0).startswith("JOB")  # type: ignore[union-attr]
    # A later run (of the same task) finishes what was left.
    queue.task(name="examples.webapp.shout")(lambda text, seconds=0.0: text.upper())
    queue.run_worker(run_once=True)
    assert all(queue.get_job(i).status == "complete" for i in ids)  # type: ignore[union-attr]

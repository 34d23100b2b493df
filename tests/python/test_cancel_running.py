"""``queue.cancel_running_job``: a running task that calls ``current_job.check_cancelled()``
stops with ``TaskCancelledError`` and its job ends ``cancelled``: not retried, no dead
letter. The canceller may be another process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_py
from flowkit import app_env, load_app, start_workers, stop_workers, write_app

from taskito import Queue, TaskCancelledError, current_job


def wait_status(job: Any, status: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while job.status != status:
        assert time.time() < deadline, f"job stayed {job.status}, expected {status}"
        time.sleep(0.02)


def test_cancel_a_running_job_in_process(queue: Queue, worker: Any) -> None:
    @queue.task(name="loop", max_retries=3)
    def loop():
        for _ in range(1000):
            current_job.check_cancelled()
            time.sleep(0.01)
        return "finished"

    job = loop.delay()
    wait_status(job, "running")
    assert queue.cancel_running_job(job.id) is True
    with pytest.raises(TaskCancelledError):
        job.result(timeout=15)
    assert job.status == "cancelled"
    assert job.to_dict()["retry_count"] == 0
    assert queue.dead_letters() == []
    assert "cancelled" in (job.error or "")


def test_cancel_running_job_is_false_unless_running(queue: Queue) -> None:
    @queue.task(name="noop")
    def noop():
        return 1

    job = noop.delay()
    assert queue.cancel_running_job(job.id) is False  # pending
    assert queue.cancel_running_job("no-such-job") is False
    assert queue.process_one() is True
    assert queue.cancel_running_job(job.id) is False  # complete
    assert job.result(timeout=1) == 1


def test_check_cancelled_is_quiet_without_a_request(queue: Queue, worker: Any) -> None:
    @queue.task(name="checks")
    def checks():
        for _ in range(5):
            current_job.check_cancelled()
        return "ok"

    assert checks.delay().result(timeout=10) == "ok"
    with pytest.raises(RuntimeError):
        current_job.check_cancelled()


def test_cancel_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    write_app(
        tmp_path,
        """
        @queue.task(name="loop")
        def loop():
            for _ in range(3000):
                current_job.check_cancelled()
                time.sleep(0.01)
            return "finished"

        @queue.task(name="after")
        def after():
            return "ran"
        """,
    )
    workers = start_workers(tmp_path, db)
    try:
        app: Any = load_app(tmp_path, db)
        job = app.loop.delay()
        dependent = app.after.apply_async(depends_on=job)
        wait_status(job, "running")
        cancelled = run_py(
            f"import flowapp\nprint(flowapp.queue.cancel_running_job({job.id!r}))\n",
            env=app_env(tmp_path, db),
            cwd=str(tmp_path),
        )
        assert cancelled.stdout.strip() == "True", cancelled.stderr
        with pytest.raises(TaskCancelledError):
            job.result(timeout=20)
        assert dependent.status == "cancelled"
        assert app.queue.stats()["dead"] == 0
    finally:
        stop_workers(workers)

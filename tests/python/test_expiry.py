"""``expires=``: a job not started within that many seconds ends ``cancelled`` and never
runs: refused at claim, and swept by running workers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import RunningWorker

from taskito import Queue, TaskCancelledError


def test_expired_job_is_cancelled_at_claim_and_never_runs(queue: Queue) -> None:
    ran = []

    @queue.task(name="work")
    def work(x):
        ran.append(x)
        return x

    late = work.apply_async((1,), expires=0.2)
    fresh = work.apply_async((2,), expires=60)
    child = work.apply_async((3,), depends_on=late)
    time.sleep(0.3)
    assert queue.process_one() is True
    assert queue.process_one() is False
    assert ran == [2]
    assert late.status == "cancelled"
    assert "expired" in (late.error or "")
    assert child.status == "cancelled"
    assert fresh.result(timeout=1) == 2
    with pytest.raises(TaskCancelledError):
        late.result(timeout=1)


def test_task_level_expires(queue: Queue) -> None:
    @queue.task(name="short", expires=0.1)
    def short():
        return 1

    job = short.delay()
    time.sleep(0.2)
    assert queue.process_one() is False
    assert job.status == "cancelled"
    with pytest.raises(ValueError, match="expires"):
        queue.task(name="bad", expires=-1)(lambda: None)
    with pytest.raises(ValueError, match="expires"):
        short.apply_async(expires=0)
    assert queue.stats()["pending"] == 0


def test_sweep_cancels_jobs_no_worker_claims(db_path: str) -> None:
    queue = Queue(
        db_path=db_path, workers=1, scheduler_poll_interval_ms=10, heartbeat_interval=0.2, stale_after=2
    )

    @queue.task(name="elsewhere", queue="other")
    def elsewhere():
        return 1

    job = elsewhere.apply_async(expires=0.2)
    # This worker serves another queue only: the sweep, not a claim, ends the job.
    worker: Any = RunningWorker(queue, queues=["default"]).start()
    try:
        deadline = time.time() + 15
        while job.status != "cancelled":
            assert time.time() < deadline, job.status
            time.sleep(0.05)
    finally:
        worker.stop()
    assert "expired" in (job.error or "")

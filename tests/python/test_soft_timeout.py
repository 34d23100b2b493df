"""Soft timeouts: ``current_job.check_timeout()`` raises ``SoftTimeoutError`` once the
attempt ran past ``soft_timeout``, in sync and async tasks; ``check_cancelled()``."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import RunningWorker
from faultkit import wait_for

from taskito import Queue, SoftTimeoutError, TaskCancelledError, TaskitoError, current_job
from taskito.exceptions import CircuitBreakerOpenError, QueueError, QueueFullError, RateLimitExceededError


def test_check_timeout_raises_past_the_soft_timeout_and_finally_runs(
    queue: Queue, worker: RunningWorker
) -> None:
    cleaned: list[str] = []

    @queue.task(soft_timeout=0.2, max_retries=0)
    def long_loop() -> None:
        try:
            while True:
                current_job.check_timeout()
                time.sleep(0.02)
        finally:
            cleaned.append(current_job.id)

    job = long_loop.delay()
    wait_for(lambda: job.refresh().status in ("dead", "failed"), 30, what="the soft timeout")
    assert job.error is not None and "SoftTimeoutError" in job.error
    assert cleaned == [job.id]


def test_check_timeout_is_silent_before_the_deadline(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(soft_timeout=30)
    def quick() -> str:
        current_job.check_timeout()
        return "fine"

    @queue.task()
    def no_soft_timeout() -> str:
        time.sleep(0.05)
        current_job.check_timeout()
        return "unbounded"

    assert quick.delay().result(timeout=30) == "fine"
    assert no_soft_timeout.delay().result(timeout=30) == "unbounded"


def test_check_timeout_in_an_async_task(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(soft_timeout=0.2, max_retries=0)
    async def async_loop() -> None:
        while True:
            current_job.check_timeout()
            await asyncio.sleep(0.02)

    job = async_loop.delay()
    wait_for(lambda: job.refresh().status in ("dead", "failed"), 30, what="the soft timeout")
    assert "SoftTimeoutError" in (job.error or "")


def test_re_registering_without_soft_timeout_clears_it(queue: Queue) -> None:
    def fn() -> None:
        pass

    assert queue.task(name="same", soft_timeout=1.0)(fn).soft_timeout == 1.0
    assert queue.task(name="same")(fn).soft_timeout is None


def test_check_cancelled_raises_after_cancel_running_job(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    def cooperative() -> None:
        while True:
            current_job.check_cancelled()
            time.sleep(0.02)

    job = cooperative.delay()
    wait_for(lambda: job.refresh().status == "running", 30, what="running")
    assert queue.cancel_running_job(job.id)
    with pytest.raises(TaskCancelledError):
        job.result(timeout=30)


def test_outside_a_task_current_job_raises() -> None:
    with pytest.raises(RuntimeError):
        current_job.check_timeout()


def test_bad_soft_timeout_is_refused(queue: Queue) -> None:
    with pytest.raises(ValueError, match="soft_timeout"):
        queue.task(soft_timeout=0)(lambda: None)


def test_exception_tree() -> None:
    for cls in (SoftTimeoutError, CircuitBreakerOpenError, RateLimitExceededError, QueueError):
        assert issubclass(cls, TaskitoError)
    assert issubclass(QueueFullError, QueueError)

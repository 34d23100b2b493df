"""Jobs run by a real worker (Rust threads) in this process: results, failures, retries,
the dead-letter queue, ordering, async tasks and the asyncio worker."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import threading
import time
from collections import OrderedDict

import pytest
from conftest import RunningWorker

import taskito
from taskito import Queue, current_job


def test_results_of_many_types(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    def echo(value: object, **kw: object) -> object:
        return (value, kw) if kw else value

    values = [
        None,
        True,
        0,
        -(2**70),
        3.5,
        "héllo",
        b"\x00\xff",
        [1, [2]],
        (1, "a"),
        {"k": [1]},
        {1, 2},
        frozenset({3}),
        decimal.Decimal("1.10"),
        datetime.datetime(2024, 1, 2, 3, 4),
        OrderedDict(a=1),
        ValueError("boxed"),
    ]
    jobs = [echo.delay(v) for v in values]
    for v, j in zip(values, jobs):
        got = j.result(timeout=30)
        if isinstance(v, Exception):
            assert type(got) is ValueError and got.args == v.args
        else:
            assert got == v and type(got) is type(v)
    assert echo.delay(1, a=2, b="c").result(timeout=30) == (1, {"a": 2, "b": "c"})
    assert echo.apply_async(args=(5,), kwargs={"x": 1}).result(timeout=30) == (5, {"x": 1})


def test_status_moves_to_complete_and_records_the_thread(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    def slow() -> str:
        time.sleep(0.3)
        return "done"

    job = slow.delay()
    deadline = time.monotonic() + 20
    while job.status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert job.result(timeout=30) == "done"
    d = job.to_dict()
    assert d["status"] == "complete"
    assert d["started_at"] <= d["completed_at"]
    assert d["worker_id"] and d["worker_id"].rsplit("-", 1)[1].isdigit()
    assert queue.stats()["completed"] == 1


def test_failure_retries_then_dead_letters(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10)
    attempts: list[int] = []

    @q.task(max_retries=2, retry_backoff=0.05)
    def flaky() -> None:
        attempts.append(current_job.retry_count)
        raise RuntimeError(f"boom {len(attempts)}")

    w = RunningWorker(q).start()
    try:
        job = flaky.delay()
        with pytest.raises(taskito.MaxRetriesExceededError) as info:
            job.result(timeout=30)
        assert job.id in str(info.value) and "boom 3" in str(info.value)
        assert not isinstance(info.value, taskito.TaskFailedError)
        assert info.value.job_id == job.id and info.value.errtype == "RuntimeError"
        assert any("flaky" in line for line in info.value.traceback)
    finally:
        w.stop()
    assert attempts == [0, 1, 2], "max_retries=2 means three runs"
    assert job.status == "dead"
    assert job.to_dict()["retry_count"] == 2
    errors = q.job_errors(job.id)
    assert [e["attempt"] for e in errors] == [0, 1, 2]
    assert "RuntimeError: boom 1" in errors[0]["error"]
    assert "Traceback" in errors[0]["traceback"] and "flaky" in errors[0]["traceback"]
    assert [e["error"] for e in job.errors] == [e["error"] for e in errors]
    assert job.error and "boom 3" in job.error

    dead = q.dead_letters()
    assert len(dead) == 1
    letter = dead[0]
    for key in ("id", "original_job_id", "task_name", "queue", "error", "retry_count", "failed_at"):
        assert key in letter
    assert letter["original_job_id"] == job.id and letter["task_name"] == flaky.name
    assert q.stats()["dead"] == 1


def test_retry_dead_and_purge_dead(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)
    fail = {"on": True}

    @q.task(max_retries=0)
    def sometimes(x: int) -> int:
        if fail["on"]:
            raise ValueError("not yet")
        return x * 2

    job = sometimes.delay(21)
    assert q.run_worker(run_once=True) == 1
    assert job.status == "dead"
    (letter,) = q.dead_letters()
    fail["on"] = False
    new_id = q.retry_dead(letter["id"])
    assert new_id != job.id
    assert q.dead_letters() == []
    assert q.run_worker(run_once=True) == 1
    assert q.get_job(new_id).result(timeout=5) == 42
    with pytest.raises(taskito.TaskitoError):
        q.retry_dead(letter["id"])

    fail["on"] = True
    sometimes.delay(1)
    q.run_worker(run_once=True)
    assert len(q.dead_letters()) == 1
    assert q.purge_dead(older_than=3600) == 0
    assert q.purge_dead(older_than=0) == 1
    assert q.dead_letters() == []


def test_backoff_delays_retries(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)
    seen: list[float] = []

    @q.task(max_retries=1, retry_backoff=30)
    def once() -> None:
        seen.append(time.time())
        raise RuntimeError("x")

    job = once.delay()
    q.run_worker(run_once=True)
    d = job.to_dict()
    assert d["status"] == "pending" and d["retry_count"] == 1
    # Full jitter: the retry is scheduled within [0, 30] s of the failure.
    assert 0 <= d["scheduled_at"] - int(seen[0] * 1000) <= 30_500


def test_priority_then_schedule_then_fifo(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)
    order: list[str] = []

    @q.task()
    def record(tag: str) -> None:
        order.append(tag)

    record.apply_async(args=("low-1",), priority=0)
    record.apply_async(args=("high-1",), priority=10)
    record.apply_async(args=("low-2",), priority=0)
    record.apply_async(args=("high-2",), priority=10)
    record.apply_async(args=("mid",), priority=5)
    record.apply_async(args=("later",), priority=100, delay=3600)
    assert q.run_worker(run_once=True, workers=1) == 5
    assert order == ["high-1", "high-2", "mid", "low-1", "low-2"]
    assert q.stats()["pending"] == 1, "a delayed job never runs early"


def test_delay_runs_after_its_time(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    def stamp() -> float:
        return time.time()

    t0 = time.time()
    job = stamp.apply_async(delay=0.5)
    ran_at = job.result(timeout=30)
    assert ran_at - t0 >= 0.45


def test_queue_routing(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10)

    @q.task(queue="emails")
    def email() -> str:
        return "email"

    @q.task(queue="reports")
    def report() -> str:
        return "report"

    @q.task()
    def default() -> str:
        return "default"

    e, r, d = email.delay(), report.delay(), default.delay()
    assert q.run_worker(queues=["emails"], run_once=True) == 1
    assert (e.status, r.status, d.status) == ("complete", "pending", "pending")
    assert q.run_worker(queues=["reports", "default"], run_once=True) == 2
    assert r.result(timeout=5) == "report" and d.result(timeout=5) == "default"
    email.delay(), report.delay()
    assert q.run_worker(run_once=True) == 2, "queues=None serves every queue"


def test_unknown_task_fails_with_its_name_and_the_worker_goes_on(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    def ok() -> int:
        return 1

    ghost = queue.enqueue("not.registered.anywhere")
    with pytest.raises(taskito.TaskFailedError, match="not.registered.anywhere"):
        ghost.result(timeout=30)
    assert ghost.status == "failed"
    assert ok.delay().result(timeout=30) == 1


def test_async_tasks_are_awaited(queue: Queue, worker: RunningWorker) -> None:
    @queue.task()
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + current_job.retry_count

    jobs = [fetch.delay(i) for i in range(10)]
    assert [j.result(timeout=30) for j in jobs] == list(range(10))


def test_current_job_and_progress(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(queue="work")
    def report() -> tuple:
        current_job.update_progress(40)
        return (current_job.id, current_job.task_name, current_job.queue_name, current_job.retry_count)

    job = report.delay()
    assert job.result(timeout=30) == (job.id, report.name, "work", 0)
    assert job.progress == 40


def test_a_raising_task_never_kills_its_thread(db_path: str) -> None:
    q = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)

    @q.task(max_retries=0)
    def bad(kind: str) -> None:
        if kind == "exit":
            raise SystemExit(3)
        if kind == "kbd":
            raise KeyboardInterrupt
        raise MemoryError("pretend")

    @q.task()
    def good() -> str:
        return "alive"

    jobs = [bad.delay(k) for k in ("exit", "kbd", "oom")]
    last = good.delay()
    assert q.run_worker(run_once=True) == 4
    assert [j.status for j in jobs] == ["dead", "dead", "dead"]
    assert last.result(timeout=5) == "alive"


def test_run_worker_in_a_thread_and_shutdown_is_a_noop_when_idle(queue: Queue) -> None:
    queue.shutdown()  # nothing runs: no effect

    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    t = threading.Thread(target=queue.run_worker, daemon=True)
    t.start()
    assert add.delay(1, 2).result(timeout=30) == 3
    queue.shutdown()
    t.join(30)
    assert not t.is_alive()
    assert queue.workers()[0]["status"] == "stopped"


def test_inner_request_shutdown_stops_the_worker(queue: Queue) -> None:
    w = RunningWorker(queue).start()
    time.sleep(0.2)
    queue._inner.request_shutdown()
    w.thread.join(30)
    assert not w.thread.is_alive()


def test_arun_worker_and_cancellation(queue: Queue) -> None:
    @queue.task()
    def mul(a: int, b: int) -> int:
        return a * b

    async def main() -> tuple[int, int]:
        task = asyncio.create_task(queue.arun_worker())
        job = mul.delay(6, 7)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        value = await job.aresult(timeout=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        tick_task.cancel()
        return value, ticks

    value, ticks = asyncio.run(main())
    assert value == 42
    assert ticks > 0, "the event loop kept running while the worker worked"
    assert all(w["status"] != "active" for w in queue.workers()), "cancelling stopped the worker"


def test_workers_registry_while_running(queue: Queue) -> None:
    w = RunningWorker(queue, worker_id="reg-test").start()
    deadline = time.monotonic() + 20
    while not queue.workers():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (info,) = queue.workers()
    assert info["worker_id"] == "reg-test" and info["status"] == "active"
    assert info["queues"] == "*" or isinstance(info["queues"], str)
    for key in ("hostname", "pid", "started_at", "last_heartbeat"):
        assert key in info
    w.stop()
    assert queue.workers()[0]["status"] == "stopped"


def test_arun_worker_cancelled_before_it_starts_still_stops(queue: Queue) -> None:
    async def main() -> None:
        task = asyncio.create_task(queue.arun_worker())
        await asyncio.sleep(0)  # the worker thread may not have started its engine yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)

    asyncio.run(main())
    assert all(w["status"] != "active" for w in queue.workers())

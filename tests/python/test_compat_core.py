"""The smaller public pieces code written for taskito 0.22 leans on: error classes and
their attributes, error and dead-letter rows, single-job operations, asyncio twins,
``after_task``, task logs, logging set-up and the in-memory queue."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import threading
import time

import pytest

import taskito
from taskito import (
    JobNotFoundError,
    LogLevel,
    MaxRetriesExceededError,
    Queue,
    TaskFailedError,
    TaskitoError,
    current_job,
)
from taskito.task_errors import decode_task_error


def test_error_classes_and_their_attributes(queue: Queue) -> None:
    assert issubclass(TaskFailedError, TaskitoError) and issubclass(MaxRetriesExceededError, TaskitoError)
    assert not issubclass(MaxRetriesExceededError, TaskFailedError)
    assert not issubclass(TaskFailedError, MaxRetriesExceededError)
    assert issubclass(JobNotFoundError, KeyError) and issubclass(JobNotFoundError, TaskitoError)
    assert str(JobNotFoundError("no job with id 'x'")) == "no job with id 'x'"

    @queue.task(name="dies", max_retries=1, retry_backoff=0)
    def dies():
        raise ValueError("bad input 7")

    @queue.task(name="fails_once", max_retries=0)
    def fails_once():
        raise OSError("disk gone")

    dead, failed = dies.delay(), fails_once.delay()
    queue.run_worker(run_once=True)
    queue.run_worker(run_once=True)
    with pytest.raises(MaxRetriesExceededError) as dead_info:
        dead.result(timeout=5)
    err = dead_info.value
    assert err.job_id == dead.id and err.errtype == "ValueError"
    assert err.raw_error == dead.error  # 0.22's stored form: JSON
    assert decode_task_error(err.raw_error).summary() == "ValueError: bad input 7"  # type: ignore[union-attr]
    assert isinstance(err.traceback, list) and any("bad input 7" in line for line in err.traceback)
    assert any("dies" in line for line in err.traceback)
    # A job that ran out of retries is dead; max_retries=0 also ends dead (no retry to try).
    with pytest.raises((TaskFailedError, MaxRetriesExceededError)) as failed_info:
        failed.result(timeout=5)
    assert failed_info.value.errtype == "OSError" and failed_info.value.job_id == failed.id


def test_job_not_found_is_a_key_error(queue: Queue) -> None:
    with pytest.raises(KeyError):
        queue.retry_dead("no-such-letter")


def test_job_errors_rows_count_attempts_from_zero(queue: Queue) -> None:
    @queue.task(name="always", max_retries=3, retry_backoff=0)
    def always():
        raise RuntimeError(f"run {current_job.retry_count}")

    job = always.delay()
    for _ in range(4):
        queue.run_worker(run_once=True)
    rows = queue.job_errors(job.id)
    assert [r["attempt"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert {"id", "job_id", "attempt", "error", "failed_at"} <= set(r)
        assert r["job_id"] == job.id and r["failed_at"] > 1_600_000_000_000
    summaries = [decode_task_error(r["error"]).summary() for r in rows]  # type: ignore[union-attr]
    assert summaries == [f"RuntimeError: run {i}" for i in range(4)]
    assert len({r["id"] for r in rows}) == 4
    assert job.errors == rows


def test_dead_letter_rows_and_delete_dead(queue: Queue) -> None:
    @queue.task(name="doomed", max_retries=0)
    def doomed():
        raise KeyError("gone")

    job = doomed.apply_async(metadata={"tenant": 3})
    queue.run_worker(run_once=True)
    (letter,) = queue.dead_letters()
    for key in (
        "id",
        "original_job_id",
        "queue",
        "task_name",
        "error",
        "retry_count",
        "failed_at",
        "metadata",
    ):
        assert key in letter, key
    assert letter["original_job_id"] == job.id and letter["metadata"] == '{"tenant": 3}'
    assert queue.delete_dead(letter["id"]) is True
    assert queue.delete_dead(letter["id"]) is False
    assert queue.dead_letters() == []
    assert job.status == "dead"  # the job itself is kept


def test_requeue_job_frees_a_running_claim(queue: Queue) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    @queue.task(name="slow", max_retries=2)
    def slow():
        runs.append(current_job.retry_count)
        if len(runs) == 1:
            started.set()
            release.wait(10)
            return "late"
        return "second"

    job = slow.delay()
    t = threading.Thread(target=queue.run_worker, kwargs={"workers": 1, "max_jobs": 2}, daemon=True)
    t.start()
    assert started.wait(10)
    assert queue.requeue_job(job.id) is True
    assert queue.requeue_job(job.id) in (False, True)  # pending now, or already re-claimed
    release.set()
    assert job.result(timeout=15) == "second"
    t.join(15)
    assert runs == [0, 0], "the retry count is kept: requeueing is not a failed attempt"
    assert queue.requeue_job(job.id) is False  # finished
    assert queue.requeue_job("missing-id") is False


def test_update_progress_from_outside(queue: Queue) -> None:
    @queue.task(name="p")
    def p():
        return 1

    job = p.delay()
    queue.update_progress(job.id, 40)
    assert job.refresh().progress == 40
    for bad in (-1, 101, float("nan"), "50", True):
        with pytest.raises(ValueError, match="progress"):
            queue.update_progress(job.id, bad)  # type: ignore[arg-type]
    assert job.progress == 40


def test_async_twins(queue: Queue) -> None:
    @queue.task(name="twin")
    def twin(x):
        return x * 2

    async def main() -> None:
        job = await queue.aenqueue("twin", args=(21,))
        assert (await queue.astats())["pending"] == 1
        assert (await queue.aget_job(job.id)).id == job.id
        assert [j.id for j in await queue.alist_jobs()] == [job.id]
        await asyncio.to_thread(queue.run_worker, run_once=True)
        assert await job.aresult(timeout=5, poll_interval=0.01, max_poll_interval=0.1) == 42
        assert await queue.ajob_errors(job.id) == []
        assert await queue.adead_letters() == []
        assert await queue.arequeue_job(job.id) is False
        assert await queue.adelete_dead("nothing") is False

    asyncio.run(main())


def test_aresult_times_out(queue: Queue) -> None:
    @queue.task(name="never_run")
    def never_run():
        return 1

    job = never_run.delay()

    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await job.aresult(timeout=0.3, max_poll_interval=0.05)
        assert time.monotonic() - t0 < 5
        with pytest.raises(ValueError, match="max_poll_interval"):
            await job.aresult(timeout=1, max_poll_interval=0)

    asyncio.run(main())


def test_after_task_sees_result_and_error(queue: Queue) -> None:
    seen: list[tuple] = []

    @queue.after_task
    def after(task_name, args, kwargs, result, error):
        seen.append((task_name, args, result, type(error).__name__ if error else None))

    @queue.on_success
    def success(task_name, args, kwargs, result):
        seen.append(("on_success", task_name))

    @queue.task(name="ok")
    def ok(x):
        return x + 1

    @queue.task(name="bad", max_retries=0)
    def bad():
        raise ZeroDivisionError("x")

    ok.delay(1)
    queue.run_worker(run_once=True, workers=1)
    bad.delay()
    queue.run_worker(run_once=True, workers=1)
    assert seen == [("on_success", "ok"), ("ok", (1,), 2, None), ("bad", (), None, "ZeroDivisionError")]


def test_task_logs_round_trip(queue: Queue) -> None:
    @queue.task(name="chatty")
    def chatty(n):
        current_job.log("starting", extra={"n": n})
        current_job.log("careful", level=LogLevel.WARNING)
        current_job.log("done", level="result")
        return n

    job = chatty.delay(3)
    other = chatty.delay(4)
    queue.run_worker(run_once=True, workers=1)
    logs = queue.task_logs(job.id)
    assert [(r["level"], r["message"]) for r in logs] == [
        ("INFO", "starting"),
        ("WARNING", "careful"),
        ("RESULT", "done"),
    ]
    assert logs[0]["extra"] == {"n": 3} and logs[1]["extra"] is None
    assert all(r["task_name"] == "chatty" and r["job_id"] == job.id for r in logs)
    warnings = queue.query_logs(task_name="chatty", level="WARNING")
    assert {r["job_id"] for r in warnings} == {job.id, other.id}
    assert queue.query_logs(task_name="nothing") == []
    assert len(queue.query_logs(limit=2)) == 2
    with pytest.raises(ValueError, match="log level"):
        queue.query_logs(level="LOUD")


def test_task_log_outside_a_task_and_bad_values(queue: Queue) -> None:
    with pytest.raises(RuntimeError):
        current_job.log("nowhere")

    @queue.task(name="badlog", max_retries=0)
    def badlog():
        current_job.log("x", level="SHOUT")

    job = badlog.delay()
    queue.run_worker(run_once=True)
    assert "unknown log level" in (job.error or "")


def test_log_config_configure_adds_one_handler(monkeypatch) -> None:
    logger = logging.getLogger("taskito")
    before = list(logger.handlers)
    stream = io.StringIO()
    try:
        got = taskito.log_config.configure("DEBUG", stream=stream)
        assert got is logger and logger.level == logging.DEBUG
        again = taskito.configure_logging(logging.WARNING, stream=stream)
        assert again is logger and logger.level == logging.WARNING
        added = [h for h in logger.handlers if h not in before]
        assert len(added) == 1
        logger.warning("hello %s", "there")
        assert "hello there" in stream.getvalue() and "WARNING" in stream.getvalue()
        monkeypatch.setenv("TASKITO_LOG_LEVEL", "ERROR")
        taskito.log_config.configure(stream=stream)
        assert logger.level == logging.ERROR
        with pytest.raises(ValueError, match="level"):
            taskito.log_config.configure("CHATTY")
        assert taskito.log_config.DEFAULT_FORMAT and taskito.log_config.DEFAULT_DATEFMT
        taskito.log_config.silence_asyncio_pipe_noise()
        taskito.log_config.silence_asyncio_pipe_noise()
        assert len(logging.getLogger("asyncio").filters) == 1
        taskito.log_config.restore_asyncio_pipe_noise()
        assert logging.getLogger("asyncio").filters == []
    finally:
        for h in list(logger.handlers):
            if h not in before:
                logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)


def test_memory_queue_works_with_a_worker_thread(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    q = Queue(db_path=":memory:", workers=2)
    other = Queue(db_path=":memory:")

    @q.task(name="square")
    def square(x):
        return x * x

    jobs = [square.delay(i) for i in range(20)]
    t = threading.Thread(target=q.run_worker, daemon=True)
    t.start()
    try:
        assert [j.result(timeout=15) for j in jobs] == [i * i for i in range(20)]
    finally:
        q.shutdown()
        t.join(15)
    assert q.stats()["completed"] == 20
    assert other.stats()["completed"] == 0, "each :memory: Queue has a database of its own"
    assert not list(tmp_path.iterdir()), "nothing is written to disk"


def test_existing_database_gains_task_logs(tmp_path) -> None:
    path = tmp_path / "old.db"
    Queue(db_path=str(path))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM task_logs").fetchone() == (0,)

"""Logging goes through the stdlib ``logging`` module under the ``taskito`` logger (the
engine's records too, as ``taskito._taskito.*``); the library itself prints nothing."""

from __future__ import annotations

import logging
import threading

import pytest
from conftest import run_py

from taskito import Queue


def _messages(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("taskito") and (level is None or r.levelno == level)
    ]


def test_worker_start_and_stop_are_logged_at_info(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskito")

    @queue.task(name="alpha")
    def alpha():
        return 1

    @queue.task(name="beta", queue="other")
    def beta():
        return 2

    alpha.delay()
    queue.run_worker(worker_id="logw", workers=3, queues=["default", "other"], run_once=True)
    info = _messages(caplog, logging.INFO)
    start = [m for m in info if "starting" in m]
    assert len(start) == 1
    for part in ("logw", "3 thread(s)", "default,other", "alpha", "beta", queue.db_path):
        assert part in start[0], (part, start[0])
    stop = [m for m in info if "stopped" in m]
    assert len(stop) == 1 and "logw" in stop[0] and "1 job(s)" in stop[0]
    per_job = [r for r in caplog.records if "started on" in r.getMessage()]
    assert per_job and all(r.name == "taskito.worker" for r in per_job)


def test_each_job_is_logged_by_outcome(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskito")

    @queue.task(name="fine")
    def fine(password):
        return "ok"

    @queue.task(name="broken", max_retries=0)
    def broken():
        raise LookupError("nope")

    @queue.task(name="flaky", max_retries=1, retry_backoff=0)
    def flaky():
        raise KeyError("again")

    ok, bad, retried = fine.delay("hunter2"), broken.delay(), flaky.delay()
    queue.run_worker(worker_id="dbg", workers=1, run_once=True)
    info = _messages(caplog, logging.INFO)
    assert f"job {ok.id} (fine) started on dbg-0" in info
    assert f"job {ok.id} (fine) complete" in info
    assert f"job {bad.id} (broken) started on dbg-0" in info
    errors = _messages(caplog, logging.ERROR)
    assert f"job {bad.id} (broken) failed for good: LookupError: nope" in errors
    warnings = _messages(caplog, logging.WARNING)
    assert f"job {retried.id} (flaky) failed, will retry: KeyError: 'again'" in warnings
    assert f"job {retried.id} (flaky) failed for good: KeyError: 'again'" in errors
    # Arguments are never logged: they may hold secrets.
    assert not [m for m in _messages(caplog) if "hunter2" in m]


def test_engine_records_reach_python_logging(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="taskito")

    @queue.task(name="noop")
    def noop():
        return None

    noop.delay()
    queue.run_worker(worker_id="bridge", run_once=True)
    engine = [r for r in caplog.records if r.name.startswith("taskito._taskito.")]
    assert any("bridge" in r.getMessage() and "started" in r.getMessage() for r in engine), [
        (r.name, r.getMessage()) for r in caplog.records
    ]


def test_engine_warnings_reach_python_logging(db_path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskito")
    queue = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10, drain_timeout=0.2)
    gate = threading.Event()
    started = threading.Event()

    @queue.task(name="hold")
    def hold():
        started.set()
        gate.wait(60)

    job = queue.enqueue("hold")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(queue.run_worker()), daemon=True)
    thread.start()
    try:
        assert started.wait(30)
        queue.shutdown()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        gate.set()
    assert job.status == "pending"
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("taskito._taskito.")
    ]
    assert any("put back" in r.getMessage() for r in warnings), [r.getMessage() for r in caplog.records]


def test_running_a_worker_prints_nothing(queue: Queue, capfd: pytest.CaptureFixture[str]) -> None:
    @queue.task(name="fails", max_retries=0)
    def fails():
        raise RuntimeError("task failure")

    @queue.on_success
    def broken_hook(*args):
        raise RuntimeError("hook failure")

    @queue.task(name="works")
    def works():
        return 1

    fails.delay()
    works.delay()
    capfd.readouterr()
    assert queue.run_worker(run_once=True) == 2
    queue.process_one()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.mark.sqlite_only  # derives a second database as a file path
def test_a_script_without_logging_configured_prints_nothing(db_path: str) -> None:
    # Failures, hook errors and engine warnings all happen, yet stdout and stderr stay empty:
    # the library leaves output to the application's logging configuration.
    code = """
import sys, threading
from taskito import Queue
q = Queue(db_path=sys.argv[1], workers=1, scheduler_poll_interval_ms=10, drain_timeout=0.1)
gate = threading.Event()
started = threading.Event()

@q.task(name="fails", max_retries=0)
def fails():
    raise RuntimeError("task failure")

finished = threading.Event()

@q.task(name="hold")
def hold():
    started.set()
    try:
        gate.wait(30)
    finally:
        finished.set()

@q.before_task
def bad_hook(*args):
    raise RuntimeError("hook failure")

@q.on_worker_start
def bad_start():
    raise RuntimeError("start hook failure")

q.enqueue("fails")
assert q.run_worker(run_once=True) == 1
q.enqueue("hold")
t = threading.Thread(target=q.run_worker, daemon=True)
t.start()
assert started.wait(30)
q.shutdown()
t.join(30)
gate.set()
# Let the written-off thread come back and leave before the interpreter shuts down.
assert finished.wait(30)
import time; time.sleep(0.3)
assert q.stats()["pending"] == 1
"""
    proc = run_py(code, db_path)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")

    # The same script with logging configured shows the records.
    proc = run_py("import logging; logging.basicConfig(level=logging.INFO)\n" + code, db_path + "-2")
    assert proc.returncode == 0, proc.stderr
    for text in ("starting", "hook failure", "start hook failure", "put back"):
        assert text in proc.stderr, (text, proc.stderr)

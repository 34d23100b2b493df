"""Honest shutdown: at the drain timeout running jobs are interrupted (as the timeout
watchdog does) before they go back to pending; a job whose thread cannot be stopped is named
in the log; the ``taskito worker`` command leaves through a normal exit (atexit handlers run)
unless a written-off thread is still alive."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from cli_support import run_cli, write_app

from taskito import Queue


def test_drain_timeout_interrupts_jobs_and_names_those_it_cannot_stop(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskito")
    queue = Queue(db_path=db_path, workers=2, scheduler_poll_interval_ms=10, drain_timeout=0.5)
    seen: list[str] = []
    started = threading.Semaphore(0)
    gate = threading.Event()

    @queue.task(name="spin")
    def spin() -> None:
        started.release()
        try:
            while True:  # pure Python: an asynchronous exception lands here
                pass
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    @queue.task(name="stuck")
    def stuck() -> None:
        started.release()
        gate.wait(30)  # a C-level wait: no exception lands until it returns

    a, b = spin.delay(), stuck.delay()
    thread = threading.Thread(target=queue.run_worker, daemon=True)
    thread.start()
    try:
        assert started.acquire(timeout=30) and started.acquire(timeout=30)
        queue.shutdown()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        gate.set()
    assert seen == ["TaskTimeoutError"]  # interrupted before it was put back
    assert a.status == "pending" and b.status == "pending"
    assert a.errors == [] and b.errors == []  # put back, not counted as failed runs
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    named = [m for m in messages if "could not be stopped" in m]
    assert len(named) == 1 and b.id in named[0] and "stuck" in named[0], messages
    assert not [m for m in named if a.id in m]  # the interrupted one was stopped


def test_the_worker_command_exits_normally_and_runs_atexit_handlers(tmp_path: Path) -> None:
    marker = tmp_path / "atexit.txt"
    app = write_app(
        tmp_path,
        str(tmp_path / "q.db"),
        body=f"""
        import atexit

        atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))
        """,
    )
    run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, timeout=60)  # nothing to do
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "ran"


def test_a_stuck_thread_still_lets_the_worker_command_exit_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "atexit.txt"
    app = write_app(
        tmp_path,
        str(tmp_path / "q.db"),
        body=f"""
        import atexit

        atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))

        @queue.task(name="hang", timeout=1, max_retries=0)
        def hang():
            time.sleep(120)  # in C: written off at its timeout, still alive at exit
        """,
    )
    Queue(db_path=str(tmp_path / "q.db")).enqueue("hang", timeout=1, max_retries=0)
    start = time.monotonic()
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 60
    assert not marker.exists()  # left through os._exit: the stuck thread could hold up teardown
    assert "Worker stopped." in proc.stdout

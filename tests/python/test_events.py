"""``queue.on_event``: callbacks run on one dispatcher thread, never on an engine or
worker thread; a slow or raising callback does not hold up or break jobs."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taskito import EventType, Queue, current_job
from taskito.exceptions import MaxRetriesExceededError
from taskito.task_errors import readable


def collect(queue: Queue, *types: EventType) -> list[tuple[EventType, dict[str, Any], str]]:
    seen: list[tuple[EventType, dict[str, Any], str]] = []

    def callback(event_type: EventType, payload: dict[str, Any]) -> None:
        seen.append((event_type, payload, threading.current_thread().name))

    for t in types:
        queue.on_event(t, callback)
    return seen


def test_job_lifecycle_events(queue: Queue) -> None:
    seen = collect(queue, *EventType)

    @queue.task(name="ok")
    def ok():
        return 1

    @queue.task(name="flaky", max_retries=1, retry_backoff=0.0)
    def flaky():
        raise ValueError("nope")

    @queue.task(name="stopper")
    def stopper():
        queue.cancel_running_job(current_job.id)
        current_job.check_cancelled()

    job = ok.delay()
    bad = flaky.delay()
    stop = stopper.delay()
    queue.run_worker(run_once=True, workers=1)
    assert job.status == "complete" and bad.status == "dead" and stop.status == "cancelled"
    assert queue._flush_events()
    kinds = [(e, p.get("job_id")) for e, p, _ in seen]
    for event in (EventType.JOB_ENQUEUED, EventType.JOB_STARTED, EventType.JOB_COMPLETED):
        assert (event, job.id) in kinds
    assert kinds.count((EventType.JOB_FAILED, bad.id)) == 2
    assert (EventType.JOB_RETRYING, bad.id) in kinds
    assert (EventType.JOB_DEAD, bad.id) in kinds
    assert (EventType.JOB_CANCELLED, stop.id) in kinds
    assert kinds.index((EventType.JOB_RETRYING, bad.id)) < kinds.index((EventType.JOB_DEAD, bad.id))
    assert [e for e, _, _ in seen if e in (EventType.WORKER_STARTED, EventType.WORKER_STOPPED)] == [
        EventType.WORKER_STARTED,
        EventType.WORKER_STOPPED,
    ]
    completed = next(p for e, p, _ in seen if e == EventType.JOB_COMPLETED)
    duration = completed.pop("duration_ms")
    assert completed == {"job_id": job.id, "task_name": "ok", "queue": "default"}
    assert isinstance(duration, float) and duration >= 0
    # Every callback ran on the dispatcher thread.
    assert {name for _, _, name in seen} == {"taskito-events"}


def test_a_raising_callback_is_logged_and_jobs_go_on(queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event_type: EventType, payload: dict[str, Any]) -> None:
        raise RuntimeError("callback broke")

    queue.on_event(EventType.JOB_COMPLETED, broken)
    later = collect(queue, EventType.JOB_COMPLETED)

    @queue.task(name="ok")
    def ok(x):
        return x

    with caplog.at_level(logging.ERROR, logger="taskito.events"):
        jobs = [ok.delay(i) for i in range(3)]
        queue.run_worker(run_once=True, workers=1)
        assert queue._flush_events()
    assert [j.result(timeout=1) for j in jobs] == [0, 1, 2]
    assert len(later) == 3
    assert "callback broke" in caplog.text


def test_a_slow_callback_does_not_slow_jobs(queue: Queue) -> None:
    release = threading.Event()
    queue.on_event(EventType.JOB_COMPLETED, lambda t, p: release.wait(10))

    @queue.task(name="ok")
    def ok(x):
        return x

    jobs = [ok.delay(i) for i in range(20)]
    start = time.monotonic()
    queue.run_worker(run_once=True, workers=2)
    elapsed = time.monotonic() - start
    release.set()
    assert all(j.status == "complete" for j in jobs)
    assert elapsed < 8  # the callback blocks 10 s per event; jobs did not wait for it


def test_emit_for_other_features_and_decorator_form(queue: Queue) -> None:
    got: list[dict[str, Any]] = []

    @queue.on_event(EventType.QUEUE_PAUSED)
    def paused(event_type: EventType, payload: dict[str, Any]) -> None:
        got.append(payload)

    queue._emit(EventType.QUEUE_PAUSED, {"queue": "emails"})
    queue._emit(EventType.QUEUE_RESUMED, {"queue": "emails"})  # nobody listens
    assert queue._flush_events()
    assert got == [{"queue": "emails"}]
    with pytest.raises(ValueError, match="event_type"):
        queue.on_event("job.completed", lambda t, p: None)  # type: ignore[arg-type]


def test_no_dispatcher_without_callbacks(queue: Queue) -> None:
    @queue.task(name="ok")
    def ok():
        return 1

    ok.delay()
    queue.run_worker(run_once=True, workers=1)
    assert queue._dispatcher is None


def test_pause_and_resume_emit_queue_events(queue: Queue) -> None:
    seen = collect(queue, EventType.QUEUE_PAUSED, EventType.QUEUE_RESUMED)
    assert queue.pause("emails") is True
    assert queue.pause("emails") is False  # already paused: no second event
    assert queue.resume("emails") is True
    assert queue._flush_events()
    assert [(e, p) for e, p, _ in seen] == [
        (EventType.QUEUE_PAUSED, {"queue": "emails"}),
        (EventType.QUEUE_RESUMED, {"queue": "emails"}),
    ]


def test_cancel_job_and_worker_events_carry_what_they_name(queue: Queue) -> None:
    import socket

    seen = collect(queue, EventType.JOB_CANCELLED, EventType.WORKER_STARTED, EventType.WORKER_STOPPED)

    @queue.task(name="later", queue="mail")
    def later():
        return 1

    job = later.apply_async(delay=60)
    assert queue.cancel_job(job.id)
    assert not queue.cancel_job(job.id)  # nothing cancelled, no event
    queue.run_worker(run_once=True, workers=1, worker_id="events-worker")
    assert queue._flush_events()
    assert [(e, p) for e, p, _ in seen][:1] == [
        (EventType.JOB_CANCELLED, {"job_id": job.id, "task_name": "later", "queue": "mail"})
    ]
    assert [e for e, _, _ in seen[1:]] == [EventType.WORKER_STARTED, EventType.WORKER_STOPPED]
    for _, payload, _ in seen[1:]:
        assert payload["worker_id"] == "events-worker" and payload["hostname"] == socket.gethostname()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the prefork pool needs Linux")
def test_prefork_job_events_fire_once_in_the_parent(db_path: str, tmp_path: Path) -> None:
    from cli_support import wait_for
    from test_prefork import load_app, start

    module = load_app(tmp_path, db=db_path)
    try:
        queue = module.queue
        seen = collect(queue, *EventType)
        jobs = {
            "ok": module.echo.delay(1),
            "fails": module.boom.delay("x"),
            "retries": module.flaky.delay(),
            "crashes": module.exit3.delay(),
            "times_out": module.c_hang.delay(),
        }
        worker = start(module)
        try:
            assert jobs["ok"].result(timeout=60)["value"] == 1
            assert jobs["retries"].result(timeout=60) == "second"
            for name in ("fails", "crashes", "times_out"):
                with pytest.raises(MaxRetriesExceededError):
                    jobs[name].result(timeout=60)
        finally:
            worker.stop()
        # On a loaded machine the timed-out job's thread may be written off: its events
        # then come from a thread of their own, possibly just after the job was stored.
        hung = jobs["times_out"].id
        wait_for(
            lambda: any(e is EventType.JOB_DEAD and p["job_id"] == hung for e, p, _ in seen),
            what="the timed-out job's events",
        )
        assert queue._flush_events()
    finally:
        sys.modules.pop(module.__name__, None)
    S, C, F, R, D = (
        EventType.JOB_STARTED,
        EventType.JOB_COMPLETED,
        EventType.JOB_FAILED,
        EventType.JOB_RETRYING,
        EventType.JOB_DEAD,
    )
    expected = {
        "ok": [S, C],
        "fails": [S, F, D],
        "retries": [S, F, R, S, C],
        "crashes": [S, F, D],
        "times_out": [S, F, D],
    }
    task_names = {
        "ok": "echo",
        "fails": "boom",
        "retries": "flaky",
        "crashes": "exit3",
        "times_out": "c_hang",
    }
    for name, job in jobs.items():
        mine = [(e, p) for e, p, _ in seen if p.get("job_id") == job.id]
        kinds = [e for e, _ in mine if e is not EventType.JOB_ENQUEUED]
        assert kinds == expected[name], name
        assert all(p["task_name"] == task_names[name] and p["queue"] == "default" for _, p in mine)
        failures = [p for e, p in mine if e is F]
        assert [p["retry_count"] for p in failures] == list(range(len(failures)))
    assert all(thread == "taskito-events" for _, _, thread in seen)
    # Each failure names its cause as the stored job does.
    error = {
        name: [p["error"] for e, p, _ in seen if e is D and p["job_id"] == job.id]
        for name, job in jobs.items()
    }
    assert error["fails"] == ["KeyError: 'x'"] == [readable(jobs["fails"].error)]
    assert "WorkerCrashedError" in error["crashes"][0] and "exit code 3" in error["crashes"][0]
    assert error["times_out"] == [jobs["times_out"].error] and "TaskTimeoutError" in error["times_out"][0]
    # A callback the app registers at import runs in this process only, once per start.
    noted = [line.split() for line in (tmp_path / "noted.txt").read_text().splitlines()]
    assert {int(pid) for pid, _ in noted} == {os.getpid()}
    assert sorted(job_id for _, job_id in noted) == sorted(p["job_id"] for e, p, _ in seen if e is S)

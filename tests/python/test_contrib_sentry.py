"""Sentry: failures reported with the job as tags and context, through the middleware and
through the SDK integration, and periodic runs as Crons check-ins; events are caught by a
transport of the test's own (no network)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sentry_sdk
from conftest import RunningWorker
from sentry_sdk.transport import Transport

from taskito import Queue
from taskito.contrib.sentry import SentryMiddleware, TaskitoIntegration, monitor_config
from taskito.exceptions import TaskitoError


class Captured(Transport):
    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [item.payload.json for env in self.envelopes for item in env.items if item.type == kind]


@pytest.fixture
def transport() -> Any:
    captured = Captured()
    yield captured
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def init(transport: Captured, **options: Any) -> list[dict[str, Any]]:
    crumbs: list[dict[str, Any]] = []

    def keep(crumb: dict[str, Any], hint: Any) -> dict[str, Any]:
        crumbs.append(crumb)
        return crumb

    sentry_sdk.init(dsn="https://key@sentry.invalid/1", transport=transport, before_breadcrumb=keep,
                    default_integrations=False, **options)  # fmt: skip
    return crumbs


def run_until(queue: Queue, job: Any) -> None:
    w = RunningWorker(queue).start()
    with pytest.raises(TaskitoError):
        job.result(timeout=30)
    w.stop()


def test_middleware_reports_every_failed_attempt_with_the_job(tmp_path, transport):
    crumbs = init(transport)
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10,
                  middleware=[SentryMiddleware()], default_retry=1)  # fmt: skip

    @queue.task(retry_backoff=0.01, queue="mail")
    def send(to: str) -> None:
        raise ConnectionError(f"smtp down for {to}")

    job = send.delay("ann")
    run_until(queue, job)
    events = transport.items("event")
    assert len(events) == 2
    for attempt, event in enumerate(events):
        assert event["exception"]["values"][-1]["type"] == "ConnectionError"
        assert event["tags"]["taskito.task_name"] == send.name
        assert event["tags"]["taskito.job_id"] == job.id
        assert event["tags"]["taskito.queue"] == "mail"
        assert event["tags"]["taskito.retry_count"] == attempt
        assert event["contexts"]["taskito"]["attempt"] == attempt + 1
        assert event["contexts"]["taskito"]["worker_id"]
        assert event["transaction"] == f"taskito:{send.name}"
    retries = [c for c in crumbs if c.get("category") == "taskito"]
    assert len(retries) == 1
    assert retries[0]["level"] == "warning"
    assert retries[0]["message"] == f"Retrying {send.name} (attempt 1): smtp down for ann"
    queue.close()


def test_integration_reports_only_the_final_failure(tmp_path, transport):
    init(transport, integrations=[TaskitoIntegration(report="final_failure")])
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10, default_retry=2)

    @queue.task(retry_backoff=0.01)
    def flaky() -> None:
        raise ValueError("always")

    @queue.task()
    def fine() -> int:
        return 1

    job = flaky.delay()
    ok = fine.delay()
    run_until(queue, job)
    assert ok.result(timeout=10) == 1
    events = transport.items("event")
    assert len(events) == 1
    assert events[0]["tags"]["taskito.job_id"] == job.id
    assert events[0]["tags"]["taskito.final_failure"] is True
    assert events[0]["contexts"]["taskito"]["attempt"] == 3
    queue.close()


def test_periodic_runs_are_cron_check_ins(tmp_path, transport):
    init(transport, integrations=[TaskitoIntegration(monitor_periodic=True)])
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10, default_retry=0)

    @queue.periodic("* * * * * *", name="heartbeat.tick")
    def tick() -> None:
        pass

    @queue.periodic("* * * * * *", name="broken_tick")
    def broken() -> None:
        raise RuntimeError("cron failed")

    w = RunningWorker(queue).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = {(c["monitor_slug"], c["status"]) for c in transport.items("check_in")}
        if {("heartbeat-tick", "ok"), ("broken-tick", "error")} <= statuses:
            break
        time.sleep(0.1)
    w.stop()
    checkins = transport.items("check_in")
    ticks = [c for c in checkins if c["monitor_slug"] == "heartbeat-tick"]
    assert ticks[0]["status"] == "in_progress"
    # Every second has no five-field crontab: Sentry learns that schedule from the
    # check-ins (test_monitor_config_maps_cron_expressions covers the mapped forms).
    assert "monitor_config" not in ticks[0]
    assert any(c["status"] == "ok" and c["check_in_id"] == ticks[0]["check_in_id"] for c in ticks)
    assert any(c["monitor_slug"] == "broken-tick" and c["status"] == "error" for c in checkins)
    # The failing periodic run is also reported as an error event.
    assert any(e["tags"]["taskito.task_name"] == broken.name for e in transport.items("event"))
    queue.close()


def test_monitor_config_maps_cron_expressions():
    assert monitor_config("0 */5 * * * *", "Europe/Paris") == {
        "schedule": {"type": "crontab", "value": "*/5 * * * *"},
        "timezone": "Europe/Paris",
    }
    assert monitor_config("*/5 * * * *", None) == {"schedule": {"type": "crontab", "value": "*/5 * * * *"}}
    assert monitor_config("*/10 * * * * *", None) is None


def test_nothing_happens_without_sentry(tmp_path):
    assert not sentry_sdk.get_client().is_active()
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10,
                  middleware=[SentryMiddleware()], default_retry=0)  # fmt: skip

    @queue.task()
    def boom() -> None:
        raise ValueError("x")

    job = boom.delay()
    run_until(queue, job)
    assert queue.get_job(job.id).status == "dead"
    queue.close()


def test_bad_options():
    with pytest.raises(ValueError, match="report must be one of"):
        TaskitoIntegration(report="sometimes")
    with pytest.raises(ValueError, match="tag_prefix"):
        SentryMiddleware(tag_prefix="")

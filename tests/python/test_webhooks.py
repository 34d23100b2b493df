"""Events and webhooks: ``EventType``, ``EventBus``, webhook subscriptions shared by every
process, signed JSON deliveries to a real HTTP server on 127.0.0.1, retries, the delivery
log and the URL guard (checked at resolution: nothing is ever sent to a refused address)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningWorker
from faultkit import wait_for
from procs_support import WorkerProcesses

from taskito import EventType, Queue
from taskito.dashboard.delivery_store import DeliveryStore
from taskito.dashboard.url_safety import UnsafeWebhookUrl
from taskito.events import EventBus
from taskito.webhooks import WebhookManager


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.location: str | None = None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("TASKITO_WEBHOOKS_ALLOW_PRIVATE", "1")  # the target is loopback
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_event_types_and_wire_names() -> None:
    names = {e.name for e in EventType}
    expected = {
        "JOB_ENQUEUED", "JOB_COMPLETED", "JOB_FAILED", "JOB_RETRYING", "JOB_DEAD", "JOB_CANCELLED",
        "WORKER_STARTED", "WORKER_STOPPED", "WORKER_ONLINE", "WORKER_OFFLINE", "WORKER_UNHEALTHY",
        "QUEUE_PAUSED", "QUEUE_RESUMED", "WORKFLOW_SUBMITTED", "WORKFLOW_COMPLETED",
        "WORKFLOW_COMPLETED_WITH_FAILURES", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_GATE_REACHED",
        "WORKFLOW_COMPENSATING", "WORKFLOW_COMPENSATED", "WORKFLOW_COMPENSATION_FAILED", "NODE_COMPENSATING",
        "NODE_COMPENSATED", "NODE_COMPENSATION_FAILED", "PREDICATE_DEFERRED", "PREDICATE_CANCELLED",
        "PREDICATE_REJECTED", "PREDICATE_SKIPPED",
    }  # fmt: skip
    assert len(expected) == 29 and expected <= names
    assert EventType.JOB_RETRYING.value == "job.retrying"
    assert EventType.NODE_COMPENSATED.value == "workflow.node_compensated"
    assert EventType.PREDICATE_DEFERRED.value == "predicate.deferred"


def test_event_bus_runs_callbacks_off_the_emitting_thread() -> None:
    bus = EventBus(max_workers=2)
    got: list[tuple[Any, dict, str]] = []
    done = threading.Event()

    def bad(_t: Any, _p: dict) -> None:
        raise RuntimeError("a broken listener")

    def good(t: Any, p: dict) -> None:
        got.append((t, p, threading.current_thread().name))
        done.set()

    bus.on(EventType.JOB_COMPLETED, bad)
    bus.on(EventType.JOB_COMPLETED, good)
    bus.emit(EventType.JOB_COMPLETED, {"job_id": "j"})
    assert done.wait(10)
    assert got[0][:2] == (EventType.JOB_COMPLETED, {"job_id": "j"})
    assert got[0][2] != threading.current_thread().name
    bus.shutdown()


def test_queue_event_bus_emits_to_on_event_callbacks(queue: Queue) -> None:
    seen = threading.Event()
    queue._event_bus.on(EventType.QUEUE_PAUSED, lambda t, p: seen.set() if p == {"queue": "x"} else None)
    queue._event_bus.emit(EventType.QUEUE_PAUSED, {"queue": "x"})
    assert seen.wait(10)


def test_signed_delivery_of_a_completed_job(queue: Queue, worker: RunningWorker, receiver: Receiver) -> None:
    sub = queue.add_webhook(
        receiver.url,
        events=[EventType.JOB_COMPLETED],
        headers={"X-Team": "billing"},
        secret="s3cret",
        description="completions",
    )
    assert sub.events == ["job.completed"] and sub.timeout_seconds == 10.0 and sub.enabled

    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    job = add.delay(1, 2)
    assert job.result(timeout=30) == 3
    wait_for(lambda: receiver.requests, 30, what="the delivery")
    request = receiver.requests[0]
    body = request["body"]
    payload = json.loads(body)
    assert payload["event"] == "job.completed" and payload["job_id"] == job.id
    assert payload["task_name"] == add.name and payload["queue"] == "default"
    assert body == json.dumps(payload, default=str).encode()  # Python's default separators
    assert isinstance(payload["duration_ms"], float) and payload["duration_ms"] >= 0
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Taskito-Signature"] == expected
    assert request["headers"]["X-Team"] == "billing"
    assert request["headers"]["Content-Type"] == "application/json"
    record = wait_for(lambda: _final(queue, sub.id), 30, what="the delivery record")
    assert record["status"] == "delivered" and record["attempts"] == 1 and record["response_code"] == 200
    assert (
        record["job_id"] == job.id and record["task_name"] == add.name and record["event"] == "job.completed"
    )


def _final(queue: Queue, sub_id: str) -> dict | None:
    records = DeliveryStore(queue).list(sub_id)
    return records[0] if records and records[0]["status"] != "pending" else None


def test_task_filter_and_event_filter(queue: Queue, worker: RunningWorker, receiver: Receiver) -> None:
    queue.add_webhook(receiver.url, events=[EventType.JOB_FAILED], task_filter=["wanted"])

    @queue.task(name="wanted", max_retries=0)
    def wanted() -> None:
        raise ValueError("w")

    @queue.task(name="other", max_retries=0)
    def other() -> None:
        raise ValueError("o")

    jobs = [other.delay(), wanted.delay()]
    wait_for(lambda: all(j.refresh().status == "dead" for j in jobs), 30, what="both failed")
    wait_for(lambda: receiver.requests, 30, what="a delivery")
    time.sleep(0.5)
    assert [(e["event"], e["task_name"]) for e in receiver.events()] == [("job.failed", "wanted")]
    assert "ValueError" in receiver.events()[0]["error"]


def test_5xx_is_retried_then_dead_and_4xx_fails_at_once(queue: Queue, receiver: Receiver) -> None:
    manager = queue._webhook_manager
    sub = queue.add_webhook(receiver.url, max_retries=3, retry_backoff=0.05)
    receiver.status = 503
    [future] = manager.notify(EventType.JOB_ENQUEUED, {"job_id": "j1", "task_name": "t", "queue": "q"})
    assert future.result(timeout=30) == "dead"
    assert len(receiver.requests) == 3
    record = DeliveryStore(queue).list(sub.id)[0]
    assert record["status"] == "dead" and record["attempts"] == 3 and record["response_code"] == 503
    receiver.requests.clear()
    receiver.status = 404
    [future] = manager.notify(EventType.JOB_ENQUEUED, {"job_id": "j2"})
    assert future.result(timeout=30) == "failed"
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed(queue: Queue, receiver: Receiver) -> None:
    queue.add_webhook(receiver.url, max_retries=3, retry_backoff=0)
    receiver.status, receiver.location = 307, receiver.url + "/elsewhere"
    [future] = queue._webhook_manager.notify(EventType.JOB_ENQUEUED, {"job_id": "j"})
    assert future.result(timeout=30) == "failed"
    assert [r["path"] for r in receiver.requests] == ["/hook"]


def test_delivery_log_keeps_the_newest(queue: Queue) -> None:
    store = DeliveryStore(queue, max_per_webhook=3)
    for i in range(5):
        store.record("sub", "job.completed", {"i": i}, "t", f"j{i}")
    assert [r["job_id"] for r in store.list("sub")] == ["j4", "j3", "j2"]
    newest = store.list("sub")[0]
    store.update("sub", newest["id"], status="delivered", response_body="x" * 5000)
    assert len(store.get("sub", newest["id"])["response_body"]) == 2048  # type: ignore[index]


def test_webhook_crud(queue: Queue, receiver: Receiver) -> None:
    sub = queue.add_webhook(receiver.url, secret="a")
    assert [s.id for s in queue.list_webhooks()] == [sub.id]
    assert queue.get_webhook("nope") is None
    new_secret = queue.rotate_webhook_secret(sub.id)
    assert new_secret != "a" and queue.get_webhook(sub.id).secret == new_secret  # type: ignore[union-attr]
    assert queue.update_webhook(sub.id, enabled=False, timeout=2).timeout_seconds == 2.0
    with pytest.raises(ValueError, match="max_retries"):
        queue.update_webhook(sub.id, max_retries=0)
    assert queue.remove_webhook(sub.id) is True
    assert queue.remove_webhook(sub.id) is False
    with pytest.raises(ValueError, match="events"):
        queue.add_webhook(receiver.url, events=["job.nope"])


def test_manager_without_a_queue(receiver: Receiver) -> None:
    manager = WebhookManager()
    manager.add_webhook(receiver.url, events=["job.dead"])
    assert manager.notify(EventType.JOB_COMPLETED, {"job_id": "x"}) == []
    [future] = manager.notify(EventType.JOB_DEAD, {"job_id": "x", "error": object()})
    assert future.result(timeout=30) == "delivered"
    assert receiver.events()[0]["event"] == "job.dead"
    assert manager.reload()


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/x",
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://172.16.5.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://224.0.0.1/x",
        "http://0.0.0.0/x",
        "http://printer.local/x",
        "http://db.internal/x",
        "http://wiki.intranet/x",
        "http://nas.lan/x",
        "http://vault.private/x",
    ],
)
def test_the_guard_refuses_private_targets(queue: Queue, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.delenv("TASKITO_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    with pytest.raises(UnsafeWebhookUrl):
        queue.add_webhook(url)
    assert queue.list_webhooks() == []


def test_a_public_name_that_resolves_privately_is_refused(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKITO_WEBHOOKS_ALLOW_PRIVATE", raising=False)

    def resolves_inside(host: str, port: Any, *args: Any, **kwargs: Any) -> list:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_inside)
    with pytest.raises(UnsafeWebhookUrl, match="10.0.0.7"):
        queue.add_webhook("https://hooks.example.com/in")


def test_not_http_is_a_value_error(queue: Queue) -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "example.com", 42):
        with pytest.raises(ValueError, match="http:// or https://"):
            queue.add_webhook(url)  # type: ignore[arg-type]


def test_the_guard_runs_again_at_delivery(
    queue: Queue, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = queue.add_webhook(receiver.url, max_retries=2, retry_backoff=0)
    monkeypatch.delenv("TASKITO_WEBHOOKS_ALLOW_PRIVATE")
    [future] = queue._webhook_manager.notify(EventType.JOB_ENQUEUED, {"job_id": "j"})
    assert future.result(timeout=30) == "failed"
    assert receiver.requests == []  # refused before connecting
    assert "private" in DeliveryStore(queue).list(sub.id)[0]["error"]


APP = """
import os
from taskito import Queue

# The CLI starts workers without TASKITO_* variables; the target is a loopback server.
os.environ["TASKITO_WEBHOOKS_ALLOW_PRIVATE"] = "1"

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=20)

@queue.task()
def work(i):
    return i
"""


def test_every_worker_process_delivers_its_events(tmp_path: Path, db_path: str, receiver: Receiver) -> None:
    queue = Queue(db_path=db_path)
    sub = queue.add_webhook(receiver.url, events=[EventType.JOB_COMPLETED], secret="k")
    with WorkerProcesses(tmp_path, APP.format(db=db_path), n=2, threads=2) as ws:
        ws.start(queue, queues=["a", "b"])
        jobs = queue.enqueue_many("featapp.work", [(1,)], queue="a") + queue.enqueue_many(
            "featapp.work", [(2,)], queue="b"
        )
        wait_for(lambda: len(receiver.requests) >= 2, 60, what="a delivery from each process")
    delivered = {e["job_id"]: e["queue"] for e in receiver.events()}
    assert delivered == {jobs[0].id: "a", jobs[1].id: "b"}
    for r in receiver.requests:
        assert (
            r["headers"]["X-Taskito-Signature"]
            == "sha256=" + hmac.new(b"k", r["body"], hashlib.sha256).hexdigest()
        )
    records = DeliveryStore(queue).list(sub.id)
    assert sorted(r["status"] for r in records) == ["delivered", "delivered"]
    assert len({j.refresh().worker_id.rsplit("-", 1)[0] for j in jobs}) == 2  # type: ignore[union-attr]


def test_the_test_action_sends_test_ping(queue: Queue, receiver: Receiver) -> None:
    sub = queue.add_webhook(receiver.url, events=[EventType.JOB_DEAD], secret="p")
    assert queue._webhook_manager.send_test(sub.id) == "delivered"
    assert receiver.events() == [{"event": "test.ping", "subscription_id": sub.id}]
    with pytest.raises(KeyError):
        queue._webhook_manager.send_test("missing")

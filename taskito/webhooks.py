"""Webhooks: events POSTed as JSON to subscribed URLs.

The process where an event fires delivers it: each process's ``WebhookManager`` reads the
subscriptions from the queue's shared settings store (when a worker starts, then every
``RELOAD_SECONDS``, and at once after a change made in this process) and listens to the
queue's events while any subscription exists. Deliveries run on a small thread pool, never
on a worker or engine thread. A delivery is signed with the subscription's secret
(``X-Taskito-Signature: sha256=<hex HMAC-SHA256 of the raw body>``), retried on a 5xx or
a network error with ``retry_backoff**n`` seconds before attempt n+1, never redirected,
and refused when its URL's host resolves to a private address (``dashboard.url_safety``)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from taskito.dashboard.delivery_store import DeliveryStore
from taskito.dashboard.url_safety import UnsafeWebhookUrl, resolve_safe
from taskito.dashboard.webhook_store import WebhookStore, WebhookSubscription
from taskito.events import EventType

log = logging.getLogger("taskito.webhooks")

SIGNATURE_HEADER = "X-Taskito-Signature"
#: The event the dashboard's test action sends.
TEST_EVENT = "test.ping"
#: How often a worker process reads the subscriptions again.
RELOAD_SECONDS = 5.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_body(event: str, payload: dict[str, Any]) -> bytes:
    """The raw body of a delivery: ``json.dumps`` with its default separators."""
    return json.dumps({"event": event, **payload}, default=str).encode()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the URL check vetted, not to a second resolution of the
    host name (which a rebinding DNS server could answer differently)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_once(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """One POST, redirects not followed: ``(status, body text)``. Raises
    ``UnsafeWebhookUrl`` for a URL the guard refuses and ``OSError`` for network errors."""
    scheme, host, port, addresses = resolve_safe(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addresses[0], timeout)
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")
        return response.status, text
    finally:
        conn.close()


class WebhookManager:
    """Delivers the events of one queue to its webhook subscriptions (``queue._webhook_manager``).
    ``queue_ref`` may be None for a manager used alone: it then keeps subscriptions added
    with ``add_webhook`` in memory."""

    def __init__(self, queue_ref: Any = None, max_workers: int = 4) -> None:
        self._queue = queue_ref
        self._store = WebhookStore(queue_ref._inner) if queue_ref is not None else None
        self._deliveries = DeliveryStore(queue_ref) if queue_ref is not None else None
        self._subs: list[WebhookSubscription] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="taskito-webhooks")
        self._listening = False
        self._reloader: threading.Thread | None = None
        self._stop = threading.Event()

    # -- subscriptions -------------------------------------------------------------------

    def add_webhook(self, url: str, **fields: Any) -> WebhookSubscription:
        if self._store is not None:
            sub = self._store.add(url, **fields)
        else:
            from taskito.dashboard.webhook_store import check_fields

            checked = check_fields({"url": url, **fields})
            now = time.time()
            sub = WebhookSubscription(
                id=f"mem-{len(self._subs) + 1}", created_at=now, updated_at=now, **checked
            )
            with self._lock:
                self._subs.append(sub)
            return sub
        self.reload()
        return sub

    def reload(self) -> list[WebhookSubscription]:
        """Reads the subscriptions again; listens to the queue's events while any exists."""
        if self._store is None:
            return list(self._subs)
        subs = self._store.all()
        with self._lock:
            self._subs = subs
        if subs and not self._listening and self._queue is not None:
            self._listening = True
            for event_type in EventType:
                self._queue.on_event(event_type, self._on_event)
        return subs

    def start_reloading(self) -> None:
        """Reads the subscriptions every ``RELOAD_SECONDS`` (a worker process calls this)."""
        self.reload()
        if self._reloader is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(RELOAD_SECONDS):
                try:
                    self.reload()
                except Exception:
                    log.exception("could not read the webhook subscriptions")

        self._reloader = threading.Thread(target=loop, name="taskito-webhooks-reload", daemon=True)
        self._reloader.start()

    def stop_reloading(self) -> None:
        self._stop.set()
        self._reloader = None

    # -- delivery ------------------------------------------------------------------------

    def _on_event(self, event_type: EventType, payload: dict[str, Any]) -> None:
        self.notify(event_type, payload)

    def notify(self, event_type: EventType | str, payload: dict[str, Any]) -> list[Any]:
        """Queues a delivery to every subscription that wants this event; returns their
        futures (each resolves to the delivery's final status)."""
        event = event_type.value if isinstance(event_type, EventType) else str(event_type)
        task_name = payload.get("task_name")
        with self._lock:
            subs = [s for s in self._subs if s.wants(event, task_name)]
        return [self._pool.submit(self._deliver, s, event, dict(payload)) for s in subs]

    def send_test(self, subscription_id: str) -> str:
        """Sends the event ``test.ping`` to one subscription now, whatever events it
        subscribes to; returns the final status. KeyError if there is no such subscription."""
        sub = self._store.get(subscription_id) if self._store is not None else None
        if sub is None:
            sub = next((s for s in self._subs if s.id == subscription_id), None)
        if sub is None:
            raise KeyError(f"no webhook {subscription_id!r}")
        return self._deliver(sub, TEST_EVENT, {"subscription_id": sub.id})

    def deliver_now(self, sub: WebhookSubscription, event: str, payload: dict[str, Any]) -> str:
        """Delivers one event to one subscription in this thread; returns the final status."""
        return self._deliver(sub, event, payload)

    def _deliver(self, sub: WebhookSubscription, event: str, payload: dict[str, Any]) -> str:
        body = encode_body(event, payload)
        headers = {"Content-Type": "application/json", "User-Agent": "taskito-webhooks", **sub.headers}
        if sub.secret:
            headers[SIGNATURE_HEADER] = sign(sub.secret, body)
        record = None
        if self._deliveries is not None:
            record = self._deliveries.record(
                sub.id, event, payload, payload.get("task_name"), payload.get("job_id")
            )
        status, fields = "dead", {}
        for attempt in range(1, sub.max_retries + 1):
            started = time.monotonic()
            try:
                code, text = post_once(sub.url, body, headers, sub.timeout_seconds)
            except UnsafeWebhookUrl as exc:
                status, fields = "failed", {"error": str(exc), "attempts": attempt}
                break
            except (OSError, http.client.HTTPException) as exc:
                fields = {"error": f"{type(exc).__name__}: {exc}", "attempts": attempt, "response_code": None}
                status = "dead"
            else:
                latency = int((time.monotonic() - started) * 1000)
                fields = {
                    "attempts": attempt,
                    "response_code": code,
                    "response_body": text,
                    "latency_ms": latency,
                }
                if 200 <= code < 300:
                    status = "delivered"
                    break
                if code < 500:
                    # A 4xx (or a redirect, never followed): sending again cannot help.
                    status, fields["error"] = "failed", f"HTTP {code}"
                    break
                status, fields["error"] = "dead", f"HTTP {code}"
            if attempt < sub.max_retries:
                time.sleep(sub.retry_backoff**attempt)
        if status != "delivered":
            log.warning("webhook %s: %s delivery %s (%s)", sub.id, event, status, fields.get("error"))
        if record is not None and self._deliveries is not None:
            self._deliveries.update(sub.id, record["id"], status=status, completed_at=time.time(), **fields)
        return status

    def close(self, wait: bool = True) -> None:
        self.stop_reloading()
        self._pool.shutdown(wait=wait)

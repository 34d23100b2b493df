"""What keeps the dashboard from being open by accident: the ``Host`` names it answers,
the session secret's length, login throttling, sessions that end on logout or when the
password changes, ``Secure`` cookies over HTTPS and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("taskito.dashboard")

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MIN_SESSION_SECRET_BYTES = 32
# Login throttling: a client gets this many failures per window before it waits, and the
# wait doubles with each further failure; all clients together get OVERALL_FAILURES.
CLIENT_FAILURES = 5
OVERALL_FAILURES = 50
WINDOW_SECONDS = 15 * 60
MAX_WAIT_SECONDS = 15 * 60


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name) stays on this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts_from(value: list[str] | str | None) -> list[str]:
    """``allowed_hosts``, else ``TASKITO_DASHBOARD_ALLOWED_HOSTS`` (comma-separated), else
    the loopback names only: a page elsewhere cannot reach the dashboard through a rebound
    DNS name."""
    if value is None:
        value = os.environ.get("TASKITO_DASHBOARD_ALLOWED_HOSTS") or None
    if value is None:
        return list(LOOPBACK_HOSTS)
    if isinstance(value, str):
        value = value.split(",")
    hosts = [h.strip() for h in value if h.strip()]
    if not hosts:
        raise ValueError("allowed_hosts must name at least one host")
    return hosts


def session_secret(value: str | None) -> str:
    """The key that signs session cookies: ``value``, else ``TASKITO_DASHBOARD_SECRET``,
    else random per process. A given key shorter than 32 bytes is a ValueError."""
    given = value if value is not None else os.environ.get("TASKITO_DASHBOARD_SECRET") or None
    if given is None:
        return secrets.token_urlsafe(32)
    if len(given.encode()) < MIN_SESSION_SECRET_BYTES:
        raise ValueError(
            f"TASKITO_DASHBOARD_SECRET (or create_app(secret_key=...)) must be at least "
            f"{MIN_SESSION_SECRET_BYTES} random bytes, got {len(given.encode())} "
            f'(make one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return given


class Sessions:
    """Server-side state of logins: a logged-in session carries a fingerprint of the
    password (so changing it ends every session) and a random id that logout revokes."""

    def __init__(self, secret: str, password: str | None) -> None:
        self._fingerprint = ""
        if password:
            tagged = b"taskito.dashboard.password\x00" + password.encode()
            self._fingerprint = hmac.new(secret.encode(), tagged, hashlib.sha256).hexdigest()
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def log_in(self, session: dict[str, Any]) -> None:
        session.clear()
        session["auth"] = self._fingerprint
        session["sid"] = secrets.token_urlsafe(16)
        session["since"] = time.time()

    def is_logged_in(self, session: dict[str, Any]) -> bool:
        auth, sid = session.get("auth"), session.get("sid")
        if not self._fingerprint or not isinstance(auth, str) or not isinstance(sid, str):
            return False
        if not hmac.compare_digest(auth, self._fingerprint):
            return False
        with self._lock:
            return sid not in self._revoked

    def log_out(self, session: dict[str, Any], max_age: float) -> None:
        sid = session.get("sid")
        if isinstance(sid, str):
            now = time.time()
            with self._lock:
                self._revoked[sid] = now + max_age
                # Forget revocations whose cookie has expired anyway.
                for old in [s for s, until in self._revoked.items() if until < now]:
                    del self._revoked[old]
        session.clear()


class LoginThrottle:
    """Counts failed logins per client and overall; a client past ``CLIENT_FAILURES`` (or
    everyone, past ``OVERALL_FAILURES``) waits, twice as long after each further failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, list[float]] = {}
        self._overall: list[float] = []

    @staticmethod
    def _wait(failures: list[float], allowed: int, now: float) -> float:
        if len(failures) < allowed:
            return 0.0
        wait = min(MAX_WAIT_SECONDS, 2.0 ** (len(failures) - allowed))
        return max(0.0, failures[-1] + wait - now)

    def retry_after(self, client: str) -> float:
        """Seconds the client must wait before its next attempt (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            mine = self._clients.get(client, [])
            overall = self._wait(self._overall, OVERALL_FAILURES, now)
            return max(self._wait(mine, CLIENT_FAILURES, now), overall)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            self._clients.setdefault(client, []).append(now)
            self._overall.append(now)
            mine, overall = len(self._clients[client]), len(self._overall)
        log.warning(
            "dashboard: failed login from %s (%d from it, %d in all, in the last %d minutes)",
            client,
            mine,
            overall,
            WINDOW_SECONDS // 60,
        )

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _prune(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        self._overall = [t for t in self._overall if t >= horizon]
        for client in list(self._clients):
            kept = [t for t in self._clients[client] if t >= horizon]
            if kept:
                self._clients[client] = kept
            else:
                del self._clients[client]


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ResponseHeaders:
    """Adds ``Cache-Control: no-store`` to every response but static files (pages show job
    data), and marks the session cookie ``Secure`` when the request came over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    if https and name == b"set-cookie" and b"; secure" not in value.lower():
                        value = value + b"; Secure"
                    if not static and name == b"cache-control":
                        continue
                    headers.append((name, value))
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

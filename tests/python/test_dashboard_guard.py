"""The dashboard is never open by accident and never unpickles untrusted bytes: driven over
HTTP (httpx against the app, a real uvicorn server for the Host check) and through the CLI."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import write_app
from conftest import ROOT
from dashboard_support import LiveServer
from dbtools import get_blob, set_blob

from taskito import JsonSerializer, Queue

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from taskito.dashboard import create_app  # noqa: E402

KEY = b"k" * 32
SECRET = "s" * 40


class _Plant:
    """Unpickling this creates a folder: stands for any code an attacker would run."""

    def __init__(self, where: Path) -> None:
        self.where = str(where)

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.where,))


class client:  # noqa: N801 - used like httpx.Client
    """A synchronous httpx client that calls the ASGI app in this process (one event loop
    for its life, so cookies and the app's state carry over between requests)."""

    def __init__(self, app: Any, base: str = "http://127.0.0.1") -> None:
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
        self.cookies = self._client.cookies

    def __enter__(self) -> client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def get(self, url: str, **kw: Any) -> Any:
        return self._loop.run_until_complete(self._client.get(url, **kw))

    def post(self, url: str, **kw: Any) -> Any:
        return self._loop.run_until_complete(self._client.post(url, **kw))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


# -- 3. the dashboard never unpickles untrusted bytes -----------------------------------------------


@pytest.mark.parametrize("read_only", [False, True])
def test_a_tampered_pickle_is_shown_as_its_size_and_never_unpickled(tmp_path: Path, read_only: bool) -> None:
    path = str(tmp_path / "q.db")
    q = Queue(db_path=path)
    job = q.enqueue("anything", args=("harmless",))
    planted = tmp_path / "planted"
    set_blob(path, job.id, pickle.dumps(((_Plant(planted),), {}), protocol=5))  # another process
    json_q = Queue(db_path=path)

    @json_q.task(name="plain", serializer=JsonSerializer())
    def plain(x: int) -> int:
        return x

    shown = plain.delay(41)
    with client(create_app(json_q, read_only=read_only)) as c:
        page = c.get(f"/jobs/{job.id}")
        assert page.status_code == 200
        assert not planted.exists()
        assert "pickle" in page.text and "bytes stored" in page.text and "--decode-pickles" in page.text
        assert "[41]" in c.get(f"/jobs/{shown.id}").text  # JSON decodes safely
    # The control: the operator's explicit opt-in decodes, and the forgery runs.
    with client(create_app(json_q, unsafe_decode_pickles=True)) as c:
        c.get(f"/jobs/{job.id}")
    assert planted.exists()


def test_with_a_secret_key_the_dashboard_verifies_before_decoding(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    q = Queue(db_path=path, secret_key=KEY)
    job = q.enqueue("anything", args=("shown in full",))
    with client(create_app(q)) as c:
        assert "shown in full" in c.get(f"/jobs/{job.id}").text
    planted = tmp_path / "planted"
    body = get_blob(path, job.id)
    set_blob(path, job.id, body[:33] + pickle.dumps(((_Plant(planted),), {}), protocol=5))
    with client(create_app(q)) as c:
        assert "refused" in c.get(f"/jobs/{job.id}").text
    assert not planted.exists()


def test_a_huge_value_is_cut_before_it_is_formatted(tmp_path: Path) -> None:
    q = Queue(db_path=str(tmp_path / "q.db"))

    @q.task(name="big", serializer=JsonSerializer())
    def big(values: list) -> None:
        return None

    job = big.delay(list(range(100_000)))
    huge = big.delay(list(range(300_000)))  # past 1 MiB: not decoded at all
    with client(create_app(q)) as c:
        page = c.get(f"/jobs/{job.id}")
        assert page.status_code == 200 and len(page.text) < 10_000 and "..." in page.text
        assert "too large to preview" in c.get(f"/jobs/{huge.id}").text


# -- 5. never open by accident ---------------------------------------------------------------------------


def _dashboard(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    app = write_app(tmp_path, str(tmp_path / "q.db"))
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), **(env or {})}
    if "TASKITO_DASHBOARD_PASSWORD" not in (env or {}):
        full_env.pop("TASKITO_DASHBOARD_PASSWORD", None)
    return subprocess.run(
        [sys.executable, "-m", "taskito", "dashboard", "--app", app, *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=full_env,
    )


def test_a_network_address_without_a_password_is_refused(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    try:
        refused = _dashboard(tmp_path, "--host", "0.0.0.0", "--port", port)
        assert refused.returncode != 0
        assert "TASKITO_DASHBOARD_PASSWORD" in refused.stderr and "--insecure-no-password" in refused.stderr
        # Past the check: the port is taken, so the server stops at once without serving.
        allowed = _dashboard(tmp_path, "--host", "0.0.0.0", "--port", port, "--insecure-no-password")
        assert "[taskito] Dashboard" in allowed.stdout and "refusing" not in allowed.stderr
        password = {"TASKITO_DASHBOARD_PASSWORD": "pw-long-enough"}
        with_password = _dashboard(tmp_path, "--host", "0.0.0.0", "--port", port, env=password)
        assert "[taskito] Dashboard" in with_password.stdout and "refusing" not in with_password.stderr
    finally:
        taken.close()


def test_only_loopback_host_names_are_answered_unless_allowed(tmp_path: Path, monkeypatch: Any) -> None:
    q = Queue(db_path=str(tmp_path / "q.db"))
    with LiveServer(create_app(q)) as server:
        assert httpx.get(server.url + "/api/overview").status_code == 200
        rebound = httpx.get(server.url + "/api/overview", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400
    with client(create_app(q, allowed_hosts=["queue.internal"]), "http://queue.internal") as c:
        assert c.get("/api/overview").status_code == 200
    monkeypatch.setenv("TASKITO_DASHBOARD_ALLOWED_HOSTS", "a.example,b.example")
    with client(create_app(q), "http://b.example") as c:
        assert c.get("/api/overview").status_code == 200
    with client(create_app(q), "http://127.0.0.1") as c:
        assert c.get("/api/overview").status_code == 400


def test_failed_logins_are_throttled_per_client(tmp_path: Path, caplog: Any) -> None:
    q = Queue(db_path=str(tmp_path / "q.db"))
    app = create_app(q, password="right-password", secret_key=SECRET)
    with client(app) as c:
        codes = []
        for _ in range(7):
            token = csrf_of(c.get("/login").text)
            codes.append(c.post("/login", data={"password": "wrong", "csrf_token": token}).status_code)
        assert codes[:5] == [401] * 5 and codes[-1] == 429
        token = csrf_of(c.get("/login").text)
        # Even the right password waits: guessing goes no faster.
        late = c.post("/login", data={"password": "right-password", "csrf_token": token})
        assert late.status_code == 429 and int(late.headers["Retry-After"]) >= 1
        assert c.get("/api/overview", auth=("x", "wrong")).status_code == 429
    assert any("failed login" in r.getMessage() for r in caplog.records)


def test_sessions_end_at_logout_and_when_the_password_changes(tmp_path: Path) -> None:
    q = Queue(db_path=str(tmp_path / "q.db"))
    app = create_app(q, password="first-password", secret_key=SECRET)
    with client(app) as c:
        token = csrf_of(c.get("/login").text)
        assert c.post("/login", data={"password": "first-password", "csrf_token": token}).status_code == 303
        assert c.get("/api/overview").status_code == 200
        cookie = c.cookies["taskito_dashboard"]
        token = csrf_of(c.get("/").text)
        c.post("/logout", data={"csrf_token": token})
    with client(app) as replay:
        replay.cookies.set("taskito_dashboard", cookie)
        assert replay.get("/api/overview").status_code == 401  # the copied cookie is dead
    with client(app) as c:
        token = csrf_of(c.get("/login").text)
        c.post("/login", data={"password": "first-password", "csrf_token": token})
        cookie = c.cookies["taskito_dashboard"]
    changed = create_app(q, password="second-password", secret_key=SECRET)
    with client(changed) as c:
        c.cookies.set("taskito_dashboard", cookie)
        assert c.get("/api/overview").status_code == 401


def test_session_secret_cookies_and_caching(tmp_path: Path) -> None:
    q = Queue(db_path=str(tmp_path / "q.db"))
    with pytest.raises(ValueError, match="32"):
        create_app(q, secret_key="short")
    job = q.enqueue("anything", args=(1,))
    with client(create_app(q), "https://127.0.0.1") as c:
        page = c.get(f"/jobs/{job.id}")
        assert page.headers["cache-control"] == "no-store"
        assert "secure" in page.headers["set-cookie"].lower()
        assert c.get("/api/overview").headers["cache-control"] == "no-store"
    with client(create_app(q), "http://127.0.0.1") as c:
        assert "secure" not in c.get("/").headers["set-cookie"].lower()

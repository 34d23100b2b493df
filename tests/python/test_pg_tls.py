"""TLS to PostgreSQL with libpq's sslmodes, against a server started here that accepts
TLS connections only (``hostssl`` lines, a CA and certificates made by the test), and the
plaintext-only test server for the modes that must refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pg
import pg_tls
import pytest
from conftest import ROOT

from taskito import Queue
from taskito.exceptions import DatabaseError

pytestmark = pytest.mark.skipif(not pg_tls.available(), reason="PostgreSQL is not installed")


@pytest.fixture(scope="module")
def server() -> Iterator[pg_tls.TlsServer]:
    s = pg_tls.start()
    yield s
    s.stop()


def schema() -> str:
    return f"tls_{uuid.uuid4().hex[:10]}"


def test_verify_full_encrypts_every_session_including_the_listener(server: pg_tls.TlsServer) -> None:
    url = server.url(sslmode="verify-full", sslrootcert=server.file("ca.pem"))
    queue = Queue(db_url=url, schema=schema(), workers=2, scheduler_poll_interval_ms=20)

    @queue.task()
    def double(x: int) -> int:
        return 2 * x

    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    try:
        assert double.delay(21).result(timeout=30) == 42
        rows: list[list[str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = server.psql(
                "SELECT s.ssl, left(a.query, 6) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.application_name = 'taskito'"
            )
            rows = [line.split("|") for line in out.splitlines()]
            if any(q == "LISTEN" for _, q in rows):
                break
            time.sleep(0.1)
        assert len(rows) >= 2, rows
        assert all(ssl == "t" for ssl, _ in rows), rows
        assert any(q == "LISTEN" for _, q in rows), f"no listening session among {rows}"
        assert server.password not in repr(queue) and server.password not in str(queue.db_path)
    finally:
        queue.shutdown()
        worker.join(30)
        queue.close()


def failure(url: str) -> str:
    with pytest.raises((DatabaseError, ValueError)) as e:
        Queue(db_url=url, schema=schema())
    return str(e.value)


def test_a_wrong_ca_fails_naming_host_and_reason(server: pg_tls.TlsServer) -> None:
    msg = failure(server.url(sslmode="verify-full", sslrootcert=server.file("other-ca.pem")))
    assert "certificate verify failed for host 127.0.0.1: unknown issuer" in msg
    assert server.password not in msg
    # As libpq: require with a root certificate checks the chain too.
    msg = failure(server.url(sslmode="require", sslrootcert=server.file("other-ca.pem")))
    assert "unknown issuer" in msg


def test_a_wrong_host_name_fails_verify_full_but_not_verify_ca(server: pg_tls.TlsServer) -> None:
    msg = failure(server.url(host="localhost", sslmode="verify-full", sslrootcert=server.file("ca.pem")))
    assert "certificate verify failed for host localhost: the certificate does not name this host" in msg
    url = server.url(host="localhost", sslmode="verify-ca", sslrootcert=server.file("ca.pem"))
    Queue(db_url=url, schema=schema()).close()


def test_require_without_a_root_certificate_encrypts_without_verifying(server: pg_tls.TlsServer) -> None:
    Queue(db_url=server.url(host="localhost", sslmode="require"), schema=schema()).close()


def test_prefer_is_the_default_and_allow_falls_back_to_tls(server: pg_tls.TlsServer) -> None:
    Queue(db_url=server.url(), schema=schema()).close()
    Queue(db_url=server.url(sslmode="allow"), schema=schema()).close()
    msg = failure(server.url(sslmode="disable"))
    assert "no encryption" in msg and server.password not in msg


def test_require_against_a_plaintext_only_server_fails_clearly() -> None:
    base = pg.server_url()
    if base is None:
        pytest.skip("no plaintext PostgreSQL server: set TASKITO_TEST_PG_URL")
    sep = "&" if "?" in base else "?"
    msg = failure(f"{base}{sep}sslmode=require")
    assert "server does not support TLS" in msg
    # prefer (the default) goes on unencrypted there.
    Queue(db_url=base, schema=schema()).close()


def test_a_client_certificate_authenticates(server: pg_tls.TlsServer) -> None:
    url = server.url(
        user="certuser",
        sslmode="verify-full",
        sslrootcert=server.file("ca.pem"),
        sslcert=server.file("client.pem"),
        sslkey=server.file("client.key"),
    )
    queue = Queue(db_url=url, schema=schema())

    @queue.task()
    def ping() -> str:
        return "pong"

    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    try:
        assert ping.delay().result(timeout=30) == "pong"
    finally:
        queue.shutdown()
        worker.join(30)
        queue.close()
    msg = failure(server.url(user="certuser", sslmode="verify-full", sslrootcert=server.file("ca.pem")))
    assert "client certificate" in msg


def test_settings_come_from_the_pg_environment(
    server: pg_tls.TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGSSLROOTCERT", server.file("other-ca.pem"))
    assert "unknown issuer" in failure(server.url())
    monkeypatch.setenv("PGSSLROOTCERT", server.file("ca.pem"))
    Queue(db_url=server.url(), schema=schema()).close()
    monkeypatch.setenv("PGSSLCERT", server.file("client.pem"))
    monkeypatch.setenv("PGSSLKEY", server.file("client.key"))
    Queue(db_url=server.url(user="certuser"), schema=schema()).close()


def test_bad_tls_settings_are_value_errors(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    with pytest.raises(ValueError, match="sslmode \"strict\" is not one of"):
        Queue(db_url="postgresql://u:pw@127.0.0.1:1/db?sslmode=strict")
    with pytest.raises(ValueError, match="sslrootcert /nonexistent/ca.pem"):
        Queue(db_url="postgresql://u:pw@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="needs a root certificate"):
        Queue(db_url="postgresql://u:pw@127.0.0.1:1/db?sslmode=verify-ca")


def test_the_guide_example_runs_over_verify_full(server: pg_tls.TlsServer) -> None:
    example = (ROOT / "examples" / "postgres_tls.py").read_text()
    guide = (ROOT / "docs" / "guides" / "postgresql-tls.md").read_text()
    assert f"```python\n{example}```" in guide, "the guide shows the example file as it is"
    url = server.url(sslmode="verify-full", sslrootcert=server.file("ca.pem"))
    env = {**os.environ, "TASKITO_DB_URL": url, "TASKITO_SCHEMA": schema(), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "postgres_tls.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "hello, TLS" in out.stdout
    assert server.password not in out.stdout + out.stderr

"""A PostgreSQL password is never shown, whatever characters it holds: not in ``db_path``,
``db_url``, ``repr(queue)``, error messages or log records; nor ``sslpassword``. The
password is also understood as written, unescaped (``@``, ``/``, ``?``, ``#`` included)."""

from __future__ import annotations

import logging
import secrets
import threading
import time

import httpx
import pg
import pytest
from dashboard_support import LiveServer

from taskito import Queue, _backend
from taskito.dashboard import create_app
from taskito.exceptions import DatabaseError

# A literal `%` must be written `%25` (URLs decode escapes): it is only redacted here.
NASTY = ["p@ss/w?rd", "a:b@c#d", "?/@:&=", "50%off"]


def test_redact_hides_every_password_shape() -> None:
    for password in NASTY:
        url = f"postgresql://bob:{password}@db:5432/app?sslmode=require&sslpassword={password}&password={password}"
        shown = _backend.redact(url)
        assert shown == "postgresql://bob:***@db:5432/app?sslmode=require&sslpassword=***&password=***"
    assert _backend.redact("postgres://db/app?x=1") == "postgres://db/app?x=1"
    assert _backend.redact("postgres://bob@db/app") == "postgres://bob@db/app"


@pytest.mark.skipif(pg.server_url() is None, reason="no PostgreSQL server: set TASKITO_TEST_PG_URL")
@pytest.mark.parametrize("shape", NASTY[:3])
def test_a_password_with_url_characters_logs_in_and_is_never_shown(
    shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    role = f"r_{secrets.token_hex(4)}"
    password = f"{shape}{secrets.token_hex(3)}"
    quoted = password.replace("'", "''")
    pg.psql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{quoted}'")
    base = pg.server_url()
    assert base is not None
    hostpart = base.split("@", 1)[1].rsplit("/", 1)[0]
    with pg.fresh_database() as db:
        name = db.rsplit("/", 1)[1]
        url = f"postgresql://{role}:{password}@{hostpart}/{name}?sslpassword={password}"
        queue = Queue(db_url=url, workers=1, scheduler_poll_interval_ms=20)

        @queue.task()
        def echo(x: int) -> int:
            return x

        worker = threading.Thread(target=queue.run_worker, daemon=True)
        worker.start()
        try:
            assert echo.delay(7).result(timeout=30) == 7
            time.sleep(0.2)
            with LiveServer(create_app(queue)) as server, httpx.Client(base_url=server.url) as client:
                page = client.get("/")
                assert page.status_code == 200
                assert password not in page.text and f"{role}:***@" in page.text
        finally:
            queue.shutdown()
            worker.join(30)
            queue.close()
        shown = [repr(queue), str(queue.db_path), str(queue.db_url)]
        assert all(password not in s for s in shown), shown
        assert all(f"{role}:***@" in s for s in shown[:2]), shown
        with pytest.raises(DatabaseError) as e:
            Queue(db_url=url.replace(f"/{name}?", "/no_such_db?"))
        assert password not in str(e.value)
        assert all(password not in r.getMessage() for r in caplog.records)
    pg.psql(f"DROP ROLE {role}")

"""Enqueue inside the application's transaction (PostgreSQL): through a psycopg 3
connection, a SQLAlchemy Connection and a SQLAlchemy Session. The job exists if and only
if the transaction commits; a worker in another process never sees it earlier; unique keys
and ``max_pending`` hold across concurrent transactions."""

from __future__ import annotations

import os
import sqlite3
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pg
import psycopg
import pytest
import sqlalchemy
from conftest import ROOT
from sqlalchemy.orm import Session

from taskito import Queue
from taskito.exceptions import QueueFullError

pytestmark = pytest.mark.skipif(
    pg.server_url() is None, reason="no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)"
)


@pytest.fixture
def url() -> Iterator[str]:
    with pg.fresh_database() as u:
        yield u


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def psycopg_kind(url: str) -> Iterator[tuple[Any, Callable[[], None], Callable[[], None]]]:
    conn = psycopg.connect(url)
    try:
        yield conn, conn.commit, conn.rollback
    finally:
        conn.close()


@contextmanager
def sqlalchemy_connection_kind(url: str) -> Iterator[tuple[Any, Callable[[], None], Callable[[], None]]]:
    engine = sqlalchemy.create_engine(sa_url(url))
    try:
        with engine.connect() as conn:
            yield conn, conn.commit, conn.rollback
    finally:
        engine.dispose()


@contextmanager
def sqlalchemy_session_kind(url: str) -> Iterator[tuple[Any, Callable[[], None], Callable[[], None]]]:
    engine = sqlalchemy.create_engine(sa_url(url))
    try:
        with Session(engine) as session:
            yield session, session.commit, session.rollback
    finally:
        engine.dispose()


KINDS = {
    "psycopg": psycopg_kind,
    "sqlalchemy-connection": sqlalchemy_connection_kind,
    "sqlalchemy-session": sqlalchemy_session_kind,
}


def count_jobs(url: str) -> int:
    return int(pg.psql("SELECT count(*) FROM taskito.jobs", url))


@pytest.mark.parametrize("kind", list(KINDS))
def test_rollback_leaves_nothing_and_commit_runs_the_job_once(url: str, kind: str) -> None:
    queue = Queue(db_url=url, workers=2, scheduler_poll_interval_ms=20)
    runs: list[int] = []

    @queue.task()
    def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    with KINDS[kind](url) as (conn, commit, rollback):
        with queue.using(conn):
            add.delay(1, 1)
            queue.enqueue_many(add.name, [(2, 2), (3, 3)])
            add.apply_async((4, 4), unique_key="only-once")
        rollback()
        assert count_jobs(url) == 0
        # The unique key was not kept by the rolled-back transaction.
        kept = add.apply_async((5, 5), unique_key="only-once", connection=conn)
        many = queue.enqueue_many(add.name, [(6, 6)], connection=conn)
        assert count_jobs(url) == 0, "not visible before the commit"
        commit()
    assert count_jobs(url) == 2
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    try:
        assert kept.result(timeout=30) == 10
        assert many[0].result(timeout=30) == 12
    finally:
        queue.shutdown()
        worker.join(30)
        queue.close()
    assert sorted(runs) == [5, 6]


def test_the_row_is_the_normal_paths(url: str) -> None:
    queue = Queue(db_url=url)

    @queue.task(max_retries=4, timeout=7, priority=3)
    def work(x: int) -> int:
        return x

    normal = work.apply_async((1,), unique_key="a", metadata="m", delay=60)
    with psycopg_kind(url) as (conn, commit, _):
        through = work.apply_async((1,), unique_key="b", metadata="m", delay=60, connection=conn)
        commit()
    cols = (
        "queue, task_name, encode(payload, 'hex'), status, priority, max_retries, retry_backoff, "
        "timeout_ms, metadata, result_ttl_ms, scheduled_at - created_at BETWEEN 59000 AND 61000"
    )
    rows = [pg.psql(f"SELECT {cols} FROM taskito.jobs WHERE id = '{j.id}'", url) for j in (normal, through)]
    assert rows[0] == rows[1] and rows[0]
    assert len(through.id) == len(normal.id)
    queue.close()


def test_two_concurrent_transactions_with_one_unique_key_end_with_one_job(url: str) -> None:
    queue = Queue(db_url=url)

    @queue.task()
    def job(x: int) -> int:
        return x

    with psycopg_kind(url) as (first, commit_first, _), psycopg_kind(url) as (second, commit_second, _):
        a = job.apply_async((1,), unique_key="k", connection=first)
        got: list[Any] = []
        # The second insert waits on the unique index until the first transaction ends,
        # then inserts nothing and answers with the first job's id.
        t = threading.Thread(
            target=lambda: got.append(job.apply_async((2,), unique_key="k", connection=second))
        )
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "the second transaction waits for the first"
        commit_first()
        t.join(10)
        commit_second()
        assert got[0].id == a.id
    assert count_jobs(url) == 1
    # A loser whose winner rolled back inserts its own job.
    with psycopg_kind(url) as (first, _, rollback_first), psycopg_kind(url) as (second, commit_second, _):
        job.apply_async((3,), unique_key="k2", connection=first)
        got = []
        t = threading.Thread(
            target=lambda: got.append(job.apply_async((4,), unique_key="k2", connection=second))
        )
        t.start()
        time.sleep(0.3)
        rollback_first()
        t.join(10)
        commit_second()
    assert pg.psql("SELECT count(*) FROM taskito.jobs WHERE unique_key = 'k2'", url) == "1"
    queue.close()


def test_max_pending_holds_and_a_refusal_leaves_the_transaction_usable(url: str) -> None:
    queue = Queue(db_url=url, max_pending={"default": 2})

    @queue.task()
    def job(x: int) -> int:
        return x

    job.delay(0)
    with psycopg_kind(url) as (conn, commit, _):
        (before,) = conn.execute("SHOW search_path").fetchone()
        job.apply_async((1,), connection=conn)
        assert conn.execute("SHOW search_path").fetchone() == (before,), "the caller's search_path is kept"
        with pytest.raises(QueueFullError, match="max_pending is 2"):
            queue.enqueue_many(job.name, [(2,), (3,)], connection=conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        commit()
    assert count_jobs(url) == 2
    queue.close()


WORKER = textwrap.dedent(
    """
    import os
    from taskito import Queue

    queue = Queue(db_url=os.environ["DB"], workers=2, scheduler_poll_interval_ms=20)

    @queue.task()
    def seen(tag):
        with open(os.environ["OUT"], "a") as f:
            f.write(tag + "\\n")

    queue.run_worker()
    """
)


def test_a_worker_in_another_process_never_sees_the_job_before_the_commit(url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "seen.txt"
    queue = Queue(db_url=url)

    @queue.task(name="__main__.seen")
    def seen(tag: str) -> None: ...

    env = {**os.environ, "DB": url, "OUT": str(out), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env)
    try:
        with psycopg_kind(url) as (conn, commit, _):
            job = seen.apply_async(("committed",), connection=conn)
            time.sleep(1.5)
            assert not out.exists(), "the worker ran a job its transaction had not committed"
            commit()
        job.result(timeout=30)
        assert out.read_text() == "committed\n"
    finally:
        worker.terminate()
        worker.wait(30)
        queue.close()


def test_a_wrong_target_or_kind_is_a_clear_error(url: str, tmp_path: Path) -> None:
    queue = Queue(db_url=url)

    @queue.task()
    def job() -> None: ...

    job.delay()  # the queue's schema exists
    with psycopg.connect(pg.server_url() or "") as other:
        with pytest.raises(ValueError, match="database 'postgres'.*the queue's is database 't_"):
            job.apply_async(connection=other)
    closed = psycopg.connect(url)
    closed.close()
    with pytest.raises(psycopg.OperationalError):
        job.apply_async(connection=closed)
    with pytest.raises(TypeError, match="psycopg 3 Connection, a SQLAlchemy Connection or Session"):
        job.apply_async(connection=object())
    with pytest.raises(TypeError, match="PostgreSQL queue"):
        job.apply_async(connection=sqlite3.connect(str(tmp_path / "q.db")))
    queue.close()


def test_dependencies_are_refused_inside_the_block_rather_than_committed_alone(url: str) -> None:
    queue = Queue(db_url=url)

    @queue.task()
    def job(x: int) -> int:
        return x

    first = job.delay(1)
    with psycopg_kind(url) as (conn, _, rollback):
        with queue.using(conn), pytest.raises(ValueError, match="outside queue.using"):
            job.apply_async((2,), depends_on=first)
        rollback()
    assert count_jobs(url) == 1
    queue.close()


def test_the_guide_example_runs(url: str) -> None:
    import subprocess
    import sys

    example = (ROOT / "examples" / "transactional_enqueue.py").read_text()
    guide = (ROOT / "docs" / "guides" / "transactional-enqueue.md").read_text()
    assert f"```python\n{example}```" in guide, "the guide shows the example file as it is"
    env = {**os.environ, "TASKITO_DB_URL": url, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "transactional_enqueue.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "no receipt job, pending = 0" in out.stdout
    assert "committed with its job" in out.stdout
    assert pg.psql("SELECT count(*) FROM orders", url) == "1"


def test_async_with_routes_the_block(url: str) -> None:
    import asyncio

    queue = Queue(db_url=url)

    @queue.task()
    def job(x: int) -> int:
        return x

    async def enqueue_in_block(conn: Any) -> None:
        async with queue.using(conn):
            job.delay(1)
            job.map([(2,), (3,)])

    with psycopg_kind(url) as (conn, commit, rollback):
        asyncio.run(enqueue_in_block(conn))
        assert count_jobs(url) == 0
        rollback()
        asyncio.run(enqueue_in_block(conn))
        commit()
    assert count_jobs(url) == 3
    queue.close()


DJANGO_APP = textwrap.dedent(
    """
    import os
    from urllib.parse import unquote, urlsplit

    import django
    from django.conf import settings

    u = urlsplit(os.environ["DB"])
    settings.configure(DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": u.path[1:], "USER": u.username,
        "PASSWORD": unquote(u.password or ""), "HOST": u.hostname, "PORT": u.port}})
    django.setup()
    from django.db import connection, transaction

    from taskito import Queue

    queue = Queue(db_url=os.environ["DB"])

    @queue.task()
    def job(x):
        return x

    try:
        with transaction.atomic():
            job.apply_async((1,), unique_key="k", connection=connection)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert queue.stats()["pending"] == 0
    with transaction.atomic():
        with queue.using(connection):
            job.apply_async((2,), unique_key="k")
        assert queue.stats()["pending"] == 0
    assert queue.stats()["pending"] == 1
    job.apply_async((3,), connection=connection)  # autocommit: its own transaction
    assert queue.stats()["pending"] == 2
    print("ok")
    """
)


def test_a_django_connection_enqueues_in_its_transaction(url: str) -> None:
    import subprocess
    import sys

    pytest.importorskip("django")
    env = {**os.environ, "DB": url, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", DJANGO_APP], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

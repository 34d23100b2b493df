"""The database is untrusted: what someone who can write it (but holds no key) can and cannot
do. Every tampering here is done from another process, as an attacker with access to the
file or the server would: ``python -c`` with the stdlib sqlite3 module, or ``psql``."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pg
import pytest
from cli_support import run_cli, write_app
from conftest import RunningWorker
from dbtools import get_blob, set_blob

from taskito import AesGcmCodec, CryptoError, DatabaseError, Queue, TaskMiddleware, chain, chunks

KEY = b"k" * 32
OLD_KEY = b"o" * 32
COPY_RESULT = "UPDATE jobs SET result = (SELECT result FROM jobs WHERE id = ?) WHERE id = ?"

_SQLITE_EXEC = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
with con:
    n = con.execute(sys.argv[2], tuple(sys.argv[3:])).rowcount
assert n == 1, n
"""


def tamper(db: str, sql: str, *params: str) -> None:
    """Runs one UPDATE on the queue's database from another process."""
    if db.startswith("postgres"):
        for p in params:
            sql = sql.replace("?", "'" + p.replace("'", "''") + "'", 1)
        out = pg.psql(f"SET search_path TO taskito; {sql}", url=db)
        assert "UPDATE 1" in out or out == "", out
        return
    proc = subprocess.run(
        [sys.executable, "-c", _SQLITE_EXEC, db, sql, *params], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def new_queue(db: str, **kw: Any) -> Queue:
    return Queue(db_path=db, workers=2, scheduler_poll_interval_ms=10, **kw)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def register(q: Queue, ran: Path) -> tuple[Any, Any]:
    @q.task(name="greet", max_retries=2)
    def greet(name: str) -> str:
        with open(ran, "a") as f:
            f.write(f"greet {name}\n")
        return f"hello {name}"

    @q.task(name="delete_account", max_retries=2)
    def delete_account(name: str) -> str:
        with open(ran, "a") as f:
            f.write(f"delete {name}\n")
        return f"deleted {name}"

    return greet, delete_account


# -- 1. a signature covers where the bytes are stored ----------------------------------------


def test_a_relabelled_job_or_a_moved_result_fails_verification(db_path: str, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    q = new_queue(db_path, secret_key=KEY)
    greet, delete_account = register(q, ran)
    relabelled = greet.delay("bob")
    tamper(db_path, "UPDATE jobs SET task_name = 'delete_account' WHERE id = ?", relabelled.id)
    q.run_worker(run_once=True)
    assert relabelled.status == "failed" and "CryptoError" in (relabelled.error or "")
    assert len(relabelled.errors) == 1  # refused once, not retried
    assert not ran.exists()  # neither task body ran

    a, b = greet.delay("alice"), greet.delay("carol")
    q.run_worker(run_once=True)
    assert a.result(timeout=10) == "hello alice" and b.result(timeout=10) == "hello carol"
    tamper(db_path, COPY_RESULT, a.id, b.id)
    with pytest.raises(CryptoError, match="moved from another job"):
        b.result(timeout=5)
    assert a.result(timeout=5) == "hello alice"


@pytest.mark.sqlite_only
def test_a_row_signed_in_the_older_format_is_refused_with_a_clear_error(db_path: str, tmp_path: Path) -> None:
    import hashlib
    import hmac

    q = new_queue(db_path, secret_key=KEY)
    greet, _ = register(q, tmp_path / "ran.txt")
    job = greet.delay("x")
    body = pickle.dumps((("x",), {}), protocol=5)
    set_blob(db_path, job.id, hmac.digest(KEY, body, hashlib.sha256) + body)
    q.run_worker(run_once=True)
    assert job.status == "failed" and "older format" in (job.error or "")


def test_a_tampered_parent_result_fails_its_step_once(db_path: str, tmp_path: Path) -> None:
    q = new_queue(db_path, secret_key=KEY)

    @q.task(name="first", queue="a")
    def first(x: int) -> int:
        return x + 1

    @q.task(name="second", queue="b", max_retries=3)
    def second(previous: int) -> int:
        return previous * 10

    other = first.delay(100)
    step = chain(first.s(1), second.s()).apply()
    q.run_worker(queues=["a"], run_once=True)
    parent_id = step.dependencies[0]
    assert q.get_job(parent_id).result(timeout=5) == 2 and other.result(timeout=5) == 101
    tamper(db_path, COPY_RESULT, other.id, parent_id)
    q.run_worker(queues=["b"], run_once=True)
    assert step.status == "failed"  # not retried to dead: the bytes will not get better
    assert len(step.errors) == 1 and "CryptoError" in (step.error or "")


# -- 2. key rotation ---------------------------------------------------------------------------------


def test_rotating_the_key_never_fails_pending_jobs(
    db_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran.txt"
    old = new_queue(db_path, secret_key=OLD_KEY)
    greet, _ = register(old, ran)
    pending = greet.delay("before")
    rotated = new_queue(db_path, secret_key=[KEY, OLD_KEY])
    register(rotated, ran)
    after = rotated.enqueue("greet", args=("after",))
    rotated.run_worker(run_once=True)
    # The job signed with the old key ran; its result is signed with the new one.
    assert rotated.get_job(pending.id).result(timeout=10) == "hello before"
    assert after.result(timeout=10) == "hello after"
    # New bytes are signed with the first key only: the old key alone refuses them.
    with pytest.raises(CryptoError):
        new_queue(db_path, secret_key=OLD_KEY).get_job(after.id).result(timeout=5)
    assert new_queue(db_path, secret_key=KEY).get_job(after.id).result(timeout=5) == "hello after"
    # The same list through the environment, comma-separated.
    monkeypatch.setenv("TASKITO_SECRET_KEY", f"{KEY.decode()},{OLD_KEY.decode()}")
    assert new_queue(db_path).get_job(pending.id).result(timeout=5) == "hello before"
    monkeypatch.delenv("TASKITO_SECRET_KEY")
    for short in (b"x" * 31, [KEY, b"x" * 31], []):
        with pytest.raises(ValueError, match="secret_key"):
            new_queue(db_path, secret_key=short)


# -- 4. chunks go through the task's own plan -------------------------------------------------------


@pytest.mark.sqlite_only
def test_chunks_are_calls_of_the_task_with_its_codecs_and_limits(db_path: str) -> None:
    q = new_queue(db_path, codecs={"aes": AesGcmCodec(KEY)})
    seen: list[str] = []

    class Watch(TaskMiddleware):
        def before(self, ctx: Any) -> None:
            seen.append(ctx.task_name)

    @q.task(name="total", codecs=["aes"], max_concurrent=1, middleware=[Watch()])
    def total(values: list[str]) -> int:
        return sum(len(v) for v in values)

    parts = chunks(total, ["secret-item-1", "secret-item-22", "secret-item-333"], 2).apply()
    assert len(parts) == 2
    for p in parts:
        assert q.get_job(p.id).to_dict()["task_name"] == "total"
        assert b"secret-item" not in get_blob(db_path, p.id)  # encrypted by the task's codec
    q.run_worker(run_once=True)
    assert [p.result(timeout=10) for p in parts] == [13 + 14, 15]
    assert seen == ["total", "total"]  # the task's middleware ran for each chunk
    with pytest.raises(ValueError, match="chunk_size"):
        chunks(total, [1], 0)
    with pytest.raises(ValueError, match="no items"):
        chunks(total, [], 2)


# -- 6. files beside the database ---------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_wake_folder_and_its_sockets_are_private_whatever_the_umask(db_path: str) -> None:
    folder = db_path + "-wake"
    with umask(0):
        q = new_queue(db_path)
        running = RunningWorker(q).start()  # a worker binds its socket in the wake folder
        try:
            deadline = time.monotonic() + 20
            while not (os.path.isdir(folder) and any(f.endswith(".sock") for f in os.listdir(folder))):
                assert time.monotonic() < deadline, "no wake socket was bound"
                time.sleep(0.02)
            assert os.stat(folder).st_mode & 0o777 == 0o700
            socks = [f for f in os.listdir(folder) if f.endswith(".sock")]
            for name in socks:
                assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o600
        finally:
            running.stop()


@pytest.mark.sqlite_only
def test_a_wake_folder_that_is_a_link_is_refused_and_the_worker_polls(db_path: str, tmp_path: Path) -> None:
    new_queue(db_path).enqueue("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, db_path + "-wake")
    code = (
        "import sys, logging; logging.basicConfig(level=logging.WARNING)\n"
        "from taskito import Queue\n"
        "q = Queue(db_path=sys.argv[1], workers=1, scheduler_poll_interval_ms=10)\n"
        "@q.task(name='x')\n"
        "def x():\n    return 7\n"
        "q.run_worker(run_once=True)\n"
        "print(list(q.list_jobs_after(limit=5))[0].result(timeout=5))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, db_path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("7")
    assert "symbolic link" in proc.stderr and proc.stderr.count("symbolic link") == 1
    assert os.listdir(elsewhere) == []  # nothing bound through the link


@pytest.mark.sqlite_only
def test_a_database_path_that_is_a_link_or_too_wide_is_refused(tmp_path: Path) -> None:
    dangling = tmp_path / "q.db"
    os.symlink(tmp_path / "target.db", dangling)
    with umask(0o022), pytest.raises(Exception, match="symbolic link"):
        Queue(db_path=str(dangling))
    assert not (tmp_path / "target.db").exists()  # never created with the umask's 0644
    wide = str(tmp_path / "wide.db")
    new_queue(wide).enqueue("x")
    os.chmod(wide, 0o644)
    with pytest.raises(Exception, match="wider than file_mode"):
        Queue(db_path=wide)
    assert Queue(db_path=wide, file_mode=0o644).stats()["pending"] == 1  # shared on purpose


# -- 7. bounded inputs -----------------------------------------------------------------------------------


def test_payload_metadata_and_error_sizes_are_bounded(db_path: str) -> None:
    q = new_queue(db_path, max_payload_bytes=1000, max_metadata_bytes=100)

    @q.task(name="boom", max_retries=0)
    def boom(n: int) -> None:
        raise ValueError("x" * n)

    with pytest.raises(ValueError, match=r"bytes once encoded, past max_payload_bytes=1000"):
        q.enqueue("boom", args=("y" * 2000,))
    with pytest.raises(ValueError, match="max_metadata_bytes=100"):
        boom.apply_async((1,), metadata={"k": "v" * 200})
    with pytest.raises(ValueError, match="max_payload_bytes"):
        q.enqueue_many("boom", [(1,), ("y" * 2000,)])
    assert sum(q.stats().values()) == 0  # nothing of a refused call was stored
    job = boom.delay(1_000_000)
    q.run_worker(run_once=True)
    error = job.error or ""
    assert len(error.encode()) < 4200 and "more bytes cut" in error


def test_prometheus_labels_of_unknown_tasks_and_queues_collapse(db_path: str) -> None:
    pytest.importorskip("prometheus_client")
    from taskito.metrics import OTHER, Metrics

    q = new_queue(db_path)

    @q.task(name="known")
    def known() -> int:
        return 1

    metrics = Metrics(q).attach()
    for i in range(20):
        q.enqueue(f"junk-{i}", queue=f"q-{i}")
    known.delay()
    q.run_worker(run_once=True)
    q.run_worker(queues=[f"q-{i}" for i in range(20)], run_once=True)
    text = metrics.exposition().decode()
    assert "junk-" not in text and 'queue="q-' not in text
    assert f'task="{OTHER}"' in text and f'queue="{OTHER}"' in text and 'task="known"' in text


# -- 8. idempotent calls under a randomized codec ------------------------------------------------------


def test_idempotent_calls_deduplicate_under_aes_gcm(db_path: str) -> None:
    q = new_queue(db_path, codec=AesGcmCodec(KEY), secret_key=KEY)

    @q.task(name="charge", idempotent=True)
    def charge(account: str, cents: int) -> int:
        return cents

    a, b = charge.delay("acct-1", 500), charge.delay("acct-1", 500)
    c = charge.delay("acct-1", 501)
    assert a.id == b.id and c.id != a.id
    key = q.get_job(a.id).to_dict()["unique_key"]
    assert "acct-1" not in key
    # Keyed with the secret: another key derives another key for the same call.
    other_db = db_path if db_path.startswith("postgres") else db_path + "-other"
    other = new_queue(other_db, secret_key=b"z" * 32)

    @other.task(name="charge", idempotent=True)
    def charge2(account: str, cents: int) -> int:
        return cents

    assert other.get_job(charge2.delay("acct-1", 500).id).to_dict()["unique_key"] != key


# -- 9. smaller checks ---------------------------------------------------------------------------------------


def test_a_schema_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema"):
        Queue(db_url="postgresql://u:p@127.0.0.1:1/db", backend="postgres", schema="taskito\n")


# -- 10. passwords with "/", "?" or "@" never show --------------------------------------------------------


@pytest.mark.parametrize("password", ["a/b", "q?r", "x@y", "p/q?r@s"])
def test_a_postgres_password_with_url_characters_never_shows(password: str) -> None:
    url = f"postgresql://bob:{password}@127.0.0.1:1/app"
    code = (
        "import sys, logging\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from taskito import Queue\n"
        "try:\n    Queue(db_path=sys.argv[1])\n"
        "except Exception as e:\n    print(repr(e)); print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip(), proc.stderr
    assert password not in proc.stdout and password not in proc.stderr
    from taskito._backend import redact

    assert password not in redact(url) and "127.0.0.1:1/app" in redact(url)
    assert json.dumps(redact(url))  # a plain string


# -- 1 and 9, continued: every worker pool; the driver's messages -------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("pool", ["prefork", "async"])
def test_a_relabelled_job_is_refused_in_prefork_children_and_the_async_lane(
    db_path: str, tmp_path: Path, pool: str
) -> None:
    if pool == "prefork" and not sys.platform.startswith("linux"):
        pytest.skip("the prefork pool needs Linux")
    marker = tmp_path / "ran.txt"
    body = f"""
    @queue.task(name="greet")
    async def greet(name):
        return "hello " + name

    @queue.task(name="wipe")
    {"async " if pool == "async" else ""}def wipe(name):
        open({str(marker)!r}, "a").write(name)
        return "wiped " + name
    """
    app = write_app(tmp_path, db_path, body, queue_args=f"db_path={db_path!r}, workers=1, secret_key={KEY!r}")
    q = new_queue(db_path, secret_key=KEY)
    job = q.enqueue("touch", args=(str(marker), "bob"))
    tamper(db_path, "UPDATE jobs SET task_name = 'wipe' WHERE id = ?", job.id)
    flags = ["--pool", "prefork"] if pool == "prefork" else []
    proc = run_cli("worker", "--app", app, "--run-once", *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert job.status == "failed" and "CryptoError" in (job.error or "")
    assert not marker.exists()


def test_scrubbing_a_short_password_never_masks_other_text() -> None:
    """With the password "p", masking every "p" of the server's answer would garble it and
    tell the reader the password; only the password standing alone is masked."""
    url = pg.server_url()
    if url is None:
        pytest.skip("no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
    user = url.split("://", 1)[1].split(":", 1)[0]
    wrong = url.replace(url.split("://", 1)[1].split("@", 1)[0], f"{user}:p", 1)
    with pytest.raises(DatabaseError) as info:
        Queue(db_path=wrong)
    assert f'password authentication failed for user "{user}"' in str(info.value)
    assert "***" not in str(info.value)

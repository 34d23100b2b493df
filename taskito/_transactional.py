"""Enqueue inside the application's own transaction (PostgreSQL).

``queue.using(conn)`` (or ``connection=conn`` on one call) routes the enqueues of this
context through ``conn``: the job rows are written by the application's driver, inside its
current transaction, with the very statement and values the normal path uses (built by
the engine: ``QueueCore.enqueue_plan``). The job exists if and only if that transaction
commits; the wake-up is a ``NOTIFY`` in the same transaction, delivered by the commit.
Which connection is in use is kept in a ``contextvars`` variable, so other threads and
tasks are unaffected.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sqlite3
import time
import weakref
from contextlib import nullcontext
from typing import Any

from taskito._taskito import QueueCore
from taskito.exceptions import QueueFullError

KINDS = (
    "a psycopg 3 Connection, a SQLAlchemy Connection or Session, or a Django connection "
    "(django.db.connection) for a PostgreSQL queue; a sqlite3.Connection on its file for a SQLite queue"
)

_bound: contextvars.ContextVar[_Binding | _SqliteBinding | None] = contextvars.ContextVar(
    "taskito_app_connection", default=None
)

# Connections already found to reach the queue's database and schema.
_checked: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()

_PLACEHOLDER = re.compile(r"\$(\d+)")
# The same statements as the engine's bounded and unique-key paths (``bounds.rs``,
# ``claim.rs``), in the driver's placeholder style.
_LOCK_PENDING = (
    "SELECT pg_advisory_xact_lock(hashtext('taskito-pending:' || current_schema()), hashtext(%(q)s))"
)
_COUNT_PENDING = (
    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status IN (0, 6) AND queue = %(q)s LIMIT %(n)s) AS p"
)
# The caller's search_path, read before it is replaced for this transaction (the CTE is
# read first), so the statements above name the queue's tables unqualified.
_SWAP_SEARCH_PATH = (
    "WITH old AS MATERIALIZED (SELECT current_setting('search_path') AS v) "
    "SELECT v, set_config('search_path', %(p)s, true) FROM old"
)
_UNIQUE_HOLDER = (
    "SELECT id FROM jobs WHERE unique_key = %(k)s AND unique_key > '' AND status IN (0, 1, 6)"
)


# SQLite: the row ``insert_job`` (``rust/storage/sqlite.rs``) writes, with the seq taken
# under the write lock the INSERT itself holds.
_SQLITE_INSERT = (
    "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, "
    "scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key, metadata, result_ttl_ms) "
    "SELECT n.seq, ? || printf('%012x', n.seq), ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "FROM (SELECT coalesce(max(seq), 0) + 1 AS seq FROM jobs) AS n WHERE true "
    "ON CONFLICT (unique_key) WHERE unique_key > '' AND status IN (0, 1, 6) DO NOTHING "
    "RETURNING id"
)
_SQLITE_NOTE_QUEUE = "INSERT OR IGNORE INTO queues (name) VALUES (?)"
_SQLITE_UNIQUE_HOLDER = (
    "SELECT id FROM jobs WHERE unique_key = ? AND unique_key > '' AND status IN (0, 1, 6)"
)
_SQLITE_COUNT_PENDING = (
    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status IN (0, 6) AND queue = ? LIMIT ?)"
)


def _named(sql: str) -> str:
    """``$n`` placeholders as ``%(pn)s`` (every driver here takes the pyformat style)."""
    return _PLACEHOLDER.sub(lambda m: f"%(p{m.group(1)})s", sql)


class _Driver:
    """Runs statements on the application's connection, in its current transaction."""

    def __init__(self, run: Any, transaction: Any = None) -> None:
        self._run = run
        # For a connection in autocommit mode: the enqueue is its own transaction.
        self.transaction = transaction or nullcontext

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return [tuple(r) for r in self._run(sql, params or {})]


def _driver(conn: Any) -> _Driver:
    module = type(conn).__module__
    name = type(conn).__name__
    if module.startswith("psycopg") and hasattr(conn, "cursor") and hasattr(conn, "autocommit"):
        if name.startswith("Async"):
            raise TypeError(f"an async connection needs the async call; got {name}")

        def run_psycopg(sql: str, params: dict[str, Any]) -> list:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

        return _Driver(run_psycopg, conn.transaction if conn.autocommit else None)
    if module.startswith("sqlalchemy"):
        if name == "Session" or hasattr(conn, "get_bind"):
            target = conn.connection()
        elif hasattr(conn, "exec_driver_sql"):
            target = conn
        else:
            raise TypeError(f"connection must be {KINDS}; got {module}.{name}")

        def run_sqlalchemy(sql: str, params: dict[str, Any]) -> list:
            result = target.exec_driver_sql(sql, params)
            return result.fetchall() if result.returns_rows else []

        return _Driver(run_sqlalchemy)
    if module.startswith("django") and hasattr(conn, "vendor"):
        if conn.vendor != "postgresql":
            raise TypeError(f"a Django connection to {conn.vendor} cannot reach a PostgreSQL queue")

        def run_django(sql: str, params: dict[str, Any]) -> list:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []

        def atomic() -> Any:
            # Outside `transaction.atomic()` Django autocommits: the enqueue is its own.
            from django.db import transaction

            return nullcontext() if conn.in_atomic_block else transaction.atomic(using=conn.alias)

        return _Driver(run_django, atomic)
    raise TypeError(f"connection must be {KINDS}; got {module}.{name}")


def _database_of(url: str) -> str:
    """The database a ``postgresql://`` URL names (its user's name when none is given)."""
    rest = url.split("://", 1)[1]
    at = rest.rfind("@")
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    path = hostpart.split("?", 1)[0]
    db = path.split("/", 1)[1] if "/" in path else ""
    return db or userinfo.split(":", 1)[0]


class _SqliteBinding:
    """A ``sqlite3.Connection`` opened on the queue's own file."""

    def __init__(self, queue: Any, conn: Any) -> None:
        if not isinstance(conn, sqlite3.Connection):
            raise TypeError(
                "connection must be a sqlite3.Connection opened on the queue's file for a "
                f"SQLite queue; got {type(conn).__module__}.{type(conn).__name__}"
            )
        rows = conn.execute("PRAGMA database_list").fetchall()
        path = next((r[2] for r in rows if r[1] == "main"), "")
        want = queue._store_settings.db_path
        same = bool(path) and os.path.exists(want) and os.path.samefile(path, want)
        if not same:
            raise ValueError(f"the connection is to database file {path!r}; the queue's is {want!r}")
        self.queue = queue
        self.conn = conn

    def enqueue(
        self, task_name: str, payloads: list[bytes], max_pending: int | None, opts: dict
    ) -> list[str]:
        plan = QueueCore.enqueue_plan("main", task_name, payloads, **opts)
        params = plan["params"]
        queues, names, blobs, prios, delays, retries, backoffs, timeouts = params[:8]
        keys, metas, prefixes, _, ttls = params[8:]
        now = int(time.time() * 1000)
        conn = self.conn
        # In autocommit mode the enqueue is a transaction of its own; otherwise it joins the
        # caller's (begun here if none is open). A savepoint lets a
        # refusal take back these rows and leave the caller's transaction as it was.
        own = conn.isolation_level is None and not conn.in_transaction
        if not conn.in_transaction:
            # IMMEDIATE: wait for the write lock now; a deferred transaction that read first
            # could not wait for it later (SQLite answers "database is locked" at once).
            conn.execute("BEGIN IMMEDIATE")
        conn.execute("SAVEPOINT taskito_enqueue")
        try:
            ids: list[str] = []
            for i in range(len(blobs)):
                row = conn.execute(
                    _SQLITE_INSERT,
                    (prefixes[i], queues[i], names[i], blobs[i], prios[i], now, now + delays[i], retries[i],
                     backoffs[i], timeouts[i], keys[i], metas[i], ttls[i]),
                ).fetchone()  # fmt: skip
                if row is None:
                    row = conn.execute(_SQLITE_UNIQUE_HOLDER, (keys[i] or "",)).fetchone()
                ids.append(row[0])
            for q in sorted(set(queues)):
                conn.execute(_SQLITE_NOTE_QUEUE, (q,))
            if max_pending is not None:
                for q in sorted(set(queues)):
                    (n,) = conn.execute(_SQLITE_COUNT_PENDING, (q, max_pending + 1)).fetchone()
                    if n > max_pending:
                        raise QueueFullError(f"queue {q!r} is full: max_pending is {max_pending}")
        except BaseException:
            conn.execute("ROLLBACK TO SAVEPOINT taskito_enqueue")
            conn.execute("RELEASE SAVEPOINT taskito_enqueue")
            if own:
                conn.execute("ROLLBACK")
            raise
        conn.execute("RELEASE SAVEPOINT taskito_enqueue")
        if own:
            conn.execute("COMMIT")
        return ids


class _Binding:
    def __new__(cls, queue: Any, conn: Any) -> Any:
        if queue._store_settings.db_url is None:
            return _SqliteBinding(queue, conn)
        return super().__new__(cls)

    def __init__(self, queue: Any, conn: Any) -> None:
        store = queue._store_settings
        self.queue = queue
        self.conn = conn
        self.schema = store.schema
        self.notify = store.notify
        self.database = _database_of(store.db_url)
        self.driver = _driver(conn)
        try:
            self.checked = _checked.get(conn) == (self.database, self.schema)
        except TypeError:  # not weakly referenceable: checked on first use instead
            self.checked = False

    def _check_target(self) -> None:
        ((database, jobs),) = self.driver.rows(
            "SELECT current_database(), to_regclass(%(t)s)::text", {"t": f'"{self.schema}".jobs'}
        )
        if database != self.database or jobs is None:
            raise ValueError(
                f"the connection is to database {database!r} (schema {self.schema!r} "
                f"{'absent' if jobs is None else 'present'}); the queue's is database "
                f"{self.database!r}, schema {self.schema!r}"
            )
        self.checked = True
        with contextlib.suppress(TypeError):
            _checked[self.conn] = (self.database, self.schema)

    def enqueue(
        self, task_name: str, payloads: list[bytes], max_pending: int | None, opts: dict
    ) -> list[str]:
        if not self.checked:
            self._check_target()
        plan = QueueCore.enqueue_plan(self.schema, task_name, payloads, **opts)
        values = list(plan["params"])
        if self.notify:
            values[11] = plan["channel"]
        params = {f"p{i + 1}": v for i, v in enumerate(values)}
        run = self.driver.rows
        queue = opts["queue"]
        bounded = max_pending is not None
        with self.driver.transaction():
            if bounded:
                # A savepoint: a refusal (QueueFullError) takes back these rows and the
                # search_path below, and leaves the caller's transaction usable.
                run("SAVEPOINT taskito_enqueue")
            ((saved, _),) = run(_SWAP_SEARCH_PATH, {"p": f'"{self.schema}", public'})
            if bounded:
                run(_LOCK_PENDING, {"q": queue})
            rows = run(_named(plan["sql"]), params)
            ids: list[str] = []
            keys = opts.get("unique_keys") or [opts.get("unique_key")] * len(payloads)
            for (job_id, inserted, _), key in zip(rows, keys):
                if not inserted:
                    holder = run(_UNIQUE_HOLDER, {"k": key or ""})
                    job_id = holder[0][0] if holder else job_id
                ids.append(job_id)
            if bounded:
                ((n,),) = run(_COUNT_PENDING, {"q": queue, "n": max_pending + 1})
                if n > max_pending:
                    run("ROLLBACK TO SAVEPOINT taskito_enqueue")
                    run("RELEASE SAVEPOINT taskito_enqueue")
                    raise QueueFullError(f"queue {queue!r} is full: max_pending is {max_pending}")
            # The caller's next statements see its own search_path again.
            run("SELECT set_config('search_path', %(p)s, true)", {"p": saved})
            if bounded:
                run("RELEASE SAVEPOINT taskito_enqueue")
        return ids


def store(
    owner: Any, task_name: str, payloads: list[bytes], /, max_pending: int | None = None, **opts: Any
) -> list[str]:
    """Stores jobs of the queue ``owner`` through the connection bound to it in this
    context, or the engine's own connection when there is none."""
    binding = _bound.get()
    if binding is None or binding.queue is not owner:
        return owner._inner.enqueue(task_name, payloads, max_pending=max_pending, **opts)
    return binding.enqueue(task_name, payloads, max_pending, opts)


def refuse_linked(queue: Any) -> None:
    """Linked enqueues (dependencies, notes, expiry, canvas) are not written through the
    application's connection: refuse them there rather than commit them on our own."""
    binding = _bound.get()
    if binding is not None and binding.queue is queue:
        raise ValueError(
            "depends_on, notes, expires and canvas workflows cannot be enqueued through the "
            "application's connection; enqueue them outside queue.using(...)"
        )


class Using:
    """The block of ``queue.using(conn)``; a plain and an async context manager."""

    def __init__(self, queue: Any, conn: Any) -> None:
        self._binding = _Binding(queue, conn)
        self._tokens: list[contextvars.Token] = []

    def __enter__(self) -> Using:
        self._tokens.append(_bound.set(self._binding))
        return self

    def __exit__(self, *exc: object) -> None:
        _bound.reset(self._tokens.pop())

    async def __aenter__(self) -> Using:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class TransactionalEnqueue:
    """``Queue.using(conn)``: enqueues in the block go through the application's
    connection, inside its transaction."""

    def using(self, conn: Any) -> Any:
        """``with queue.using(conn): ...``: every enqueue of this queue in the block
        (``delay``, ``apply_async``, ``enqueue``, ``enqueue_many``, ``map``) is written
        through ``conn`` in its current transaction, and exists only once that commits."""
        return Using(self, conn)

"""The PostgreSQL side of the tests: the server named by ``TASKITO_TEST_PG_URL`` (started
by ``tests/pg_server.sh``), a fresh database per test, and server control for the restart
tests. Uses ``psql``, which ships with the server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator


def server_url() -> str | None:
    return os.environ.get("TASKITO_TEST_PG_URL") or None


def psql(sql: str, url: str | None = None, timeout: float = 30) -> str:
    """Runs SQL as the server's superuser; returns its unaligned output."""
    target = url or server_url()
    assert target is not None
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", target, "-c", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def database_url(name: str) -> str:
    base = server_url()
    assert base is not None
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; dropped afterwards (closing whatever still connects)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    psql(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        with contextlib.suppress(Exception):
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_ctl(action: str) -> None:
    """``pg_ctl ACTION`` on the test server (restart, stop, start)."""
    folder = os.environ["TASKITO_TEST_PG_DIR"]
    log = os.path.join(folder, "server.log")
    cmd = [
        os.environ["TASKITO_TEST_PG_CTL"],
        "-D",
        os.path.join(folder, "data"),
        "-l",
        log,
        "-w",
        "-t",
        "60",
        "-m",
        "fast",
        action,
    ]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    # The server inherits pg_ctl's output: never a pipe, or reading it would wait forever.
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)


def can_control_server() -> bool:
    return bool(os.environ.get("TASKITO_TEST_PG_DIR") and os.environ.get("TASKITO_TEST_PG_CTL"))

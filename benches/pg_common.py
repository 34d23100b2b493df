"""What the PostgreSQL benchmarks share: the workload sizes, fresh databases and the
latency summary. Standard library only: the drivers of other queues (pg_procrastinate.py,
pg_pgqueuer.py) import it from their own venvs."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

SIZES = {
    "full": {"enqueue": 3000, "batch": 20000, "drain": 20000, "rt": 200},
    "quick": {"enqueue": 300, "batch": 2000, "drain": 2000, "rt": 20},
}


def sizes(quick: bool) -> dict[str, int]:
    return SIZES["quick" if quick else "full"]


def psql(url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True, capture_output=True
    )


class Database:
    """``with Database(server_url) as url:`` a database of its own on the server, dropped
    (with any connection left to it) on exit."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.url = server.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self) -> str:
        psql(self.server, f"CREATE DATABASE {self.name}")
        return self.url

    def __exit__(self, *exc: object) -> None:
        psql(self.server, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def p50_p99_ms(seconds: list[float]) -> tuple[float, float]:
    times = sorted(seconds)
    return statistics.median(times) * 1000, times[max(0, int(len(times) * 0.99) - 1)] * 1000


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Asks worker processes to stop (SIGTERM) and waits for them."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(60)


def driver_args(prog: str, doc: str | None) -> tuple[str, dict[str, int]]:
    """The server URL and workload sizes a driver of another queue is run with."""
    ap = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", default=os.environ.get("TASKITO_TEST_PG_URL"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not args.url:
        sys.exit(f"{prog}: give --url or set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
    return args.url, sizes(args.quick)

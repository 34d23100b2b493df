"""pgqueuer on the same server as benches/pg_bench.py, through its public API only (run it
with a venv that has `pgqueuer` and `asyncpg`; `python benches/pg_bench.py --setup` makes
one under benches/.venvs/pgqueuer). The workloads mirror pg_bench.py's, each on a fresh
database:

- enqueue one job per call; `enqueue` with lists of 1,000 jobs per call;
- drain: worker processes (`QueueManager.run()`, default batch size 10) started first and
  warmed up, then N no-op jobs enqueued in one call; the clock runs from that call's return
  to an empty queue (finished jobs leave the jobs table when the worker logs them);
- round trip: one job at a time, enqueued, then awaited with `CompletionWatcher`.

    python benches/pg_pgqueuer.py --url URL [--quick]

Prints one JSON object on its last line (pg_bench.py reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import asyncpg
from pg_common import Database, driver_args, p50_p99_ms, stop
from pgqueuer import Queries
from pgqueuer.core.completion import CompletionWatcher

WORKER = textwrap.dedent(
    """
    import asyncio, os
    import asyncpg
    from pgqueuer import Queries, QueueManager

    async def main():
        conn = await asyncpg.connect(os.environ["BENCH_DB"])
        qm = QueueManager(Queries.from_asyncpg_connection(conn))

        @qm.entrypoint("noop")
        async def noop(job):
            return None

        await qm.run()

    asyncio.run(main())
    """
)


async def fresh(server: str, stack: contextlib.ExitStack) -> str:
    """A fresh database with pgqueuer's schema, dropped when `stack` closes."""
    url = stack.enter_context(Database(server))
    conn = await asyncpg.connect(url)
    try:
        await Queries.from_asyncpg_connection(conn).install()
    finally:
        await conn.close()
    return url


async def queued(queries: Queries) -> int:
    return sum(s.count for s in await queries.queue_size())


async def wait_empty(queries: Queries, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while await queued(queries):
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for pgqueuer's workers to drain the queue")
        await asyncio.sleep(0.02)


def start_workers(url: str, n: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, "-c", WORKER], env={**os.environ, "BENCH_DB": url})
        for _ in range(n)
    ]


async def bench_enqueue(server: str, n: int) -> float:
    with contextlib.ExitStack() as stack:
        url = await fresh(server, stack)
        conn = await asyncpg.connect(url)
        q = Queries.from_asyncpg_connection(conn)
        await q.enqueue("noop", None)
        start = time.perf_counter()
        for _ in range(n):
            await q.enqueue("noop", None)
        rate = n / (time.perf_counter() - start)
        await conn.close()
        return rate


async def bench_batch(server: str, n: int) -> float:
    with contextlib.ExitStack() as stack:
        url = await fresh(server, stack)
        conn = await asyncpg.connect(url)
        q = Queries.from_asyncpg_connection(conn)
        start = time.perf_counter()
        for chunk in range(0, n, 1000):
            size = min(1000, n - chunk)
            await q.enqueue(["noop"] * size, [None] * size, [0] * size)
        rate = n / (time.perf_counter() - start)
        await conn.close()
        return rate


async def bench_drain(server: str, n: int, procs: int) -> float:
    with contextlib.ExitStack() as stack:
        url = await fresh(server, stack)
        conn = await asyncpg.connect(url)
        q = Queries.from_asyncpg_connection(conn)
        ps = start_workers(url, procs)
        try:
            # Warm up: a job per process has run and every worker has had time to listen.
            await q.enqueue(["noop"] * procs, [None] * procs, [0] * procs)
            await wait_empty(q, 60)
            await asyncio.sleep(1.0)
            await q.enqueue(["noop"] * n, [None] * n, [0] * n)
            start = time.perf_counter()
            await wait_empty(q)
            return n / (time.perf_counter() - start)
        finally:
            stop(ps)
            await conn.close()


async def bench_round_trip(server: str, n: int) -> tuple[float, float]:
    with contextlib.ExitStack() as stack:
        url = await fresh(server, stack)
        conn = await asyncpg.connect(url)
        q = Queries.from_asyncpg_connection(conn)
        ps = start_workers(url, 1)
        try:
            await q.enqueue("noop", None)
            await wait_empty(q, 60)
            await asyncio.sleep(1.0)
            times = []
            async with CompletionWatcher(q.driver, queries=q, debounce=timedelta(milliseconds=1)) as watcher:
                for _ in range(n):
                    start = time.perf_counter()
                    (job_id,) = await q.enqueue("noop", None)
                    status = await asyncio.wait_for(watcher.wait_for(job_id), 30)
                    assert status == "successful", status
                    times.append(time.perf_counter() - start)
            return p50_p99_ms(times)
        finally:
            stop(ps)
            await conn.close()


async def main() -> None:
    url, n = driver_args("pg_pgqueuer.py", __doc__)
    out: dict[str, object] = {
        "enqueue": await bench_enqueue(url, n["enqueue"]),
        "batch": await bench_batch(url, n["batch"]),
    }
    for procs in (1, 2, 4):
        out[f"drain{procs}"] = await bench_drain(url, n["drain"], procs)
    out["rt"] = await bench_round_trip(url, n["rt"])
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

"""taskito on PostgreSQL: enqueue one by one, batch enqueue, no-op drain with 1, 2 and 4
worker processes, and the round trip to a worker in another process. Each workload runs on
a fresh database of the server named by --url (default: TASKITO_TEST_PG_URL, as started by
tests/pg_server.sh) and prints one markdown table.

    python benches/pg_bench.py [--url URL] [--quick] [--python PATH]

--python picks the interpreter that runs the workers (a venv with a release build of
taskito); figures from a debug build are not worth comparing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

APP = textwrap.dedent(
    """
    import os
    from taskito import Queue

    queue = Queue(db_path=os.environ["BENCH_DB"], workers=int(os.environ.get("BENCH_THREADS", "4")),
                  scheduler_poll_interval_ms=50)

    @queue.task(name="noop")
    def noop(i=0):
        return None

    @queue.task(name="echo")
    def echo(i):
        return i
    """
)


def psql(url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True, capture_output=True
    )


class Database:
    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.url = server.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self) -> str:
        psql(self.server, f"CREATE DATABASE {self.name}")
        return self.url

    def __exit__(self, *exc: object) -> None:
        psql(self.server, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def workers(python: str, folder: str, url: str, n: int, threads: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "BENCH_DB": url, "BENCH_THREADS": str(threads), "PYTHONPATH": folder}
    return [
        subprocess.Popen([python, "-c", "import benchapp; benchapp.queue.run_worker()"], env=env)
        for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(60)


def wait_registered(q, n: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while sum(1 for w in q.workers() if w["status"] == "active") < n:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.05)
    time.sleep(1.0)  # let them go idle and listen


def bench_enqueue(server: str, n: int) -> float:
    from taskito import Queue

    with Database(server) as url, Queue(db_url=url) as q:
        q.enqueue("noop")
        start = time.perf_counter()
        for i in range(n):
            q.enqueue("noop", args=(i,))
        return n / (time.perf_counter() - start)


def bench_batch(server: str, n: int) -> float:
    from taskito import Queue

    with Database(server) as url, Queue(db_url=url) as q:
        q.enqueue("noop")
        start = time.perf_counter()
        for chunk in range(0, n, 1000):
            q.enqueue_many("noop", [(i,) for i in range(chunk, min(n, chunk + 1000))])
        return n / (time.perf_counter() - start)


def bench_drain(server: str, python: str, folder: str, n: int, procs: int, threads: int) -> float:
    from taskito import Queue

    with Database(server) as url, Queue(db_url=url) as q:
        ps = workers(python, folder, url, procs, threads)
        try:
            wait_registered(q, procs)
            for chunk in range(0, n, 5000):
                q.enqueue_many("noop", [(i,) for i in range(chunk, min(n, chunk + 5000))])
            start = time.perf_counter()
            while q.stats()["completed"] < n:
                time.sleep(0.02)
            return n / (time.perf_counter() - start)
        finally:
            stop(ps)


def bench_round_trip(server: str, python: str, folder: str, n: int) -> tuple[float, float]:
    from taskito import Queue

    with Database(server) as url, Queue(db_url=url) as q:
        ps = workers(python, folder, url, 1, 4)
        try:
            wait_registered(q, 1)
            times = []
            for i in range(n):
                start = time.perf_counter()
                assert q.enqueue("echo", args=(i,)).result(timeout=30, poll_interval=0.001) == i
                times.append(time.perf_counter() - start)
            times.sort()
            return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000
        finally:
            stop(ps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("TASKITO_TEST_PG_URL"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    if not args.url:
        sys.exit("pg_bench: give --url or set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
    sizes = (
        {"enqueue": 300, "batch": 2000, "drain": 2000, "rt": 20}
        if args.quick
        else {"enqueue": 3000, "batch": 20000, "drain": 20000, "rt": 200}
    )
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "benchapp.py"), "w") as f:
            f.write(APP)
        rows = [
            ("enqueue, one call per job", f"{bench_enqueue(args.url, sizes['enqueue']):,.0f} jobs/s"),
            ("enqueue_many, 1,000 per call", f"{bench_batch(args.url, sizes['batch']):,.0f} jobs/s"),
        ]
        for procs in (1, 2, 4):
            rate = bench_drain(args.url, args.python, folder, sizes["drain"], procs, 4)
            rows.append(
                (f"no-op drain of {sizes['drain']:,}, {procs} process(es) x 4 threads", f"{rate:,.0f} jobs/s")
            )
        p50, p99 = bench_round_trip(args.url, args.python, folder, sizes["rt"])
        rows.append(("round trip to a worker process (p50 / p99)", f"{p50:.1f} / {p99:.1f} ms"))
    print("| workload | taskito on PostgreSQL |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()

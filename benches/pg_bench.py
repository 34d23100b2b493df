"""taskito on PostgreSQL beside procrastinate and pgqueuer, on the same server: enqueue one
by one, batch enqueue, a no-op drain by 1, 2 and 4 worker processes, and the round trip to a
worker in another process. Each workload runs on a fresh database of the server named by
--url (default: TASKITO_TEST_PG_URL, as started by tests/pg_server.sh); one markdown table.

    python benches/pg_bench.py --setup          # venvs for the other queues, once
    python benches/pg_bench.py [--url URL] [--quick] [--python PATH] [--only taskito]

The other queues run from their own venvs under benches/.venvs/ (pg_procrastinate.py,
pg_pgqueuer.py); a queue whose venv is missing is left out. --python picks the interpreter
that runs taskito's workers (a venv with a release build); figures from a debug build are not
worth comparing.

Drain, for every queue: worker processes started first and warmed up (one job each has run,
then a second of rest), then N no-op jobs enqueued in one call (one transaction); the clock
runs from that call's return to the last completion.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pg_common import Database, p50_p99_ms, sizes, stop, wait_until

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
# The other queues and what their venvs need (the versions the figures were taken with).
OTHERS = {
    "procrastinate": ["procrastinate==3.10.0", "psycopg[binary]"],
    "pgqueuer": ["pgqueuer==1.6.0", "asyncpg"],
}

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


def workers(python: str, folder: str, url: str, n: int, threads: int) -> list[subprocess.Popen[bytes]]:
    path = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BENCH_DB": url, "BENCH_THREADS": str(threads), "PYTHONPATH": path}
    return [
        subprocess.Popen([python, "-c", "import benchapp; benchapp.queue.run_worker()"], env=env)
        for _ in range(n)
    ]


def warm_up(q, n: int) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: sum(1 for w in q.workers() if w["status"] == "active") >= n, 60, "workers")
    q.enqueue_many("noop", [(i,) for i in range(n)])
    wait_until(lambda: q.stats()["completed"] >= n, 60, "the warm-up jobs")
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
            warm_up(q, procs)
            q.enqueue_many("noop", [(i,) for i in range(n)])
            start = time.perf_counter()
            wait_until(lambda: q.stats()["completed"] >= n + procs, 600, "the drain")
            return n / (time.perf_counter() - start)
        finally:
            stop(ps)


def bench_round_trip(server: str, python: str, folder: str, n: int) -> tuple[float, float]:
    from taskito import Queue

    with Database(server) as url, Queue(db_url=url) as q:
        ps = workers(python, folder, url, 1, 4)
        try:
            warm_up(q, 1)
            times = []
            for i in range(n):
                start = time.perf_counter()
                assert q.enqueue("echo", args=(i,)).result(timeout=30, poll_interval=0.001) == i
                times.append(time.perf_counter() - start)
            return p50_p99_ms(times)
        finally:
            stop(ps)


def taskito(url: str, python: str, quick: bool) -> dict[str, object]:
    n = sizes(quick)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "benchapp.py"), "w") as f:
            f.write(APP)
        out: dict[str, object] = {
            "enqueue": bench_enqueue(url, n["enqueue"]),
            "batch": bench_batch(url, n["batch"]),
        }
        for procs in (1, 2, 4):
            out[f"drain{procs}"] = bench_drain(url, python, folder, n["drain"], procs, 4)
        out["rt"] = bench_round_trip(url, python, folder, n["rt"])
    return out


def other(name: str, url: str, quick: bool) -> dict[str, object] | None:
    """Runs benches/pg_<name>.py in its venv; None when the venv is missing."""
    python = VENVS / name / "bin" / "python"
    if not python.exists():
        print(f"pg_bench: {name} left out (no {python}; run with --setup)", file=sys.stderr)
        return None
    cmd = [str(python), str(HERE / f"pg_{name}.py"), "--url", url] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def setup() -> None:
    for name, packages in OTHERS.items():
        venv = VENVS / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
        print(f"{venv}: {' '.join(packages)}")


def table(results: dict[str, dict[str, object]], n: dict[str, int]) -> str:
    def rate(v: object) -> str:
        return f"{v:,.0f} jobs/s" if isinstance(v, (int, float)) else "n/a"

    def latency(v: object) -> str:
        return f"{v[0]:.1f} / {v[1]:.1f} ms" if isinstance(v, (list, tuple)) else "n/a"

    rows = [
        ("enqueue, one call per job", "enqueue", rate),
        ("enqueue in batches of 1,000", "batch", rate),
        *[(f"no-op drain of {n['drain']:,}, {p} process(es)", f"drain{p}", rate) for p in (1, 2, 4)],
        ("round trip to a worker process (p50 / p99)", "rt", latency),
    ]
    names = list(results)
    lines = ["| workload | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(results[q].get(key)) for q in names) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("TASKITO_TEST_PG_URL"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--only", choices=["taskito", *OTHERS], action="append")
    ap.add_argument("--setup", action="store_true", help="make the venvs of the other queues")
    args = ap.parse_args()
    if args.setup:
        setup()
        return
    if not args.url:
        sys.exit("pg_bench: give --url or set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
    wanted = args.only or ["taskito", *OTHERS]
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, object]] = {}
    if "taskito" in wanted:
        results["taskito"] = taskito(args.url, args.python, args.quick)
    for name in OTHERS:
        if name in wanted and (found := other(name, args.url, args.quick)) is not None:
            results[name] = found
    print(f"1-minute load average: {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(table(results, sizes(args.quick)))


if __name__ == "__main__":
    main()

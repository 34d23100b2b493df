"""procrastinate on the same server as benches/pg_bench.py, through its public API only (run
it with a venv that has `procrastinate` and `psycopg[binary]`; `python benches/pg_bench.py
--setup` makes one under benches/.venvs/procrastinate). The workloads mirror pg_bench.py's,
each on a fresh database:

- `defer` one job per call; `batch_defer` of 1,000 jobs per call;
- drain: `procrastinate worker --concurrency=4` processes started first and warmed up, then
  N no-op jobs deferred in one `batch_defer` call; the clock runs from its return until
  every job has succeeded;
- round trip: one job at a time, deferred, then its status polled every millisecond.

    python benches/pg_procrastinate.py --url URL [--quick]

Prints one JSON object on its last line (pg_bench.py reads it).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

from pg_common import Database, driver_args, p50_p99_ms, stop, wait_until

APP = """\
import os
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_DB"]))


@app.task(name="noop")
def noop(i=0):
    return None
"""
FOLDER = tempfile.mkdtemp()
with open(os.path.join(FOLDER, "papp.py"), "w") as f:
    f.write(APP)
sys.path.insert(0, FOLDER)


def app_for(url: str):  # type: ignore[no-untyped-def]
    """The app module bound to `url`, its schema applied."""
    os.environ["BENCH_DB"] = url
    import papp

    papp = importlib.reload(papp)
    with papp.app.open():
        papp.app.schema_manager.apply_schema()
    return papp


def start_workers(url: str, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "BENCH_DB": url, "PYTHONPATH": FOLDER}
    cmd = [sys.executable, "-m", "procrastinate", "--app=papp.app", "worker", "--concurrency=4"]
    return [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)
    ]


def succeeded(papp) -> int:  # type: ignore[no-untyped-def]
    return sum(q["succeeded"] for q in papp.app.job_manager.list_queues())


def bench_enqueue(server: str, n: int) -> float:
    with Database(server) as url:
        papp = app_for(url)
        with papp.app.open():
            papp.noop.defer(i=0)
            start = time.perf_counter()
            for i in range(n):
                papp.noop.defer(i=i)
            return n / (time.perf_counter() - start)


def bench_batch(server: str, n: int) -> float:
    with Database(server) as url:
        papp = app_for(url)
        with papp.app.open():
            start = time.perf_counter()
            for chunk in range(0, n, 1000):
                papp.noop.batch_defer(*[{"i": i} for i in range(chunk, min(n, chunk + 1000))])
            return n / (time.perf_counter() - start)


def warm_up(papp, n: int) -> None:  # type: ignore[no-untyped-def]
    papp.noop.batch_defer(*[{"i": i} for i in range(n)])
    wait_until(lambda: succeeded(papp) >= n, 60, "the warm-up jobs")
    time.sleep(1.0)


def bench_drain(server: str, n: int, procs: int) -> float:
    with Database(server) as url:
        papp = app_for(url)
        ps = start_workers(url, procs)
        try:
            with papp.app.open():
                warm_up(papp, procs)
                papp.noop.batch_defer(*[{"i": i} for i in range(n)])
                start = time.perf_counter()
                wait_until(lambda: succeeded(papp) >= n + procs, 600, "the drain")
                return n / (time.perf_counter() - start)
        finally:
            stop(ps)


def bench_round_trip(server: str, n: int) -> tuple[float, float]:
    with Database(server) as url:
        papp = app_for(url)
        ps = start_workers(url, 1)
        try:
            with papp.app.open():
                warm_up(papp, 1)
                times = []
                for i in range(n):
                    start = time.perf_counter()
                    job_id = papp.noop.defer(i=i)
                    deadline = start + 30
                    while papp.app.job_manager.get_job_status(job_id).value != "succeeded":
                        if time.perf_counter() > deadline:
                            raise RuntimeError("a round trip took over 30 s")
                        time.sleep(0.001)
                    times.append(time.perf_counter() - start)
                return p50_p99_ms(times)
        finally:
            stop(ps)


def main() -> None:
    url, n = driver_args("pg_procrastinate.py", __doc__)
    out: dict[str, object] = {
        "enqueue": bench_enqueue(url, n["enqueue"]),
        "batch": bench_batch(url, n["batch"]),
    }
    for procs in (1, 2, 4):
        out[f"drain{procs}"] = bench_drain(url, n["drain"], procs)
    out["rt"] = bench_round_trip(url, n["rt"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

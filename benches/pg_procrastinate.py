"""procrastinate on the same server as benches/pg_bench.py (run it with a venv that has
`procrastinate` and `psycopg[binary]`; needs TASKITO_TEST_PG_URL): enqueue one by one,
batch_defer, and a drain of N pre-enqueued no-op jobs by P worker processes (concurrency 4,
--one-shot: each exits when the queue is empty), timed from the workers' start (so it
includes their start-up)."""

import os
import subprocess
import sys
import tempfile
import time
import uuid

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
server = os.environ["TASKITO_TEST_PG_URL"]


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-d", url, "-c", sql], check=True, capture_output=True)


def fresh():
    name = f"pr_{uuid.uuid4().hex[:10]}"
    psql(server, f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def app_for(url):
    os.environ["BENCH_DB"] = url
    sys.path.insert(0, FOLDER)
    import importlib

    import papp

    importlib.reload(papp)
    return papp


out = {}
url = fresh()
papp = app_for(url)
with papp.app.open():
    papp.app.schema_manager.apply_schema()
    n = 1000
    t = time.perf_counter()
    for i in range(n):
        papp.noop.defer(i=i)
    out["enqueue"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for c in range(0, 20000, 1000):
        papp.noop.batch_defer(*[{"i": i} for i in range(c, c + 1000)])
    out["batch"] = 20000 / (time.perf_counter() - t)
for procs in (1, 2, 4):
    url = fresh()
    papp = app_for(url)
    N = 5000
    with papp.app.open():
        papp.app.schema_manager.apply_schema()
        for c in range(0, N, 1000):
            papp.noop.batch_defer(*[{"i": i} for i in range(c, c + 1000)])
    env = {**os.environ, "BENCH_DB": url, "PYTHONPATH": FOLDER}
    t = time.perf_counter()
    ps = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "procrastinate",
                "--app=papp.app",
                "worker",
                "--concurrency=4",
                "--one-shot",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(procs)
    ]
    for p in ps:
        p.wait(600)
    out[f"drain{procs}"] = N / (time.perf_counter() - t)
    out[f"status{procs}"] = subprocess.run(
        [
            "psql",
            "-X",
            "-A",
            "-t",
            "-d",
            url,
            "-c",
            "select status, count(*) from procrastinate_jobs group by 1",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
print(out)

"""Costs of periodic schedules, deduplication and flow control (a small script beside the
main suite; run it against a release build).

python benches/features.py drain [--jobs N] [--repeat R]   drain jobs/s, plain vs features in use
python benches/features.py periodic [--fires N]             fire lateness, two worker processes

drain: N no-op jobs queued, then one worker with 4 threads runs until the queue is empty; the
clock runs from the worker's start. Variants, each on a fresh database:
  plain      nothing of these features anywhere
  limits     enqueued under a max_pending cap, while another task of the queue has a rate
             limit and a periodic schedule is stored (so every claim takes the limited path)
  dedup      the drained task is idempotent: every job carries a derived unique key
  capped     the drained task itself has max_concurrent=4 (= threads: never throttled, but
             every claim counts its running jobs, and no job is claimed ahead of the cap)

periodic: two worker processes serve a */1 schedule; lateness = started_at - due time of
each fire, and the count of due times fired more than once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

DRAIN = r"""
import json, sys, time
from taskito import Queue

variant, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
kw = {"max_pending": {"default": 10 * n}} if variant == "limits" else {}
queue = Queue(db_path=path, workers=4, **kw)

@queue.task(max_concurrent=4 if variant == "capped" else None, idempotent=variant == "dedup")
def noop(i):
    return None

if variant == "limits":
    @queue.task(rate_limit="1/h")
    def limited():
        return None

    @queue.periodic("0 0 0 1 1 *")
    def yearly():
        return None

for start in range(0, n, 10_000):
    queue.enqueue_many(noop.name, [(i,) for i in range(start, min(n, start + 10_000))])
if variant == "limits":
    limited.delay()
t0 = time.perf_counter()
done = queue.run_worker(run_once=True)
took = time.perf_counter() - t0
print(json.dumps({"variant": variant, "jobs": done, "seconds": took, "jobs_per_s": n / took}))
"""

PERIODIC_APP = """
from taskito import Queue
queue = Queue(db_path={db!r})

@queue.periodic("*/1 * * * * *", name="tick")
def tick():
    return None
"""


def _env(extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH")]))
    return env


def drain(jobs: int, repeat: int) -> None:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for variant in ("plain", "limits", "dedup", "capped"):
                path = str(Path(tmp) / f"{variant}-{r}.db")
                out = subprocess.run(
                    [sys.executable, "-c", DRAIN, variant, path, str(jobs)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                assert row["jobs"] >= jobs, row
                results.setdefault(variant, []).append(row["jobs_per_s"])
                print(json.dumps(row), flush=True)
    for variant, rates in results.items():
        print(f"{variant:9s} median {statistics.median(rates):8.0f} jobs/s  runs {[round(x) for x in rates]}")


def periodic(fires: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "q.db")
        Path(tmp, "clockapp.py").write_text(textwrap.dedent(PERIODIC_APP.format(db=db)))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "taskito", "worker", "--app", "clockapp:queue", "--workers", "2"],
                cwd=tmp,
                env=_env(tmp),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            time.sleep(fires + 2.5)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.communicate(timeout=60)
        sys.path.insert(0, tmp)
        from taskito import Queue

        queue = Queue(db_path=db)
        rows = [j.to_dict() for j in queue.list_jobs(task_name="clockapp.tick", limit=100_000)]
    dues = [json.loads(r["metadata"])["due"] for r in rows]
    late = sorted(r["started_at"] - json.loads(r["metadata"])["due"] for r in rows if r["started_at"])
    doubles = len(dues) - len(set(dues))
    processes = {r["worker_id"].rsplit("-", 1)[0] for r in rows if r["worker_id"]}
    print(
        json.dumps(
            {
                "fires": len(rows),
                "double_fires": doubles,
                "lateness_ms_p50": statistics.median(late),
                "lateness_ms_p90": late[int(0.9 * (len(late) - 1))],
                "lateness_ms_max": late[-1],
                "worker_processes_that_ran_fires": len(processes),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["drain", "periodic"])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fires", type=int, default=60)
    a = ap.parse_args()
    if a.what == "drain":
        drain(a.jobs, a.repeat)
    else:
        periodic(a.fires)


if __name__ == "__main__":
    main()

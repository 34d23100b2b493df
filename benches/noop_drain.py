"""Drains a backlog of no-op jobs and times it, plus the dispatch function alone.

    python benches/noop_drain.py [--jobs 5000] [--workers 4] [--repeat 3]

Prints jobs/s for the worker drain (clock from worker start to the last job recorded) and
microseconds per call of the dispatch function called directly (the Python half of the hot
path, without the engine). ``--secret-key`` and ``--gzip`` measure the cost of the payload
transforms. On a shared machine compare best-of figures of runs made back to back.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from taskito import Queue  # noqa: E402
from taskito.worker.dispatch import make_dispatch  # noqa: E402


def build(path: str, args: argparse.Namespace) -> tuple[Queue, object]:
    kw: dict = {}
    if args.secret_key:
        kw["secret_key"] = b"k" * 32
    if args.gzip:
        from taskito.codecs import GzipCodec

        kw["codec"] = GzipCodec()
    q = Queue(db_path=path, workers=args.workers, scheduler_poll_interval_ms=10, **kw)

    @q.task(name="noop")
    def noop(i: int) -> None:
        return None

    return q, noop


def drain(args: argparse.Namespace) -> tuple[float, float]:
    """(jobs/s by the wall clock, CPU microseconds per job over all threads). The CPU figure
    changes little when other processes load the machine."""
    with tempfile.TemporaryDirectory() as d:
        q, noop = build(os.path.join(d, "q.db"), args)
        q.enqueue_many("noop", [(i,) for i in range(args.jobs)])
        start, cpu = time.perf_counter(), time.process_time()
        n = q.run_worker(run_once=True)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert n == args.jobs, n
        return args.jobs / took, cpu / args.jobs * 1e6


def dispatch_only(args: argparse.Namespace) -> float:
    """Microseconds per call of the dispatch function on no-op jobs, best of 5 rounds."""
    with tempfile.TemporaryDirectory() as d:
        q, noop = build(os.path.join(d, "q.db"), args)
        plan = getattr(q, "_plan_for", None)
        if plan is not None:
            payloads = [plan("noop").dump_call("noop", (i,), {}) for i in range(args.jobs)]
        else:  # the code before serializers were configurable: plain pickle
            payloads = [pickle.dumps(((i,), {}), protocol=5) for i in range(args.jobs)]
        dispatch = make_dispatch(q)
        best = float("inf")
        for _ in range(5):
            start = time.thread_time()
            for p in payloads:
                answer = dispatch("noop", p, "job", "default", 0, 3, "bench-1")
                assert answer[0], answer
            best = min(best, time.thread_time() - start)
        return best / len(payloads) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--secret-key", action="store_true")
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    runs = [drain(args) for _ in range(args.repeat)]
    rates, cpus = [r for r, _ in runs], [c for _, c in runs]
    per_call = [dispatch_only(args) for _ in range(args.repeat)]
    print(
        f"drain {args.jobs} no-op jobs, {args.workers} threads: best {max(rates):,.0f} jobs/s, "
        f"median {statistics.median(rates):,.0f} (runs: {', '.join(f'{r:,.0f}' for r in rates)}); "
        f"CPU best {min(cpus):.1f} us/job (runs: {', '.join(f'{c:.1f}' for c in cpus)})"
    )
    print(
        f"dispatch alone: best {min(per_call):.2f} us/job (runs: {', '.join(f'{r:.2f}' for r in per_call)})"
    )


if __name__ == "__main__":
    main()

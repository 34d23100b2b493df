"""What OpenTelemetry tracing costs: enqueue and drain of no-op jobs with the middleware off,
on with no tracer provider configured, and on with an SDK provider (spans kept in memory).

    python benches/otel_overhead.py [--jobs 3000] [--workers 2] [--repeat 3]

Each mode runs in a fresh interpreter (the tracer provider is process-wide). Prints the best
of ``--repeat`` runs, in jobs/s, and each mode's ratio to "off". On a shared machine compare
figures of runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("off", "no-provider", "sdk")


def one_run(mode: str, jobs: int, workers: int) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    from taskito import Queue

    middleware = []
    if mode != "off":
        from taskito.contrib.otel import OpenTelemetryMiddleware

        middleware = [OpenTelemetryMiddleware()]
    if mode == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
    with tempfile.TemporaryDirectory() as tmp:
        queue = Queue(db_path=os.path.join(tmp, "q.db"), workers=workers, scheduler_poll_interval_ms=10,
                      middleware=middleware)  # fmt: skip

        @queue.task(name="noop")
        def noop(i: int) -> None:
            return None

        start = time.perf_counter()
        for i in range(jobs):
            noop.delay(i)
        enqueued = time.perf_counter() - start
        start = time.perf_counter()
        done = queue.run_worker(run_once=True)
        drained = time.perf_counter() - start
        assert done == jobs, (done, jobs)
        queue.close()
    return {"enqueue": jobs / enqueued, "drain": jobs / drained}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(one_run(args.mode, args.jobs, args.workers)))
        return
    best: dict[str, dict[str, float]] = {m: {"enqueue": 0.0, "drain": 0.0} for m in MODES}
    for _ in range(args.repeat):
        for mode in MODES:  # interleaved, so a noisy moment hits every mode alike
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--jobs", str(args.jobs),
                 "--workers", str(args.workers)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            for key in ("enqueue", "drain"):
                best[mode][key] = max(best[mode][key], figures[key])
    print(f"{args.jobs} no-op jobs, {args.workers} worker threads, best of {args.repeat}")
    print(f"{'mode':<12} {'enqueue/s':>10} {'ratio':>6} {'drain/s':>10} {'ratio':>6}")
    for mode in MODES:
        e, d = best[mode]["enqueue"], best[mode]["drain"]
        e_ratio, d_ratio = e / best["off"]["enqueue"], d / best["off"]["drain"]
        print(f"{mode:<12} {e:>10.0f} {e_ratio:>6.2f} {d:>10.0f} {d_ratio:>6.2f}")


if __name__ == "__main__":
    main()

"""The workloads, written once against a small adapter per system.

A driver script (huey_driver.py, taskito_driver.py) defines an adapter and
calls main(). The adapter exposes what the workloads need:

    name, has_batch                   str, bool
    load()                            import the task module (env is set)
    enqueue_one(task)                 one job by the ordinary per-job API
    enqueue_batch(task, n)            n jobs by the batch API
    fill(task, n) -> str              n jobs by the fastest bulk path; says how
    start_worker() / stop_worker()    worker threads in this process
    submit_echo(value) -> handle      enqueue echo(value)
    wait_result(handle, timeout)      block until the value is back
    completed() -> int | None         jobs recorded as complete, if tracked
    serve()                           run a worker until SIGINT (child process)
    cli_command() -> list[str]        the system's own worker command line

Each workload returns a dict of metrics; main() prints it as one JSON line.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from benchlib import emit, percentile, process_cpu_seconds, process_peak_rss_kib, wait_until

WARMUP_ROUNDS = 5


class Run:
    """Options of one invocation plus the paths inside its work directory."""

    def __init__(self, opts: argparse.Namespace, driver_file: str) -> None:
        self.opts = opts
        self.driver_file = driver_file
        self.workdir = Path(opts.workdir).resolve()
        self.done_file = self.workdir / "done"
        self.ready_file = self.workdir / "ready"

    def env(self, expect: int = 0) -> dict:
        env = dict(os.environ)
        env["BENCH_EXPECT"] = str(expect)
        env["BENCH_DONE_FILE"] = str(self.done_file) if expect else ""
        return env

    def log_tail(self) -> str:
        """Last line a worker process wrote, to explain why it stopped."""
        for name in ("cli.log", "worker.log"):
            path = self.workdir / name
            lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
            if lines:
                return f" ({name}: {lines[-1][:150]})"
        return ""

    def spawn(self, argv: list[str], expect: int = 0, log: str = "worker.log"):
        self.done_file.unlink(missing_ok=True)
        out = open(self.workdir / log, "wb")
        return subprocess.Popen(
            argv, cwd=self.workdir, env=self.env(expect), stdout=out, stderr=subprocess.STDOUT
        )

    def spawn_server(self, expect: int = 0):
        argv = [
            sys.executable,
            self.driver_file,
            "serve",
            "--workdir",
            str(self.workdir),
            "--workers",
            str(self.opts.workers),
        ]
        proc = self.spawn(argv, expect)
        wait_until(self.ready_file.exists, 60, 0.005, alive=lambda: proc.poll() is None)
        return proc


def stop_process(proc, timeout: float = 30.0) -> int:
    """SIGINT, then SIGKILL if it has not exited in time; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return proc.returncode


def wait_event(adapter, timeout: float) -> None:
    """Wait until the task bodies have reached the armed count."""
    deadline = time.monotonic() + timeout
    while not adapter.done.event.wait(0.05):
        if not adapter.worker_alive():
            raise RuntimeError("worker stopped early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not done within {timeout:.0f}s")


def wait_complete(adapter, expected: int, timeout: float) -> None:
    """Wait for the task bodies to have run, then for the completions to be recorded."""
    wait_event(adapter, timeout)
    if adapter.completed() is not None:
        wait_until(lambda: adapter.completed() >= expected, timeout)


def roundtrips(adapter, count: int, timeout: float, alive=None, think_ms: float = 0.0) -> list[float]:
    """Warm up, then time `count` enqueue-and-wait round trips, in ms. With `think_ms`,
    each trip follows a pause drawn uniformly from 0..think_ms (fixed seed), so an idle
    worker's back-off is measured as well as a hot one."""
    for i in range(WARMUP_ROUNDS):
        handle = adapter.submit_echo(i)
        deadline = time.monotonic() + 60
        while True:
            try:
                adapter.wait_result(handle, 1.0)
                break
            except Exception:
                if (alive is not None and not alive()) or time.monotonic() > deadline:
                    raise
    samples = []
    pauses = random.Random(20261202)
    for i in range(count):
        if think_ms:
            time.sleep(pauses.uniform(0.0, think_ms) / 1000.0)
        start = time.perf_counter()
        value = adapter.wait_result(adapter.submit_echo(i), timeout)
        samples.append((time.perf_counter() - start) * 1000.0)
        if value != i:
            raise RuntimeError(f"echo returned {value!r}, expected {i}")
    return samples


def latency_metrics(samples: list[float]) -> dict:
    return {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99), "max_ms": max(samples)}


# --- workloads ---------------------------------------------------------------


def w_enqueue(adapter, run):
    n = run.opts.jobs
    start = time.perf_counter()
    for _ in range(n):
        adapter.enqueue_one("noop")
    return {"jobs_per_s": n / (time.perf_counter() - start)}


def w_batch(adapter, run):
    if not adapter.has_batch:
        return {"na": "no batch API"}
    n = run.opts.jobs
    start = time.perf_counter()
    adapter.enqueue_batch("noop", n)
    return {"jobs_per_s": n / (time.perf_counter() - start)}


def w_drain(adapter, run):
    n = run.opts.jobs
    adapter.fill("noop", n)
    adapter.done.arm(n)
    start = time.perf_counter()
    adapter.start_worker()
    wait_complete(adapter, n, run.opts.timeout)
    elapsed = time.perf_counter() - start
    adapter.stop_worker()
    return {"jobs_per_s": n / elapsed, "wall_s": elapsed}


def w_rt_inproc(adapter, run):
    adapter.start_worker()
    samples = roundtrips(adapter, run.opts.jobs, 30)
    adapter.stop_worker()
    return latency_metrics(samples)


def w_rt_xproc(adapter, run):
    proc = run.spawn_server()
    try:
        samples = roundtrips(adapter, run.opts.jobs, 30, alive=lambda: proc.poll() is None)
    finally:
        stop_process(proc)
    return latency_metrics(samples)


def w_rt_cli(adapter, run):
    """Round trips to a worker started by the system's own CLI in another process, with
    think time between trips: the producer never runs a worker of its own."""
    proc = run.spawn(adapter.cli_command(), log="cli.log")
    try:
        samples = roundtrips(
            adapter, run.opts.jobs, 30, alive=lambda: proc.poll() is None, think_ms=run.opts.think_ms
        )
    finally:
        stop_process(proc)
    return latency_metrics(samples)


def w_io(adapter, run):
    n, workers = run.opts.jobs, run.opts.workers
    adapter.start_worker()
    roundtrips(adapter, 0, 30)
    base = adapter.completed() or 0
    adapter.done.arm(n)
    start = time.perf_counter()
    if adapter.has_batch:
        adapter.enqueue_batch("nap", n)
    else:
        for _ in range(n):
            adapter.enqueue_one("nap")
    wait_complete(adapter, base + n, run.opts.timeout)
    elapsed = time.perf_counter() - start
    adapter.stop_worker()
    ideal = n * run.opts.sleep_ms / 1000.0 / workers
    return {"efficiency": ideal / elapsed, "wall_s": elapsed, "ideal_s": ideal}


def w_cli(adapter, run):
    n = run.opts.jobs
    adapter.fill("noop", n)
    start = time.perf_counter()
    proc = run.spawn(adapter.cli_command(), expect=n, log="cli.log")
    try:
        wait_until(run.done_file.exists, run.opts.timeout, alive=lambda: proc.poll() is None)
        if adapter.completed() is not None:
            wait_until(lambda: adapter.completed() >= n, run.opts.timeout)
        elapsed = time.perf_counter() - start
    finally:
        code = stop_process(proc)
    return {"jobs_per_s": n / elapsed, "wall_s": elapsed, "exit_code": code}


def w_backlog(adapter, run):
    """Drain the first --jobs of a --queued backlog, for at most --seconds."""
    queued, part = run.opts.queued, run.opts.jobs
    fill_start = time.perf_counter()
    method = adapter.fill("noop", queued)
    fill_s = time.perf_counter() - fill_start
    adapter.done.arm(part)
    start = time.perf_counter()
    adapter.start_worker()
    try:
        wait_event(adapter, run.opts.seconds)
    except TimeoutError:
        pass  # slow systems are measured over the time window instead
    elapsed = time.perf_counter() - start
    drained = part if adapter.done.event.is_set() else adapter.done.count
    # No shutdown: the rest of the backlog goes with the process and its database
    # (taskito 0.22 can take its whole drain timeout to stop with jobs still queued).
    if not drained:
        raise RuntimeError(f"no job finished in {run.opts.seconds:.0f}s")
    return {
        "jobs_per_s": drained / elapsed,
        "drained": drained,
        "capped": drained < part,
        "fill_s": fill_s,
        "fill_method": method,
    }


def w_idle(adapter, run):
    proc = run.spawn_server()
    try:
        roundtrips(adapter, 0, 30, alive=lambda: proc.poll() is None)
        time.sleep(1.0)
        before = process_cpu_seconds(proc.pid)
        time.sleep(run.opts.seconds)
        used = process_cpu_seconds(proc.pid) - before
    finally:
        stop_process(proc)
    return {"pct_core": 100.0 * used / run.opts.seconds}


def w_rss(adapter, run):
    """Peak RSS of a worker process draining --jobs, watched for at most --seconds."""
    n = run.opts.jobs
    adapter.fill("noop", n)
    start = time.perf_counter()
    proc = run.spawn_server(expect=n)
    capped = False
    try:
        try:
            wait_until(run.done_file.exists, run.opts.seconds, 0.005, alive=lambda: proc.poll() is None)
        except TimeoutError:
            capped = True
        elapsed = time.perf_counter() - start
        peak_kib = process_peak_rss_kib(proc.pid)
    finally:
        stop_process(proc)
    result = {"peak_rss_mb": peak_kib / 1024.0, "drain_s": elapsed, "capped": capped}
    if capped and adapter.completed() is not None:
        result["drained"] = adapter.completed()
    return result


WORKLOADS = {
    "enqueue": w_enqueue,
    "batch": w_batch,
    "drain": w_drain,
    "rt_inproc": w_rt_inproc,
    "rt_xproc": w_rt_xproc,
    "rt_cli": w_rt_cli,
    "io": w_io,
    "cli": w_cli,
    "backlog": w_backlog,
    "idle": w_idle,
    "rss": w_rss,
}


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(WORKLOADS) + ["serve", "version"])
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sleep-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--think-ms", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--system", default="")
    return parser.parse_args(argv)


def main(make_adapter, driver_file: str) -> None:
    opts = parse_args(sys.argv[1:])
    run = Run(opts, driver_file)
    os.environ["BENCH_DB"] = str(run.workdir / "bench.db")
    os.environ["BENCH_WORKERS"] = str(opts.workers)
    os.environ["BENCH_SLEEP_MS"] = str(opts.sleep_ms)
    os.environ.setdefault("BENCH_EXPECT", "0")
    try:
        adapter = make_adapter(opts)
        if opts.workload == "version":
            emit({"version": adapter.version(), "python": sys.version.split()[0]})
            return
        adapter.load()
        if opts.workload == "serve":
            run.ready_file.touch()
            adapter.serve()
            return
        result = WORKLOADS[opts.workload](adapter, run)
    except NotImplementedError as exc:  # a workload this system's driver does not take part in
        emit({"na": str(exc) or "not measured"})
        sys.stdout.flush()
        os._exit(0)
    except Exception as exc:  # reported as a row, not a crash of the harness
        traceback.print_exc()
        emit({"error": f"{type(exc).__name__}: {exc}{run.log_tail()}"})
        sys.stderr.flush()
        os._exit(1)
    emit(result)
    # Worker threads of some engines do not always exit; the result is out.
    sys.stdout.flush()
    os._exit(0)

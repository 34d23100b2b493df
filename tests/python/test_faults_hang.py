"""Tasks that hang: the timeout interrupts the task's thread; a thread that does not give the
job back within the grace is written off and replaced, the job retries or fails within
timeout + 2 s, and whatever the written-off thread returns later is discarded.

Each scenario runs in its own interpreter: a thread stuck in ``time.sleep`` must not hold up
this process's exit, so the scenario leaves through ``os._exit`` (as the CLI does) and reports
what it saw as JSON on its last stdout line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from faultkit import ROOT

PRELUDE = """
import json, os, sys, threading, time
from taskito import Queue, current_job

queue = Queue(db_path=sys.argv[1], workers=int(sys.argv[2]), scheduler_poll_interval_ms=10)
LOG = sys.argv[1] + ".runs"


def log(kind):
    line = f"{kind} {current_job.id} {threading.current_thread().name} {time.time():.3f}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)


def runs():
    if not os.path.exists(LOG):
        return []
    return [line.split() for line in open(LOG).read().splitlines()]


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            report({"timed_out": f"waiting for {what}"})
        time.sleep(0.02)


def report(data):
    print(json.dumps(data), flush=True)
    sys.stderr.flush()
    os._exit(0)


barrier = threading.Barrier(2)


@queue.task(name="pair", timeout=60)
def pair():
    # Finishes only when two worker threads run it at once: proves the pool kept its size.
    barrier.wait(20)
    return threading.current_thread().name


worker = threading.Thread(target=queue.run_worker, daemon=True)
"""


def run_scenario(tmp_path: Path, body: str, workers: int = 2, timeout: float = 120) -> dict:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "q.db"), str(workers)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    data = json.loads(lines[-1])
    assert "timed_out" not in data, (data, proc.stderr)
    assert "database is locked" not in proc.stderr
    return data


def test_hung_task_is_written_off_while_quick_jobs_go_on(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        """
        @queue.task(name="hang", timeout=2, max_retries=1, retry_backoff=0.05)
        def hang():
            log("S")
            time.sleep(40)  # in C: the timeout exception cannot land until it returns
            log("E")

        @queue.task(name="quick")
        def quick(i):
            time.sleep(0.05)
            return i

        hung = hang.delay()
        quicks = [quick.delay(i) for i in range(20)]
        worker.start()
        wait(lambda: hung.status in ("dead", "failed"), 60, "the hung job to end")
        out = {
            "status": hung.status,
            "end": hung.to_dict()["completed_at"] / 1000,
            "worker": hung.to_dict()["worker_id"],
            "errors": [(e["error"], e["failed_at"] / 1000) for e in hung.errors],
            "starts": [float(r[3]) for r in runs() if r[0] == "S"],
            "ends": [r for r in runs() if r[0] == "E"],
            "quick": [q.result(timeout=30) for q in quicks],
            "quick_done": max(q.to_dict()["completed_at"] for q in quicks) / 1000,
        }
        p1, p2 = pair.delay(), pair.delay()
        out["pairs"] = [p1.result(timeout=30), p2.result(timeout=30)]
        report(out)
        """,
    )
    assert data["status"] == "dead"  # max_retries=1: two runs, both timed out
    assert data["worker"]  # the thread that held it, though the watchdog ended the run
    assert data["quick"] == list(range(20))
    assert data["quick_done"] < data["end"]  # the quick jobs were not held up by the hung one
    assert len(data["errors"]) == 2 and len(data["starts"]) == 2
    assert all("TaskTimeoutError" in err for err, _ in data["errors"])
    lags = [failed - (start + 2) for (_, failed), start in zip(data["errors"], data["starts"])]
    print(f"\n[figure] hung task failed {max(lags):.2f} s after its deadline (timeout 2 s)")
    assert all(lag < 2.0 for lag in lags), lags  # timeout noticed within timeout + 2 s
    # The retry started only after the first run had been written off: never two at once.
    assert data["starts"][1] >= data["errors"][0][1] - 0.05
    assert data["ends"] == []
    # Both written-off threads were replaced: two pair jobs ran side by side.
    assert len(set(data["pairs"])) == 2


def test_busy_python_loop_is_interrupted_and_its_thread_survives(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        """
        @queue.task(name="spin", timeout=1, max_retries=0)
        def spin():
            log("S")
            n = 0
            while True:
                n += 1

        @queue.task(name="who")
        def who():
            return threading.current_thread().name

        job = spin.delay()
        worker.start()
        wait(lambda: job.status in ("dead", "failed"), 30, "the busy job to end")
        start = float(runs()[0][3])
        after = who.delay()
        report({
            "status": job.status,
            "errors": [e["error"] for e in job.errors],
            "lag": job.to_dict()["completed_at"] / 1000 - (start + 1),
            "spin_thread": runs()[0][2],
            "next_thread": after.result(timeout=30),
            "spin_worker": job.to_dict()["worker_id"],
            "next_worker": after.to_dict()["worker_id"],
        })
        """,
        workers=1,
    )
    assert data["status"] == "dead"
    assert len(data["errors"]) == 1 and "TaskTimeoutError" in data["errors"][0]
    assert data["lag"] < 2.0
    # Interrupted by the asynchronous exception, the thread was kept: the next job ran on it.
    assert data["next_thread"] == data["spin_thread"]
    assert data["spin_worker"] == data["next_worker"]


def test_late_return_of_a_written_off_thread_is_discarded(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        """
        @queue.task(name="late", timeout=1, max_retries=0)
        def late():
            log("S")
            try:
                time.sleep(4)  # past timeout + grace: the thread is written off meanwhile
            except BaseException:
                pass  # swallows the timeout error and returns a value after all
            log("E")
            return "late value"

        job = late.delay()
        worker.start()
        wait(lambda: job.status in ("dead", "failed"), 30, "the job to time out")
        failed_at = job.to_dict()["completed_at"]
        wait(lambda: any(r[0] == "E" for r in runs()), 30, "the written-off thread to return")
        time.sleep(0.5)  # let a late result reach the store, were it not discarded
        after = job.to_dict()
        try:
            job.result(timeout=1)
            raised = None
        except Exception as exc:
            raised = type(exc).__name__
        report({
            "status": after["status"],
            "job_error": after["error"],
            "failed_at": failed_at,
            "completed_at": after["completed_at"],
            "start": float(runs()[0][3]),
            "raised": raised,
            "stats": queue.stats(),
        })
        """,
        workers=1,
    )
    assert data["status"] == "dead"
    assert "TaskTimeoutError" in data["job_error"]
    assert data["raised"] == "MaxRetriesExceededError"
    assert data["completed_at"] == data["failed_at"]  # the late return changed nothing
    assert data["failed_at"] / 1000 - (data["start"] + 1) < 2.0
    assert data["stats"]["completed"] == 0 and data["stats"]["dead"] == 1


def test_async_tasks_time_out_like_sync_ones(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        """
        import asyncio

        @queue.task(name="aspin", timeout=1, max_retries=0)
        async def aspin():
            log("S")
            n = 0
            while True:  # never awaits: only the asynchronous exception can stop it
                n += 1

        @queue.task(name="anap", timeout=1, max_retries=0)
        async def anap():
            log("S")
            await asyncio.sleep(30)  # the thread waits in select(), in C

        @queue.task(name="awho")
        async def awho():
            await asyncio.sleep(0.01)
            return threading.current_thread().name

        spun = aspin.delay()
        worker.start()
        wait(lambda: spun.status == "dead", 30, "the spinning coroutine to time out")
        after_spin = awho.delay().result(timeout=30)
        napped = anap.delay()
        wait(lambda: napped.status == "dead", 30, "the sleeping coroutine to time out")
        after_nap = awho.delay().result(timeout=30)
        starts = {r[1]: (r[2], float(r[3])) for r in runs()}
        report({
            "spin_thread": starts[spun.id][0],
            "after_spin": after_spin,
            "after_nap": after_nap,
            "nap_thread": starts[napped.id][0],
            "errors": [spun.error, napped.error],
            "lags": [
                spun.to_dict()["completed_at"] / 1000 - (starts[spun.id][1] + 1),
                napped.to_dict()["completed_at"] / 1000 - (starts[napped.id][1] + 1),
            ],
        })
        """,
        workers=1,
    )
    assert all("TaskTimeoutError" in e for e in data["errors"])
    assert all(lag < 2.0 for lag in data["lags"]), data["lags"]
    # Interrupted, the busy coroutine's event loop went on serving...
    assert data["after_spin"] == data["spin_thread"]
    # ...and the sleeping one was cancelled on the loop, which lost no thread either.
    assert data["nap_thread"] == data["spin_thread"]
    assert data["after_nap"] == data["nap_thread"]

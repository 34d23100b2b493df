"""Flow control: per-task rate limits and concurrency caps across worker processes, and a
queue's pending cap at enqueue, all decided in storage (a SQLite file or a PostgreSQL
server shared by every worker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, RunningWorker
from faultkit import wait_for
from procs_support import WorkerProcesses

import taskito
from taskito import Queue, QueueFullError, TaskitoError


def _jobs(queue: Queue, task_name: str) -> list[dict]:
    return [j.to_dict() for j in queue.list_jobs(task_name=task_name, limit=10_000)]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    best = cur = 0
    for _, step in edges:
        cur += step
        best = max(best, cur)
    return best


def worst_window(starts: list[int], window_ms: int) -> int:
    """The most starts in any half-open window of ``window_ms``."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["5", "5/d", "0/s", "-1/s", "x/s", "5/ s/", 5, ""])
def test_malformed_rate_limit_is_a_value_error_naming_it(queue: Queue, bad: object) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        queue.task(rate_limit=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_max_concurrent_is_a_value_error(queue: Queue, bad: object) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        queue.task(max_concurrent=bad)  # type: ignore[arg-type]


def test_rate_limit_spellings(queue: Queue) -> None:
    for spec in ("5/s", "100/m", "1/h", " 3 / s "):
        queue.task(name=f"t{spec.strip()}", rate_limit=spec)(lambda: None)


# -- rate limits ---------------------------------------------------------------------------

APP = """
import os, time
from taskito import Queue

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=50)
RUNS = {runs!r}

@queue.task(rate_limit="5/s")
def limited(i):
    return i

@queue.task(max_concurrent=2)
def capped(i):
    start = time.time()
    time.sleep(0.3)
    # One line per run, appended in one write: the interval the task itself ran.
    with open(RUNS, "a") as f:
        f.write(f"{{start}} {{time.time()}}\\n")
    return i

@queue.task()
def free(i):
    return i
"""


def test_rate_limit_holds_across_two_worker_processes(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    with WorkerProcesses(
        tmp_path, APP.format(db=db_path, runs=str(tmp_path / "runs.txt")), n=2, threads=4
    ) as ws:
        # Each process serves its own queue, so both start jobs of the task: a bucket per
        # process would let 10 a second through.
        ws.start(queue, queues=["a", "b"])
        queue.enqueue_many("featapp.limited", [(i,) for i in range(10)], queue="a")
        queue.enqueue_many("featapp.limited", [(i,) for i in range(10, 20)], queue="b")
        wait_for(lambda: queue.stats()["completed"] == 20, 60, what="20 rate-limited jobs")
    starts = sorted(j["started_at"] for j in _jobs(queue, "featapp.limited"))
    worst = worst_window(starts, 1000)
    print(f"rate 5/s: worst 1 s window {worst}/5, span {starts[-1] - starts[0]} ms")
    assert worst <= 5, worst
    assert starts[-1] - starts[0] >= 19 * 200 - 50  # 20 starts spaced by the rate
    assert len({j["worker_id"].rsplit("-", 1)[0] for j in _jobs(queue, "featapp.limited")}) == 2


def test_a_limited_job_holds_no_worker_thread(queue: Queue) -> None:
    @queue.task(rate_limit="1/s")
    def slow_lane(i: int) -> int:
        return i

    @queue.task()
    def fast_lane(i: int) -> int:
        return i

    queue.enqueue_many(slow_lane.name, [(i,) for i in range(4)])
    queue.enqueue_many(fast_lane.name, [(i,) for i in range(50)])
    w = RunningWorker(queue, workers=1).start()
    try:
        # One thread: the unlimited jobs pass the waiting limited ones.
        wait_for(lambda: queue.stats()["completed"] >= 51, 20, what="the unlimited jobs")
        assert len([j for j in _jobs(queue, slow_lane.name) if j["status"] == "complete"]) <= 2
        wait_for(lambda: queue.stats()["completed"] == 54, 20, what="every job")
    finally:
        w.stop()
    starts = sorted(j["started_at"] for j in _jobs(queue, slow_lane.name))
    assert all(b - a >= 990 for a, b in zip(starts, starts[1:])), starts


# -- concurrency caps ----------------------------------------------------------------------


def test_max_concurrent_holds_across_two_worker_processes(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    with WorkerProcesses(
        tmp_path, APP.format(db=db_path, runs=str(tmp_path / "runs.txt")), n=2, threads=4
    ) as ws:
        # As above: a cap per process would let 4 run at once.
        ws.start(queue, queues=["a", "b"])
        queue.enqueue_many("featapp.capped", [(i,) for i in range(6)], queue="a")
        queue.enqueue_many("featapp.capped", [(i,) for i in range(6)], queue="b")
        queue.enqueue_many("featapp.free", [(i,) for i in range(20)], queue="a")
        queue.enqueue_many("featapp.free", [(i,) for i in range(20)], queue="b")
        wait_for(lambda: queue.stats()["completed"] == 52, 60, what="every job")
    capped = _jobs(queue, "featapp.capped")
    # Each run as the task saw it (inside its claim, which the cap counts until the outcome
    # is written): never more than 2 at once, and the cap was reached.
    runs = [tuple(map(float, line.split())) for line in (tmp_path / "runs.txt").read_text().splitlines()]
    assert len(runs) == 12
    overlap = _max_overlap(runs)  # type: ignore[arg-type]
    assert overlap == 2, overlap
    assert len({j["worker_id"].rsplit("-", 1)[0] for j in capped}) == 2  # both processes ran some


# -- pending caps --------------------------------------------------------------------------


def test_max_pending_refuses_past_the_cap(db_path: str) -> None:
    queue = Queue(db_path=db_path, max_pending={"default": 5})

    @queue.task()
    def work(i: int) -> int:
        return i

    @queue.task(queue="other")
    def elsewhere(i: int) -> int:
        return i

    assert issubclass(QueueFullError, TaskitoError) and taskito.QueueFullError is QueueFullError
    held = [work.apply_async(args=(0,), unique_key="u")] + [work.delay(i) for i in range(1, 4)]
    with pytest.raises(QueueFullError, match="default"):
        queue.enqueue_many(work.name, [(10,), (11,)])
    assert queue.stats()["pending"] == 4  # nothing of the batch was stored
    work.delay(4)
    with pytest.raises(QueueFullError):
        work.delay(5)
    # A duplicate of a pending job adds nothing, so it is not refused.
    assert work.apply_async(args=(0,), unique_key="u").id
    for i in range(10):
        elsewhere.delay(i)  # another queue, no cap
    assert queue.stats("default")["pending"] == 5
    assert queue.cancel_job(held[0].id)
    work.delay(6)  # room again
    with pytest.raises(ValueError, match="max_pending"):
        Queue(db_path=db_path, max_pending={"default": -1})
    with pytest.raises(ValueError, match="max_pending"):
        Queue(db_path=db_path, max_pending=5)  # type: ignore[arg-type]


PRODUCER = """
import sys
from taskito import Queue, QueueFullError
queue = Queue(db_path=sys.argv[1], max_pending={"default": 30})
ok = full = 0
for i in range(20):
    try:
        queue.enqueue("any.task", args=(i,))
        ok += 1
    except QueueFullError:
        full += 1
print(ok, full)
"""


def test_max_pending_is_atomic_under_concurrent_producers(db_path: str) -> None:
    Queue(db_path=db_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PRODUCER, db_path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    ok = sum(int(out.split()[0]) for out, _ in outs)
    full = sum(int(out.split()[1]) for out, _ in outs)
    assert (ok, full) == (30, 50)
    assert Queue(db_path=db_path).stats()["pending"] == 30


def test_limits_change_when_a_worker_starts_with_new_options(db_path: str) -> None:
    first = Queue(db_path=db_path, scheduler_poll_interval_ms=10)

    @first.task(name="t", rate_limit="1/h")
    def t1() -> None:
        pass

    first.run_worker(run_once=True)
    first.enqueue_many("t", [() for _ in range(3)])
    first.run_worker(run_once=True)
    assert first.stats()["completed"] == 1  # one token per hour
    second = Queue(db_path=db_path, scheduler_poll_interval_ms=10)
    second.task(name="t")(lambda: None)  # no limit any more
    t0 = time.time()
    second.run_worker(run_once=True)
    assert second.stats()["completed"] == 3
    assert time.time() - t0 < 30


def test_run_once_drains_a_capped_task(queue: Queue) -> None:
    @queue.task(max_concurrent=2)
    def work(i: int) -> int:
        return i

    queue.enqueue_many(work.name, [(i,) for i in range(300)])
    # Run-once ends only when nothing is claimable: a job blocked by the cap while the
    # outcomes that free it are being written is not "nothing".
    assert queue.run_worker(run_once=True) == 300
    assert queue.stats()["completed"] == 300


def test_a_paused_queue_holds_limited_tasks_too(queue: Queue) -> None:
    @queue.task(max_concurrent=5, queue="held")
    def work(i: int) -> int:
        return i

    queue.enqueue_many(work.name, [(i,) for i in range(3)])
    queue.pause("held")
    assert queue.run_worker(run_once=True) == 0  # the limited claim skips paused queues too
    assert queue.stats()["pending"] == 3
    queue.resume("held")
    assert queue.run_worker(run_once=True) == 3


def test_async_tasks_keep_their_cap(queue: Queue) -> None:
    import asyncio

    running = 0
    seen = 0

    @queue.task(max_concurrent=2)
    async def fetch(i: int) -> int:
        nonlocal running, seen
        running += 1
        seen = max(seen, running)
        await asyncio.sleep(0.05)
        running -= 1
        return i

    queue.enqueue_many(fetch.name, [(i,) for i in range(10)])
    # The async lane claims through the same limited path: never more than 2 at once.
    assert queue.run_worker(run_once=True) == 10
    assert seen == 2

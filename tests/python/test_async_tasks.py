"""``async def`` tasks run concurrently on the worker's event loop, up to
``Queue(async_concurrency=...)`` at once, beside the worker threads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, RunningWorker

from taskito import Queue, current_job
from taskito.exceptions import MaxRetriesExceededError
from taskito.task_errors import readable


class Gauge:
    """Counts tasks running at once and remembers the most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def make_queue(db_path: str, **kwargs: object) -> Queue:
    options: dict[str, object] = {"workers": 2, "scheduler_poll_interval_ms": 10}
    options.update(kwargs)
    return Queue(db_path=db_path, **options)  # type: ignore[arg-type]


def test_async_jobs_overlap_on_the_loop(db_path: str) -> None:
    queue = make_queue(db_path, async_concurrency=50)
    gauge = Gauge()

    @queue.task()
    async def nap(i: int) -> int:
        gauge.enter()
        try:
            await asyncio.sleep(0.5)
        finally:
            gauge.leave()
        return i * 2

    jobs = [nap.delay(i) for i in range(50)]
    worker = RunningWorker(queue).start()
    started = time.monotonic()
    try:
        assert [j.result(timeout=60) for j in jobs] == [i * 2 for i in range(50)]
        took = time.monotonic() - started
    finally:
        worker.stop()
    # Two threads running them one at a time would need 50 * 0.5 / 2 = 12.5 s.
    assert took < 6, f"50 async jobs of 0.5 s took {took:.2f} s"
    assert gauge.most > 2, f"at most {gauge.most} ran at once"
    # Recorded as run by the worker's async lane, not by one of its threads.
    assert all((j.refresh().worker_id or "").endswith("-async") for j in jobs)


def test_async_concurrency_caps_running_jobs(db_path: str) -> None:
    queue = make_queue(db_path, async_concurrency=4)
    gauge = Gauge()

    @queue.task()
    async def nap() -> None:
        gauge.enter()
        try:
            await asyncio.sleep(0.2)
        finally:
            gauge.leave()

    jobs = [nap.delay() for _ in range(20)]
    worker = RunningWorker(queue).start()
    try:
        assert [j.result(timeout=60) for j in jobs] == [None] * 20
    finally:
        worker.stop()
    assert gauge.most == 4


def test_async_task_past_its_timeout_is_cancelled_and_retried(db_path: str) -> None:
    queue = make_queue(db_path)
    cancelled: list[str] = []

    @queue.task(timeout=0.5, max_retries=1, retry_backoff=0)
    async def stuck() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(current_job.id)
            raise

    job = stuck.delay()
    worker = RunningWorker(queue).start()
    started = time.monotonic()
    try:
        with pytest.raises(MaxRetriesExceededError):
            job.result(timeout=30)
        took = time.monotonic() - started
    finally:
        worker.stop()
    assert job.status == "dead"
    assert "TaskTimeoutError" in (job.error or "")
    assert len(job.errors) == 2
    assert all("TaskTimeoutError" in e["error"] for e in job.errors)
    assert cancelled == [job.id, job.id]
    assert took < 10


def test_sync_task_runs_beside_busy_async_jobs(db_path: str) -> None:
    queue = make_queue(db_path, workers=1, async_concurrency=10)
    release = asyncio.Event()
    gauge = Gauge()

    @queue.task()
    async def hold() -> str:
        gauge.enter()
        try:
            for _ in range(300):
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        finally:
            gauge.leave()
        return "held"

    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    holds = [hold.delay() for _ in range(10)]
    worker = RunningWorker(queue).start()
    try:
        deadline = time.monotonic() + 30
        while gauge.now < 10:
            assert time.monotonic() < deadline, "async jobs did not start"
            time.sleep(0.01)
        # Every async slot is taken and the one worker thread is still free for this.
        assert add.delay(2, 3).result(timeout=5) == 5
        assert gauge.now == 10
        release.set()
        assert [h.result(timeout=30) for h in holds] == ["held"] * 10
    finally:
        worker.stop()


def test_async_claims_do_not_overcommit_the_worker_threads(db_path: str) -> None:
    queue = make_queue(db_path, workers=1, async_concurrency=50)

    @queue.task()
    def slow() -> None:
        time.sleep(0.3)

    @queue.task()
    async def quick() -> None:
        await asyncio.sleep(0)

    jobs = [slow.delay() for _ in range(5)]
    worker = RunningWorker(queue).start()
    try:
        assert [j.result(timeout=60) for j in jobs] == [None] * 5
        assert quick.delay().result(timeout=10) is None
    finally:
        worker.stop()
    # Sync jobs are never claimed into async slots: each was claimed only once the one
    # worker thread was free, about 0.3 s after the one before.
    claimed_at = sorted(j.to_dict()["started_at"] for j in jobs)
    gaps = [b - a for a, b in zip(claimed_at, claimed_at[1:])]
    assert min(gaps) >= 250, gaps


def test_current_job_is_per_async_job(db_path: str) -> None:
    queue = make_queue(db_path)

    @queue.task()
    async def whoami() -> str:
        before = current_job.id
        await asyncio.sleep(0.2)
        assert current_job.id == before
        return before

    jobs = [whoami.delay() for _ in range(10)]
    worker = RunningWorker(queue).start()
    try:
        assert [j.result(timeout=30) for j in jobs] == [j.id for j in jobs]
    finally:
        worker.stop()


def test_shutdown_finishes_async_jobs_within_the_drain_timeout(db_path: str) -> None:
    queue = make_queue(db_path, drain_timeout=20)
    gauge = Gauge()

    @queue.task()
    async def nap() -> str:
        gauge.enter()
        await asyncio.sleep(1.0)
        return "done"

    jobs = [nap.delay() for _ in range(5)]
    worker = RunningWorker(queue).start()
    deadline = time.monotonic() + 30
    while gauge.most < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker.stop()
    assert [j.refresh().status for j in jobs] == ["complete"] * 5
    assert [j.result(timeout=1) for j in jobs] == ["done"] * 5


def test_shutdown_puts_back_async_jobs_past_the_drain_timeout(db_path: str) -> None:
    queue = make_queue(db_path, drain_timeout=0.3)
    gauge = Gauge()
    finished: list[int] = []

    @queue.task()
    async def long(i: int) -> None:
        gauge.enter()
        await asyncio.sleep(30)
        finished.append(i)

    jobs = [long.delay(i) for i in range(4)]
    worker = RunningWorker(queue).start()
    deadline = time.monotonic() + 30
    while gauge.most < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 10
    assert [j.refresh().status for j in jobs] == ["pending"] * 4
    assert finished == []
    assert all(not j.errors for j in jobs)


def test_async_jobs_across_two_worker_processes_run_once_each(tmp_path: Path, db_path: str) -> None:
    app = tmp_path / "asyncapp.py"
    app.write_text(
        "import asyncio, os\n"
        "from taskito import Queue, current_job\n"
        "queue = Queue(db_path=os.environ['ASYNC_DB'], workers=1, async_concurrency=10,\n"
        "              scheduler_poll_interval_ms=10)\n"
        "@queue.task(name='note')\n"
        "async def note():\n"
        "    await asyncio.sleep(0.2)\n"
        "    with open(os.environ['ASYNC_LOG'], 'a') as f:\n"
        "        f.write(f'{current_job.id} {os.getpid()}\\n')\n"
    )
    env = dict(os.environ)
    env.update(
        ASYNC_DB=db_path,
        ASYNC_LOG=str(tmp_path / "log.txt"),
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    sys.path.insert(0, str(tmp_path))
    os.environ["ASYNC_DB"] = env["ASYNC_DB"]
    try:
        import asyncapp  # type: ignore[import-not-found]

        ids = [asyncapp.queue.enqueue("note").id for _ in range(60)]
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "taskito", "worker", "--app", "asyncapp:queue"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            for i in ids:
                assert asyncapp.queue.get_job(i).result(timeout=60) is None
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                assert w.wait(30) == 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("asyncapp", None)
        os.environ.pop("ASYNC_DB", None)
    lines = (tmp_path / "log.txt").read_text().split()
    ran = lines[0::2]
    assert sorted(ran) == sorted(ids)


def test_run_once_and_max_jobs_count_async_jobs(db_path: str) -> None:
    queue = make_queue(db_path)

    @queue.task()
    async def nap(i: int) -> int:
        await asyncio.sleep(0.1)
        return i

    @queue.task()
    def plain(i: int) -> int:
        return i

    first = [nap.delay(i) for i in range(6)] + [plain.delay(i) for i in range(3)]
    assert queue.run_worker(run_once=True) == 9
    assert [j.result(timeout=1) for j in first] == [*range(6), *range(3)]
    second = [nap.delay(i) for i in range(10)]
    assert queue.run_worker(max_jobs=4) == 4
    assert sorted(j.refresh().status for j in second) == ["complete"] * 4 + ["pending"] * 6


def test_a_timeout_error_raised_by_the_task_is_its_own(db_path: str) -> None:
    queue = make_queue(db_path)

    @queue.task(max_retries=0, timeout=30)
    async def inner_timeout() -> None:
        await asyncio.wait_for(asyncio.sleep(10), 0.05)

    @queue.task(max_retries=0)
    async def cancels_itself() -> None:
        raise asyncio.CancelledError("gave up")

    a, b = inner_timeout.delay(), cancels_itself.delay()
    worker = RunningWorker(queue).start()
    try:
        for job in (a, b):
            with pytest.raises(MaxRetriesExceededError):
                job.result(timeout=30)
    finally:
        worker.stop()
    assert "TaskTimeoutError" not in (a.error or "")
    assert "TimeoutError" in (a.error or "")
    assert readable(b.error).startswith("CancelledError")  # type: ignore[union-attr]


def test_async_jobs_are_counted_in_the_worker_metrics(db_path: str) -> None:
    pytest.importorskip("prometheus_client")
    from taskito.metrics import Metrics

    queue = make_queue(db_path)
    metrics = Metrics(queue).attach()

    @queue.task(name="anap")
    async def anap() -> None:
        await asyncio.sleep(0.01)

    @queue.task(name="afail", max_retries=0)
    async def afail() -> None:
        raise RuntimeError("no")

    jobs = [anap.delay() for _ in range(3)] + [afail.delay()]
    assert queue.run_worker(run_once=True) == 4
    assert [j.refresh().status for j in jobs] == ["complete"] * 3 + ["dead"]

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"queue": "default", **labels})

    assert sample("taskito_jobs_processed_total", task="anap", outcome="complete") == 3
    assert sample("taskito_jobs_processed_total", task="afail", outcome="dead") == 1
    assert sample("taskito_job_duration_seconds_count", task="anap") == 3

"""Producer-side batching: ``.delay(item)`` calls collected into one job a worker runs."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest
from conftest import RunningWorker, run_py
from faultkit import wait_for

from taskito import (
    BatchItemResult,
    BatchPartialFailureError,
    BatchResultTypeError,
    Queue,
    TaskFailedError,
)
from taskito.batching import BatchConfig, BatchedJobResult


def test_config_rules() -> None:
    assert BatchConfig() == BatchConfig(100, 500, False)
    assert BatchConfig.normalize(True) == BatchConfig()
    assert BatchConfig.normalize({"max_size": 3}) == BatchConfig(max_size=3)
    assert BatchConfig.normalize(None) is None and BatchConfig.normalize(False) is None
    cfg = BatchConfig(max_size=2)
    assert BatchConfig.normalize(cfg) is cfg
    with pytest.raises(TypeError):
        BatchConfig.normalize("yes")
    for bad in ({"max_size": 0}, {"max_wait_ms": 0}, {"max_size": 1.5}):
        with pytest.raises(ValueError):
            BatchConfig(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_size = 5  # type: ignore[misc]


def test_item_result_rules() -> None:
    assert BatchItemResult.success(2, "ok") == BatchItemResult("success", "ok", None, 2)
    assert BatchItemResult.failure(1, ValueError("bad")).error == "ValueError: bad"
    for bad in (
        lambda: BatchItemResult("maybe"),
        lambda: BatchItemResult("success", error="x"),
        lambda: BatchItemResult("failure"),
        lambda: BatchItemResult("failure", result=1, error="x"),
        lambda: BatchItemResult.success(-1),
    ):
        with pytest.raises(ValueError):
            bad()
    assert issubclass(BatchPartialFailureError, TaskFailedError)
    assert issubclass(BatchResultTypeError, TypeError)


def test_decoration_rules(queue: Queue) -> None:
    with pytest.raises(ValueError, match="idempotent"):
        queue.task(batch=True, idempotent=True)(lambda items: None)
    with pytest.raises(TypeError):
        queue.task(batch=3)(lambda items: None)

    @queue.task(batch=True)
    def collect(items: list) -> None:
        pass

    with pytest.raises(ValueError):
        collect.delay(1, 2)
    with pytest.raises(ValueError):
        collect.delay(x=1)
    assert collect([1, 2]) is None  # a direct call runs the function as written


def test_flush_on_size_runs_one_job(queue: Queue) -> None:
    seen: list[list[int]] = []

    @queue.task(batch=BatchConfig(max_size=3, max_wait_ms=60_000))
    def collect(items: list[int]) -> int:
        seen.append(items)
        return sum(items)

    handles = [collect.delay(i) for i in range(7)]
    first = handles[0]
    assert isinstance(first, BatchedJobResult) and first.batched and first.id is None
    assert handles[6].status() == "batched"  # the seventh waits for more
    assert queue.stats()["pending"] == 2
    with pytest.raises(NotImplementedError):
        first.result()
    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: queue.stats()["completed"] == 2, 15, what="two batches")
    finally:
        w.stop()
    assert sorted(seen) == [[0, 1, 2], [3, 4, 5]]
    assert handles[0].job is not None and handles[0].job is handles[2].job
    assert handles[0].job.result(timeout=5) == 3 and handles[0].status() == "complete"
    # close() flushes what is left.
    queue.close()
    assert handles[6].job is not None and handles[6].job.status == "pending"


def test_flush_after_max_wait(queue: Queue) -> None:
    @queue.task(batch={"max_size": 100, "max_wait_ms": 150})
    def collect(items: list[str]) -> str:
        return ",".join(items)

    a, b = collect.delay("a"), collect.delay("b")
    assert queue.stats()["pending"] == 0
    wait_for(lambda: a.job is not None, 5, what="a timed flush")
    assert a.job is b.job and queue.stats()["pending"] == 1
    queue.run_worker(run_once=True)
    assert a.job.result(timeout=5) == "a,b"


def test_per_item_results(queue: Queue) -> None:
    attempts: list[int] = []

    @queue.task(batch=BatchConfig(max_size=3, per_item_results=True), max_retries=1, retry_backoff=0.01)
    def square(items: list[int]) -> list[BatchItemResult]:
        attempts.append(len(items))
        return [
            BatchItemResult.failure(i, f"negative: {x}") if x < 0 else BatchItemResult.success(i, x * x)
            for i, x in enumerate(items)
        ]

    ok = [square.delay(x) for x in (2, 3, 4)]
    bad = [square.delay(x) for x in (5, -1, 6)]
    w = RunningWorker(queue).start()
    try:
        assert [h.result(timeout=15) for h in ok] == [4, 9, 16]
        assert ok[0].partial_failures(timeout=5) == []
        with pytest.raises(TaskFailedError, match="negative: -1"):
            bad[1].result(timeout=15)
        with pytest.raises(TaskFailedError):
            bad[0].result(timeout=15)  # the whole batch failed
        failed = bad[2].partial_failures(timeout=5)
        assert failed == [BatchItemResult.failure(1, "negative: -1")]
    finally:
        w.stop()
    assert attempts == [3, 3, 3]  # the failing batch ran twice: one retry
    assert bad[0].job is not None
    raw = bad[0].job.error
    assert raw is not None and '"errtype":"BatchPartialFailureError"' in raw
    for h in ok:
        with pytest.raises(ValueError):
            h.result(timeout=0)


def test_wrong_return_type_fails_the_batch(queue: Queue) -> None:
    @queue.task(batch=BatchConfig(max_size=1, per_item_results=True), max_retries=0)
    def wrong(items: list[int]) -> Any:
        return {"not": "a list"}

    h = wrong.delay(1)
    queue.run_worker(run_once=True)
    assert h.job is not None and h.job.status == "dead"
    assert '"errtype":"BatchResultTypeError"' in (h.job.error or "")
    with pytest.raises(TaskFailedError):
        h.result(timeout=5)


def test_result_times_out_without_a_flush(queue: Queue) -> None:
    @queue.task(batch=BatchConfig(max_size=10, max_wait_ms=60_000, per_item_results=True))
    def never(items: list[int]) -> list[BatchItemResult]:
        return []

    h = never.delay(1)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        h.result(timeout=0.2)
    assert time.monotonic() - start < 5
    plain = queue.task(name="plain_batch", batch=True)(lambda items: None)
    with pytest.raises(RuntimeError):
        plain.delay(1).partial_failures()


def test_concurrent_producers_lose_no_item(queue: Queue) -> None:
    got: list[int] = []
    lock = threading.Lock()

    @queue.task(batch=BatchConfig(max_size=7, max_wait_ms=50))
    def collect(items: list[int]) -> None:
        with lock:
            got.extend(items)

    def produce(base: int) -> None:
        for i in range(50):
            collect.delay(base + i)

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.close()
    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: len(got) == 200, 20, what="every item")
    finally:
        w.stop()
    assert sorted(got) == sorted(k * 1000 + i for k in range(4) for i in range(50))


def test_exit_flushes_the_buffer(tmp_path: Any) -> None:
    db = str(tmp_path / "q.db")
    code = f"""
from taskito import Queue
q = Queue(db_path={db!r})

@q.task(name="collect", batch={{"max_size": 100, "max_wait_ms": 600000}})
def collect(items):
    return len(items)

for i in range(5):
    collect.delay(i)
"""
    done = run_py(code)
    assert done.returncode == 0, done.stderr
    q = Queue(db_path=db)
    q.task(name="collect")(lambda items: len(items))
    (job,) = q.list_jobs()
    q.run_worker(run_once=True)
    assert q.get_job(job.id).result(timeout=5) == 5  # type: ignore[union-attr]


def test_docs_example_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    example = root / "examples" / "batching.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "jobs stored: 4" in done.stdout and "first item: 9,2" in done.stdout
    assert example.read_text().strip() in (root / "docs/guides/batching.md").read_text()

"""Per-job ``result_ttl``: a finished job is kept that many seconds after it finishes, then a
worker's maintenance sweep deletes it, whatever the queue's retention says."""

from __future__ import annotations

import time

import pytest
from conftest import RunningWorker
from test_retention import _age_everything

from taskito import Queue, Retention


def _sweep_until_gone(q: Queue, job_ids: list[str]) -> None:
    """Runs a worker until its maintenance has deleted these jobs (or 30 s went by)."""
    worker = RunningWorker(q).start()
    try:
        deadline = time.monotonic() + 30
        # `shutdown()` before the worker runs would be a no-op: wait until it does.
        while not any(w["status"] == "active" for w in q.workers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        while any(q.get_job(i) is not None for i in job_ids) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()


def _queue(db_path: str, retention: Retention) -> Queue:
    return Queue(db_path=db_path, workers=1, heartbeat_interval=0.2, stale_after=5, retention=retention)


def test_a_job_ttl_wins_over_the_queue_window_both_ways(db_path: str) -> None:
    q = _queue(db_path, Retention(archived_jobs=3600))

    @q.task(name="ok")
    def ok(x):
        return x * 2

    @q.task(name="bad", max_retries=0)
    def bad():
        raise ValueError("no")

    short = ok.apply_async((1,), result_ttl=60)
    long = ok.apply_async((2,), result_ttl=86400)
    plain = ok.apply_async((3,))
    short_dead = bad.apply_async(result_ttl=60)
    listed = q.enqueue_many("ok", [(4,), (5,)], result_ttl_list=[60, 86400])
    uniform = q.enqueue_many("ok", [(6,)], result_ttl=86400)
    q.run_worker(run_once=True)
    assert long.result(timeout=5) == 4
    _age_everything(db_path, 7200)  # two hours on: past 60 s and the 1 h window, not a day

    _sweep_until_gone(q, [short.id, plain.id, short_dead.id, listed[0].id])
    for gone in (short, plain, short_dead, listed[0]):
        assert q.get_job(gone.id) is None
    for kept in (long, listed[1], uniform[0]):
        assert q.get_job(kept.id).status == "complete"
    assert long.result(timeout=5) == 4


def test_a_job_ttl_applies_with_retention_off(db_path: str) -> None:
    q = _queue(db_path, Retention())

    @q.task(name="ok")
    def ok():
        return "done"

    expiring = ok.apply_async(result_ttl=0)
    kept = q.enqueue("ok")
    pending = q.enqueue("ok", result_ttl=0, delay=3600)
    q.run_worker(run_once=True)
    _sweep_until_gone(q, [expiring.id])
    assert q.get_job(expiring.id) is None
    assert q.get_job(kept.id).status == "complete"
    # Only finished jobs go: one not yet run keeps waiting whatever its TTL.
    assert q.get_job(pending.id).status == "pending"


def test_a_job_ttl_with_notes_takes_the_linked_path(db_path: str) -> None:
    q = _queue(db_path, Retention())

    @q.task(name="ok")
    def ok():
        return 1

    job = ok.apply_async(result_ttl=0, notes={"k": "v"})
    batch = q.enqueue_many("ok", [(), ()], notes={"k": "v"}, result_ttl_list=[0, None])
    q.run_worker(run_once=True)
    _sweep_until_gone(q, [job.id, batch[0].id])
    assert q.get_job(job.id) is None and q.get_job(batch[0].id) is None
    assert q.get_job(batch[1].id).notes == {"k": "v"}


def test_bad_result_ttl_is_refused_and_stores_nothing(queue: Queue) -> None:
    @queue.task(name="ok")
    def ok():
        return 1

    for bad in (-1, float("nan"), float("inf"), True, "60"):
        with pytest.raises(ValueError, match="result_ttl"):
            ok.apply_async(result_ttl=bad)
        with pytest.raises(ValueError, match="result_ttl"):
            queue.enqueue("ok", result_ttl=bad, notes={"a": 1})
        with pytest.raises(ValueError, match="result_ttl"):
            queue.enqueue_many("ok", [(), ()], result_ttl=bad)
        with pytest.raises(ValueError, match="result_ttl"):
            queue.enqueue_many("ok", [(), ()], result_ttl_list=[None, bad])
    with pytest.raises(ValueError, match="result_ttl_list"):
        queue.enqueue_many("ok", [(), ()], result_ttl_list=[1])
    assert queue.list_jobs() == []

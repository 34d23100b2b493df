"""Retry rules of ``@queue.task``: exception filters, per-retry delays, the delay cap and
the retry budget, through real workers on both backends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import RunningWorker
from faultkit import wait_for
from procs_support import WorkerProcesses

from taskito import Queue


class AppError(Exception):
    pass


class NarrowError(AppError):
    pass


def _runs(queue: Queue, job_id: str) -> int:
    return len(queue.get_job(job_id).errors)  # type: ignore[union-attr]


def _dead_for(queue: Queue, job_id: str) -> dict | None:
    return next((d for d in queue.dead_letters(limit=100) if d["original_job_id"] == job_id), None)


def test_retry_on_retries_matching_subclasses_and_dead_letters_the_rest(
    queue: Queue, worker: RunningWorker
) -> None:
    calls: dict[str, int] = {"match": 0, "other": 0}

    @queue.task(max_retries=2, retry_on=[AppError], retry_delays=[0, 0])
    def flaky(kind: str) -> None:
        calls[kind] += 1
        raise NarrowError("subclass") if kind == "match" else KeyError("other")

    matched, other = flaky.delay("match"), flaky.delay("other")
    wait_for(
        lambda: matched.refresh().status == "dead" and other.refresh().status == "dead", 30, what="both dead"
    )
    assert calls == {"match": 3, "other": 1}  # filtered out: straight to the DLQ, one run
    assert _dead_for(queue, other.id) is not None
    assert _dead_for(queue, matched.id)["retry_count"] == 2  # type: ignore[index]


def test_dont_retry_on_is_checked_before_retry_on(queue: Queue, worker: RunningWorker) -> None:
    calls = []

    @queue.task(max_retries=3, retry_on=[Exception], dont_retry_on=[AppError], retry_delays=[0, 0, 0])
    def picky(kind: str) -> None:
        calls.append(kind)
        raise NarrowError("no") if kind == "app" else RuntimeError("yes")

    blocked, allowed = picky.delay("app"), picky.delay("rt")
    wait_for(
        lambda: blocked.refresh().status == "dead" and allowed.refresh().status == "dead", 30, what="dead"
    )
    assert calls.count("app") == 1
    assert calls.count("rt") == 4


def test_without_filters_every_exception_is_retried(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(max_retries=2, retry_delays=[0, 0])
    def always() -> None:
        raise SystemError("boom")

    job = always.delay()
    wait_for(lambda: job.refresh().status == "dead", 30, what="dead")
    assert _runs(queue, job.id) == 3


def test_retry_delays_set_each_retrys_base_delay(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(max_retries=2, retry_backoff=0.05, retry_delays=[1.5])
    def slow_retry() -> None:
        raise AppError("again")

    job = slow_retry.delay()
    wait_for(lambda: _runs(queue, job.id) >= 1, 30, what="first failure")
    record = queue.get_job(job.id).to_dict()  # type: ignore[union-attr]
    failed_at = job.errors[0]["failed_at"]
    # Retry 0 waits retry_delays[0] plus a jitter below retry_backoff.
    assert 1500 - 50 <= record["scheduled_at"] - failed_at <= 1500 + 50 + 100
    wait_for(lambda: job.refresh().status == "dead", 30, what="dead")
    errors = job.errors
    # After the list: min(max_retry_delay, 0.05 * 2**1) + U(0, 0.05), so well under a second.
    assert errors[2]["failed_at"] - errors[1]["failed_at"] < 1000


def test_max_retry_delay_caps_the_exponential_delay(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(max_retries=3, retry_backoff=1.0, max_retry_delay=0.1)
    def capped() -> None:
        raise AppError("capped")

    job = capped.delay()
    started = time.monotonic()
    wait_for(lambda: job.refresh().status == "dead", 30, what="dead")
    # Uncapped the three waits would be 1+2+4 s plus jitter; capped each is 0.1 s + U(0, 1).
    assert time.monotonic() - started < 5.5
    assert _runs(queue, job.id) == 4


def test_retry_budget_is_shared_by_the_tasks_jobs(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(max_retries=5, retry_delays=[0] * 5, retry_budget="3/h")
    def budgeted(i: int) -> None:
        raise AppError(str(i))

    jobs = [budgeted.delay(i) for i in range(3)]
    wait_for(lambda: all(j.refresh().status == "dead" for j in jobs), 30, what="all dead")
    retries = sum(_runs(queue, j.id) - 1 for j in jobs)
    assert retries == 3  # the bucket's three tokens, across all jobs
    reasons = [_dead_for(queue, j.id)["metadata"] for j in jobs]  # type: ignore[index]
    assert reasons.count("retry_budget_exhausted") == 3


@pytest.mark.parametrize("bad", ["3", "3/d", "0/s", "x/s", ""])
def test_a_bad_retry_budget_fails_at_run_worker(queue: Queue, bad: str) -> None:
    @queue.task(retry_budget=bad)
    def t() -> None:
        pass

    with pytest.raises(ValueError, match="retry_budget"):
        queue.run_worker(run_once=True)


def test_bad_rule_options_are_refused_at_decoration(queue: Queue) -> None:
    with pytest.raises(ValueError, match="retry_on"):
        queue.task(retry_on=["ValueError"])(lambda: None)
    with pytest.raises(ValueError, match="retry_delays"):
        queue.task(retry_delays=[-1])(lambda: None)
    with pytest.raises(ValueError, match="max_retry_delay"):
        queue.task(max_retry_delay=float("nan"))(lambda: None)


BUDGET_APP = """
from taskito import Queue

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=20)

@queue.task(max_retries=4, retry_delays=[0] * 4, retry_budget="4/h")
def shared(i):
    raise RuntimeError(i)
"""


def test_retry_budget_holds_across_two_worker_processes(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    with WorkerProcesses(tmp_path, BUDGET_APP.format(db=db_path), n=2, threads=2) as ws:
        ws.start(queue, queues=["a", "b"])
        jobs = queue.enqueue_many("featapp.shared", [(i,) for i in range(3)], queue="a", max_retries=4)
        jobs += queue.enqueue_many("featapp.shared", [(i,) for i in range(3, 6)], queue="b", max_retries=4)
        wait_for(lambda: all(j.refresh().status == "dead" for j in jobs), 60, what="all dead")
    assert sum(_runs(queue, j.id) - 1 for j in jobs) == 4


PREFORK_APP = """
from taskito import Queue

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=20)

class Permanent(Exception):
    pass

@queue.task(max_retries=3, retry_delays=[0, 0, 0], dont_retry_on=[Permanent])
def ruled(permanent):
    raise Permanent("no") if permanent else RuntimeError("again")

@queue.task(max_retries=3, retry_delays=[0, 0, 0], retry_budget="1/h")
def budgeted():
    raise RuntimeError("spent")
"""


def test_rules_hold_in_prefork_children(tmp_path: Path, db_path: str) -> None:
    from cli_support import start_cli

    (tmp_path / "preforkapp.py").write_text(PREFORK_APP.format(db=db_path))
    queue = Queue(db_path=db_path)
    args = ("worker", "--app", "preforkapp:queue", "--workers", "2", "--pool", "prefork")
    proc = start_cli(*args, cwd=tmp_path)
    try:
        permanent = queue.enqueue("preforkapp.ruled", (True,), max_retries=3)
        transient = queue.enqueue("preforkapp.ruled", (False,), max_retries=3)
        budget = [queue.enqueue("preforkapp.budgeted", (), max_retries=3) for _ in range(2)]
        jobs = [permanent, transient, *budget]
        wait_for(lambda: all(j.refresh().status == "dead" for j in jobs), 60, what="all dead")
        assert _runs(queue, permanent.id) == 1
        assert _runs(queue, transient.id) == 4
        assert sum(_runs(queue, j.id) - 1 for j in budget) == 1
        reasons = sorted(str(_dead_for(queue, j.id)["metadata"]) for j in budget)  # type: ignore[index]
        assert reasons == ["retry_budget_exhausted", "retry_budget_exhausted"]
    finally:
        proc.terminate()
        proc.communicate(timeout=60)

"""Circuit breakers: opened by failures, jobs put off while open (never dropped, no retry
used), probed when half-open, closed again; state shared by every worker process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import RunningWorker
from faultkit import wait_for
from procs_support import WorkerProcesses

from taskito import Queue


def _breaker(queue: Queue, name: str) -> dict:
    return next(b for b in queue.circuit_breakers() if b["task_name"] == name)


def test_breaker_opens_puts_jobs_off_then_closes_after_a_good_probe(
    queue: Queue, worker: RunningWorker, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.touch()

    @queue.task(
        name="fragile",
        max_retries=0,
        circuit_breaker={
            "threshold": 2,
            "window": 60,
            "cooldown": 1,
            "half_open_probes": 1,
            "half_open_success_rate": 1.0,
        },
    )
    def fragile(i: int) -> int:
        if broken.exists():
            raise ConnectionError("down")
        return i

    @queue.task(name="plain")
    def plain() -> None:
        pass

    assert [b["task_name"] for b in queue.circuit_breakers()] == ["fragile"]
    first = _breaker(queue, "fragile")
    assert first["state"] == "closed" and first["threshold"] == 2
    assert first["window_ms"] == 60_000 and first["cooldown_ms"] == 1000

    failed = [fragile.delay(i) for i in range(2)]
    wait_for(lambda: all(j.refresh().status == "dead" for j in failed), 30, what="two failures")
    opened = _breaker(queue, "fragile")
    assert opened["state"] == "open" and opened["opened_at"] is not None
    assert opened["failure_count"] == 2

    held = fragile.delay(7)
    wait_for(lambda: "CircuitBreakerOpenError" in (held.refresh().error or ""), 30, what="the job put off")
    record = held.to_dict()
    assert record["status"] == "pending" and record["retry_count"] == 0 and held.errors == []
    broken.unlink()
    # After the cooldown the put-off job is the half-open probe; its success closes it.
    assert held.result(timeout=30) == 7
    assert _breaker(queue, "fragile")["state"] == "closed"


def test_a_failed_probe_opens_the_breaker_again(queue: Queue, worker: RunningWorker) -> None:
    @queue.task(
        name="down",
        max_retries=0,
        circuit_breaker={
            "threshold": 1,
            "cooldown": 0.5,
            "half_open_probes": 2,
            "half_open_success_rate": 1.0,
        },
    )
    def down() -> None:
        raise ConnectionError("still down")

    job = down.delay()
    wait_for(lambda: job.refresh().status == "dead", 30, what="failure")
    assert _breaker(queue, "down")["state"] == "open"
    probe = down.delay()
    wait_for(lambda: probe.refresh().status == "dead", 30, what="the probe ran and failed")
    # A success rate of 1.0 became unreachable with the first failed probe.
    state = _breaker(queue, "down")
    assert state["state"] == "open"
    assert state["opened_at"] >= probe.errors[0]["failed_at"] - 5


@pytest.mark.parametrize(
    "config, word",
    [
        ({"threshold": 0}, "threshold"),
        ({"nope": 1}, "unknown"),
        ({"half_open_success_rate": 1.5}, "success_rate"),
        ("x", "dict"),
    ],
)
def test_bad_breaker_configs_are_refused(queue: Queue, config: object, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        queue.task(circuit_breaker=config)(lambda: None)  # type: ignore[arg-type]


def test_acircuit_breakers(queue: Queue) -> None:
    queue.task(name="b", circuit_breaker={})(lambda: None)
    assert [b["state"] for b in asyncio.run(queue.acircuit_breakers())] == ["closed"]


APP = """
from taskito import Queue

queue = Queue(db_path={db!r}, scheduler_poll_interval_ms=20)

@queue.task(max_retries=0, circuit_breaker={{"threshold": 3, "window": 60, "cooldown": 300}})
def remote(fail):
    if fail:
        raise ConnectionError("remote down")
    return "ok"
"""


def test_breaker_state_is_shared_by_two_worker_processes(tmp_path: Path, db_path: str) -> None:
    queue = Queue(db_path=db_path)
    with WorkerProcesses(tmp_path, APP.format(db=db_path), n=2, threads=2) as ws:
        # Each process serves its own queue: failures seen by the first open the breaker
        # for the second.
        ws.start(queue, queues=["a", "b"])
        failing = queue.enqueue_many("featapp.remote", [(True,)] * 3, queue="a", max_retries=0)
        wait_for(
            lambda: all(j.refresh().status == "dead" for j in failing),
            60,
            what=lambda: [j.to_dict() for j in failing],
        )
        other = queue.enqueue("featapp.remote", (False,), queue="b")
        wait_for(lambda: "CircuitBreakerOpenError" in (other.refresh().error or ""), 30, what="put off on b")
        assert other.refresh().status == "pending"
        failed_on = queue.get_job(failing[0].id).worker_id.rsplit("-", 1)[0]  # type: ignore[union-attr]
        assert failed_on != other.worker_id.rsplit("-", 1)[0]  # type: ignore[union-attr]
    rows = Queue(db_path=db_path)
    rows.task(name="featapp.remote", circuit_breaker={"threshold": 3, "window": 60, "cooldown": 300})(
        lambda f: f
    )
    assert _breaker(rows, "featapp.remote")["state"] == "open"

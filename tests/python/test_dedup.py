"""Deduplication: a unique key (given, or derived from an idempotent task's arguments)
returns the live job holding it, atomically across producer threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, RunningWorker
from faultkit import wait_for

from taskito import Queue


def test_unique_key_returns_the_pending_then_running_job(queue: Queue) -> None:
    gate = threading.Event()

    @queue.task()
    def hold() -> str:
        gate.wait(10)
        return "done"

    first = hold.apply_async(unique_key="k")
    assert hold.apply_async(unique_key="k").id == first.id
    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: first.status == "running", 10, what="running")
        assert hold.apply_async(unique_key="k").id == first.id
        gate.set()
        assert first.result(timeout=10) == "done"
        # Finished: the key is free again.
        again = hold.apply_async(unique_key="k")
        assert again.id != first.id
        assert again.result(timeout=10) == "done"
    finally:
        gate.set()
        w.stop()


def test_idempotent_task_derives_the_key_from_its_arguments(queue: Queue) -> None:
    @queue.task(idempotent=True)
    def charge(account: str, cents: int = 0) -> int:
        return cents

    a = charge.delay("acme", cents=100)
    assert charge.delay("acme", cents=100).id == a.id
    assert charge.apply_async(args=("acme",), kwargs={"cents": 100}).id == a.id
    assert charge.delay("acme", cents=200).id != a.id
    assert charge.delay("other", cents=100).id != a.id
    # One call opts out.
    assert charge.apply_async(args=("acme",), kwargs={"cents": 100}, idempotent=False).id != a.id
    # An explicit key wins over the derived one.
    assert charge.apply_async(args=("acme",), kwargs={"cents": 100}, unique_key="x").id != a.id
    assert queue.stats()["pending"] == 5


def test_a_plain_task_opts_in_per_call(queue: Queue) -> None:
    @queue.task()
    def send(to: str) -> str:
        return to

    a = send.apply_async(args=("bob",), idempotent=True)
    assert send.apply_async(args=("bob",), idempotent=True).id == a.id
    assert send.delay("bob").id != a.id  # not idempotent by default
    with pytest.raises(ValueError, match="idempotent"):
        send.apply_async(args=("bob",), idempotent="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idempotent"):
        queue.task(idempotent=1)  # type: ignore[arg-type]


def test_enqueue_many_dedups_per_item(queue: Queue) -> None:
    @queue.task()
    def work(i: int) -> int:
        return i

    live = work.apply_async(args=(0,), unique_key="k0")
    jobs = queue.enqueue_many(work.name, [(0,), (1,), (2,), (3,)], unique_keys=["k0", "k1", None, "k1"])
    ids = [j.id for j in jobs]
    assert ids[0] == live.id  # held by a pending job
    assert len({ids[1], ids[2]}) == 2 and live.id not in (ids[1], ids[2])
    assert ids[3] == ids[1]  # a key repeated inside the batch
    assert queue.stats()["pending"] == 3
    with pytest.raises(ValueError, match="unique_keys"):
        queue.enqueue_many(work.name, [(1,), (2,)], unique_keys=["a"])
    with pytest.raises(ValueError, match="unique_keys"):
        queue.enqueue_many(work.name, [(1,)], unique_keys=[""])


def test_enqueue_many_of_an_idempotent_task_derives_per_item(queue: Queue) -> None:
    @queue.task(idempotent=True)
    def work(i: int) -> int:
        return i

    before = work.delay(1)
    jobs = queue.enqueue_many(work.name, [(1,), (2,), (2,), (3,)])
    assert jobs[0].id == before.id
    assert jobs[1].id == jobs[2].id
    assert len({j.id for j in jobs}) == 3
    opted_out = queue.enqueue_many(work.name, [(1,), (1,)], idempotent=False)
    assert len({j.id for j in opted_out} | {before.id}) == 3


def test_concurrent_producer_threads_get_one_job(queue: Queue) -> None:
    @queue.task(idempotent=True)
    def once(x: int) -> int:
        return x

    ids: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def produce() -> None:
        start.wait()
        for _ in range(25):
            jid = once.delay(7).id
            many = queue.enqueue_many(once.name, [(7,), (8,)])
            with lock:
                ids.append(jid)
                ids.append(many[0].id)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(set(ids)) == 1
    assert queue.stats()["pending"] == 2  # once(7) and once(8)


PRODUCER = """
import sys
from taskito import Queue
queue = Queue(db_path=sys.argv[1])
ids = set()
for i in range(40):
    ids.add(queue.enqueue("shared", args=(1,), unique_key="the-key").id)
    ids.add(queue.enqueue_many("shared", [(2,), (3,)], unique_keys=["k2", None])[0].id)
print(" ".join(sorted(ids)))
"""


def test_concurrent_producer_processes_get_one_job_per_key(tmp_path: Path, db_path: str) -> None:
    Queue(db_path=db_path)  # creates the file once
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
    seen = [set(out.split()) for out, _ in outs]
    assert all(s == seen[0] for s in seen)
    assert len(seen[0]) == 2  # "the-key" and "k2"
    queue = Queue(db_path=db_path)
    # 2 keyed jobs + one unkeyed item per call: 4 processes x 40 calls.
    assert queue.stats()["pending"] == 2 + 4 * 40

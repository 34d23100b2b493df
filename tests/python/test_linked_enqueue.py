"""Jobs with dependencies, notes or an expiry go through their own enqueue path; it keeps
the plain path's promises: a queue's ``max_pending`` refuses what would overfill it (and
stores nothing of the batch), and idempotent calls derive their unique key."""

from __future__ import annotations

import pytest

from taskito import Queue, QueueFullError, chain


def test_max_pending_counts_and_refuses_dependent_jobs(db_path: str) -> None:
    queue = Queue(db_path=db_path, max_pending={"default": 3})

    @queue.task()
    def work(i: int) -> int:
        return i

    @queue.task(queue="other")
    def elsewhere(i: int) -> int:
        return i

    parent = work.delay(0)
    first = work.apply_async((1,), depends_on=parent)
    second = work.apply_async((2,), notes={"n": 2})
    assert queue.stats("default")["pending"] == 3
    with pytest.raises(QueueFullError, match="default"):
        work.apply_async((3,), depends_on=parent)
    with pytest.raises(QueueFullError):
        work.apply_async((4,), expires=60)
    with pytest.raises(QueueFullError):
        queue.enqueue_many(work.name, [(5,), (6,)], notes={"batch": True})
    # Nothing of the refused calls was stored: no new job, no new edge.
    assert queue.stats("default")["pending"] == 3
    assert parent.dependents == [first.id]
    # Another queue has no cap.
    for i in range(5):
        elsewhere.apply_async((i,), notes={"i": i})
    assert queue.stats("other")["pending"] == 5
    assert queue.cancel_job(second.id)
    work.apply_async((7,), depends_on=parent)  # room again


def test_a_chain_that_would_overfill_its_queue_stores_nothing(db_path: str) -> None:
    queue = Queue(db_path=db_path, max_pending={"default": 3})

    @queue.task()
    def step(x: int) -> int:
        return x + 1

    with pytest.raises(QueueFullError):
        chain(step.s(0), step.s(), step.s(), step.s()).apply()
    assert queue.stats("default")["pending"] == 0
    assert queue.list_jobs() == []
    last = chain(step.s(0), step.s(), step.s()).apply()
    assert queue.stats("default")["pending"] == 3
    while queue.process_one():
        pass
    assert last.result(timeout=5) == 3


def test_idempotent_task_with_notes_or_dependencies_derives_its_key(queue: Queue) -> None:
    @queue.task(idempotent=True)
    def charge(account: str, cents: int = 0) -> int:
        return cents

    @queue.task()
    def setup() -> None:
        return None

    a = charge.apply_async(("acme",), {"cents": 100}, notes={"by": "web"})
    assert charge.apply_async(("acme",), {"cents": 100}, notes={"by": "cli"}).id == a.id
    assert charge.delay("acme", cents=100).id == a.id  # the plain path derives the same key
    assert charge.apply_async(("acme",), {"cents": 200}, expires=60).id != a.id
    assert charge.apply_async(("acme",), {"cents": 100}, notes={}, idempotent=False).id != a.id
    assert charge.apply_async(("acme",), {"cents": 100}, notes={}, unique_key="x").id != a.id

    parent = setup.delay()
    b = charge.apply_async(("beta",), depends_on=parent)
    assert charge.apply_async(("beta",), depends_on=parent).id == b.id
    assert parent.dependents == [b.id]  # the duplicate added no edge
    assert a.notes == {"by": "web"}  # the job returned is left as it was


def test_a_plain_task_opts_in_per_call_on_the_linked_path(queue: Queue) -> None:
    @queue.task()
    def send(to: str) -> str:
        return to

    a = send.apply_async(("bob",), idempotent=True, expires=60)
    assert send.apply_async(("bob",), idempotent=True, notes={"retry": 1}).id == a.id
    assert send.apply_async(("bob",), notes={"retry": 1}).id != a.id  # not idempotent by default
    with pytest.raises(ValueError, match="idempotent"):
        send.apply_async(("bob",), idempotent="yes", notes={})  # type: ignore[arg-type]


def test_enqueue_many_with_notes_dedups_per_item(queue: Queue) -> None:
    @queue.task(idempotent=True)
    def work(i: int) -> int:
        return i

    jobs = queue.enqueue_many(work.name, [(1,), (2,), (1,)], notes={"src": "batch"})
    assert jobs[0].id == jobs[2].id != jobs[1].id
    keyed = queue.enqueue_many(work.name, [(3,), (4,)], unique_keys=["k", "k"], notes={})
    assert keyed[0].id == keyed[1].id
    opted_out = queue.enqueue_many(work.name, [(1,), (1,)], idempotent=False, notes={})
    assert opted_out[0].id != opted_out[1].id != jobs[0].id
    assert queue.stats()["pending"] == 5

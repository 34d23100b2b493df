"""``publish``: one call enqueued for every task subscribed to a topic."""

from __future__ import annotations

import pytest

from taskito import NotesValidationError, Queue, TaskMiddleware


def _subscribed(q: Queue) -> tuple:
    @q.subscribe("user.created")
    @q.task(name="welcome", queue="mail", max_retries=5)
    def welcome(user_id, plan="free"):
        return f"welcome {user_id} ({plan})"

    @q.task(name="audit")
    def audit(user_id, plan="free"):
        return ["audited", user_id, plan]

    q.subscribe("user.created", audit)
    q.subscribe("user.created", "welcome")  # twice: no second job
    return welcome, audit


def test_publish_enqueues_one_job_per_subscriber_with_its_options(queue: Queue) -> None:
    _subscribed(queue)
    assert queue.subscribers("user.created") == ["welcome", "audit"]
    jobs = queue.publish("user.created", (7,), {"plan": "pro"}, priority=3, metadata={"src": "signup"})
    assert [j.to_dict()["task_name"] for j in jobs] == ["welcome", "audit"]
    first, second = (j.to_dict() for j in jobs)
    assert (first["queue"], first["max_retries"], first["priority"]) == ("mail", 5, 3)
    assert (second["queue"], second["max_retries"], second["priority"]) == ("default", 3, 3)
    assert jobs[0].metadata == '{"src": "signup"}'
    queue.run_worker(queues=["mail", "default"], run_once=True)
    assert jobs[0].result(timeout=10) == "welcome 7 (pro)"
    assert jobs[1].result(timeout=10) == ["audited", 7, "pro"]


def test_topics_without_subscribers_and_unsubscribe(queue: Queue) -> None:
    _, audit = _subscribed(queue)
    assert queue.publish("nobody.listens", (1,)) == []
    assert queue.unsubscribe("user.created", audit) is True
    assert queue.unsubscribe("user.created", audit) is False
    assert [j.to_dict()["task_name"] for j in queue.publish("user.created", (1,))] == ["welcome"]
    assert queue.subscribers("nobody.listens") == []
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="topic"):
            queue.publish(bad, (1,))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="topic"):
            queue.subscribe(bad, audit)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task"):
        queue.subscribe("user.created", 42)


def test_publish_options_are_checked_before_anything_is_stored(queue: Queue) -> None:
    _subscribed(queue)
    with pytest.raises(ValueError, match="result_ttl"):
        queue.publish("user.created", (1,), result_ttl=-1)
    with pytest.raises(ValueError, match="delay"):
        queue.publish("user.created", (1,), delay=float("nan"))
    with pytest.raises(NotesValidationError):
        queue.publish("user.created", (1,), notes={"k" * 65: 1})
    assert queue.list_jobs() == []


def test_publish_takes_notes(queue: Queue) -> None:
    _subscribed(queue)
    jobs = queue.publish("user.created", (1,), notes={"campaign": "spring"}, result_ttl=3600)
    assert [j.notes for j in jobs] == [{"campaign": "spring"}] * 2


def test_on_enqueue_middleware_runs_once_per_job(db_path: str) -> None:
    seen = []

    class Boost(TaskMiddleware):
        def on_enqueue(self, task_name, args, kwargs, options):
            seen.append(task_name)
            options["priority"] = 9

    q = Queue(db_path=db_path, middleware=[Boost()])
    try:
        _subscribed(q)
        jobs = q.publish("user.created", (1,))
        assert seen == ["welcome", "audit"]
        assert [j.to_dict()["priority"] for j in jobs] == [9, 9]
    finally:
        q.close()


def test_publish_in_test_mode_runs_every_subscriber_inline(queue: Queue) -> None:
    _subscribed(queue)
    with queue.test_mode() as results:
        queue.publish("user.created", (3,))
    assert [(r.task_name, r.return_value) for r in results] == [
        ("welcome", "welcome 3 (free)"),
        ("audit", ["audited", 3, "free"]),
    ]

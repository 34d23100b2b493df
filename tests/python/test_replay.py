"""``queue.replay(job_id)``: a new job with the same task, arguments, options, metadata
and notes."""

from __future__ import annotations

from typing import Any

import pytest

from taskito import JobNotFoundError, JobResult, Queue


def test_replay_copies_the_job(queue: Queue, worker: Any) -> None:
    @queue.task(name="mul", queue="math", priority=3, max_retries=5)
    def mul(a, b=1):
        return a * b

    first = mul.apply_async((6,), {"b": 7}, metadata={"run": 1}, notes={"why": "test"}, timeout=12)
    assert first.result(timeout=10) == 42
    again = queue.replay(first.id)
    assert isinstance(again, JobResult) and again.id != first.id
    assert again.result(timeout=10) == 42
    a, b = first.to_dict(), again.to_dict()
    for key in ("task_name", "queue", "priority", "max_retries", "metadata", "notes", "timeout"):
        assert a[key] == b[key], key
    assert b["queue"] == "math" and b["notes"] == {"why": "test"}


def test_replay_of_an_unknown_job(queue: Queue) -> None:
    with pytest.raises(JobNotFoundError, match="nope"):
        queue.replay("nope")
    assert sum(queue.stats().values()) == 0

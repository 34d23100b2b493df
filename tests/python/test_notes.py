"""Job notes: a small JSON dict set at enqueue, checked against the limits of
``taskito.notes``, kept through the dead-letter queue, ``retry_dead`` and replay."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskito import MAX_NOTE_FIELDS, NotesValidationError, Queue, TaskitoError, notes


def make(queue: Queue) -> Any:
    @queue.task(name="echo")
    def echo(x):
        return x

    return echo


def test_notes_round_trip(queue: Queue) -> None:
    echo = make(queue)
    value = {
        "customer": "acme",
        "n": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "tags": ["a", "b"],
        "deep": {"x": {"y": 1}},
    }
    job = echo.apply_async((1,), notes=value)
    assert job.notes == value
    assert job.to_dict()["notes"] == value
    assert echo.delay(2).notes is None
    listed = {j.id: j.notes for j in queue.list_jobs()}
    assert listed[job.id] == value
    by_name = queue.enqueue("echo", (3,), notes={"via": "enqueue"})
    assert by_name.notes == {"via": "enqueue"}


def test_notes_and_waiting_jobs_appear_on_every_listing(queue: Queue) -> None:
    echo = make(queue)
    parent = echo.apply_async((1,), notes={"role": "parent"})
    child = echo.apply_async((2,), depends_on=parent, notes={"role": "child"})
    want = {parent.id: {"role": "parent"}, child.id: {"role": "child"}}
    listings = {
        "list_jobs": queue.list_jobs(),
        "list_jobs pending": queue.list_jobs(status="pending"),
        "list_jobs_after": queue.list_jobs_after(),
        "list_jobs_after pending": queue.list_jobs_after(status="pending"),
    }
    for name, listing in listings.items():
        assert {j.id: j.notes for j in listing} == want, name
    while queue.process_one():
        pass
    assert child.result(timeout=5) == 2
    time.sleep(0.01)  # finished strictly before the archive's cut-off
    assert queue.archive(older_than=0) == 2
    assert {j.id: j.notes for j in queue.list_archived()} == want
    assert {j.id: j.notes for j in queue.list_archived_after()} == want
    assert child.notes == {"role": "child"}  # read back from the archive by id


def test_enqueue_many_notes_and_notes_list(queue: Queue) -> None:
    make(queue)
    same = queue.enqueue_many("echo", [(1,), (2,)], notes={"batch": 1})
    assert [j.notes for j in same] == [{"batch": 1}, {"batch": 1}]
    each = queue.enqueue_many("echo", [(1,), (2,)], notes={"batch": 1}, notes_list=[{"i": 0}, None])
    assert [j.notes for j in each] == [{"i": 0}, None]
    with pytest.raises(ValueError, match="notes_list"):
        queue.enqueue_many("echo", [(1,)], notes_list=[{}, {}])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({f"k{i}": i for i in range(MAX_NOTE_FIELDS + 1)}, "15"),
        ({"k" * 65: 1}, "64"),
        ({"s": "x" * 501}, "500"),
        ({"a": {"b": {"c": {"d": 1}}}}, "depth"),
        ({"a": [[[1]]]}, "depth"),
        ({f"k{i}": "x" * 400 for i in range(12)}, "4096"),
        ({"nan": float("nan")}, "nan"),
        ({"inf": float("inf")}, "inf"),
        ({"obj": object()}, "obj"),
        ({1: "int key"}, "1"),
        (["not", "a", "dict"], "dict"),
    ],
)
def test_bad_notes_are_refused_and_nothing_is_stored(queue: Queue, bad: Any, match: str) -> None:
    echo = make(queue)
    with pytest.raises(NotesValidationError, match=match) as info:
        echo.apply_async((1,), notes=bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TaskitoError)
    with pytest.raises(NotesValidationError):
        queue.enqueue_many("echo", [(1,), (2,)], notes_list=[{"ok": 1}, bad])
    assert sum(queue.stats().values()) == 0


def test_limits_are_public_constants() -> None:
    assert notes.MAX_NOTE_FIELDS == MAX_NOTE_FIELDS == 15
    assert notes.MAX_NOTE_KEY_LENGTH == 64
    assert notes.MAX_NOTE_STRING_LENGTH == 500
    assert notes.MAX_NOTE_DEPTH == 3
    assert notes.MAX_NOTES_BYTES == 4096


def test_notes_survive_dead_letter_retry_and_replay(queue: Queue) -> None:
    @queue.task(name="boom", max_retries=0)
    def boom():
        raise RuntimeError("no")

    job = boom.apply_async(notes={"ticket": 7})
    assert queue.process_one() is True
    assert job.status == "dead"
    assert job.notes == {"ticket": 7}
    (letter,) = queue.dead_letters()
    again = queue.retry_dead(letter["id"])
    assert queue.get_job(again).notes == {"ticket": 7}  # type: ignore[union-attr]
    assert queue.replay(job.id).notes == {"ticket": 7}

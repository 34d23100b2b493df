"""Names of taskito 0.22 that the rest of the suite does not reach: the 0.22 spellings of
the notes limits, ``result(max_poll_interval=...)`` and ``apublish``."""

from __future__ import annotations

import asyncio

import pytest

from taskito import NotesValidationError, Queue, notes


def test_notes_limits_under_their_022_names(queue: Queue) -> None:
    assert notes.MAX_NOTE_VALUE_LENGTH == notes.MAX_NOTE_STRING_LENGTH == 500
    assert notes.MAX_NOTE_BYTES == notes.MAX_NOTES_BYTES == 4096
    assert {"MAX_NOTE_VALUE_LENGTH", "MAX_NOTE_BYTES"} <= set(notes.__all__)
    with pytest.raises(NotesValidationError, match="500"):
        notes.validate_notes({"k": "x" * (notes.MAX_NOTE_VALUE_LENGTH + 1)})


def test_result_takes_max_poll_interval(queue: Queue) -> None:
    @queue.task(name="nap")
    def nap():
        return "rested"

    job = nap.delay()
    queue.run_worker(run_once=True)
    assert job.result(timeout=5, poll_interval=2.0, max_poll_interval=0.01) == "rested"
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ValueError, match="max_poll_interval"):
            job.result(timeout=5, max_poll_interval=bad)


def test_apublish_runs_off_the_event_loop(queue: Queue) -> None:
    @queue.subscribe("ping")
    @queue.task(name="pong")
    def pong(n):
        return n + 1

    jobs = asyncio.run(queue.apublish("ping", (1,)))
    queue.run_worker(run_once=True)
    assert [j.result(timeout=5) for j in jobs] == [2]

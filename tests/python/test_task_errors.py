"""Structured task errors: a task's exception stored as compact JSON in ``job.error``, system
errors as plain text, and the exceptions and summaries built from them."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import RunningWorker
from faultkit import wait_for

from taskito import MaxRetriesExceededError, Queue, TaskFailedError
from taskito.task_errors import (
    TaskError,
    decode_task_error,
    encode_from_parts,
    encode_task_error,
    readable,
)


class Outer:
    class BadInput(ValueError):
        pass


def test_encode_is_compact_json_with_keys_in_order() -> None:
    try:
        raise Outer.BadInput("no such tenant: 7")
    except Outer.BadInput as exc:
        raw = encode_task_error(exc)
    assert raw.startswith('{"errtype":"Outer.BadInput","message":"no such tenant: 7","traceback":[')
    assert ", " not in raw.split('"traceback"')[0]  # compact separators
    data = json.loads(raw)
    assert list(data) == ["errtype", "message", "traceback"]
    assert data["traceback"][0].startswith("Traceback")
    assert any("raise Outer.BadInput" in line for line in data["traceback"])


def test_encode_from_parts_and_decode_round_trip() -> None:
    raw = encode_from_parts("KeyError", "'x'", "line 1\nline 2\n")
    err = decode_task_error(raw)
    assert err == TaskError("KeyError", "'x'", ["line 1\n", "line 2\n"], raw)
    assert err.summary() == "KeyError: 'x'"
    assert decode_task_error(encode_from_parts("Boom", "", [])).summary() == "Boom"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "ValueError: plain text from before",
        "job timed out after 5000ms",
        "{not json",
        "[1, 2]",
        '{"errtype": 3, "message": "x", "traceback": []}',
        '{"errtype": "E", "message": null, "traceback": []}',
        '{"errtype": "E", "message": "m", "traceback": "one string"}',
        '{"errtype": "E", "message": "m", "traceback": [1]}',
        '{"errtype": "", "message": "m", "traceback": []}',
    ],
)
def test_decode_refuses_legacy_and_malformed(raw: str | None) -> None:
    assert decode_task_error(raw) is None
    assert readable(raw) == raw


def test_worker_stores_task_exception_as_json(queue: Queue) -> None:
    @queue.task(max_retries=1, retry_backoff=0.01)
    def explode(n: int) -> None:
        raise Outer.BadInput(f"bad input {n}")

    dead = explode.delay(7)
    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: dead.status == "dead", 15, what="the job dead-lettered")
    finally:
        w.stop()
    err = decode_task_error(dead.error)
    assert err is not None and err.errtype == "Outer.BadInput" and err.message == "bad input 7"
    assert any("bad input" in line for line in err.traceback)
    # Every attempt's row holds the same structured form; a person reads the summary.
    rows = dead.errors
    assert len(rows) == 2
    assert all(decode_task_error(r["error"]).summary() == "Outer.BadInput: bad input 7" for r in rows)  # type: ignore[union-attr]
    assert dead.to_dict()["error"] == "Outer.BadInput: bad input 7"

    with pytest.raises(MaxRetriesExceededError) as info:
        dead.result(timeout=5)
    e = info.value
    assert (e.job_id, e.errtype, e.raw_error) == (dead.id, "Outer.BadInput", dead.error)
    assert e.traceback == err.traceback
    assert "Outer.BadInput: bad input 7" in str(e) and "{" not in str(e)


def test_system_errors_stay_plain_text(queue: Queue) -> None:
    job = queue.enqueue("nowhere.ghost")
    timed = None

    @queue.task(timeout=0.3, max_retries=0)
    def slow() -> None:
        import time

        time.sleep(5)

    timed = slow.delay()
    queue.run_worker(run_once=True)
    assert job.status == "failed" and decode_task_error(job.error) is None
    assert "not registered" in (job.error or "")
    assert timed.status in ("failed", "dead") and decode_task_error(timed.error) is None
    assert "TaskTimeoutError" in (timed.error or "")
    with pytest.raises(TaskFailedError) as info:
        job.result(timeout=1)
    assert info.value.errtype == "TaskNotRegistered" and info.value.raw_error == job.error
    assert info.value.job_id == job.id and str(info.value).endswith(job.error or "")


def test_cli_and_dashboard_show_the_summary(queue: Queue, tmp_path: object) -> None:
    from taskito.cli import ops as _cli_ops

    @queue.task(max_retries=0)
    def nope() -> None:
        raise KeyError("k")

    job = nope.delay()
    queue.run_worker(run_once=True)
    row = _cli_ops._job_row(queue._inner.get_job(job.id))
    assert row[-1] == "KeyError: 'k'"
    pytest.importorskip("starlette")
    from dashboard_support import LiveServer

    from taskito.dashboard import create_app

    with LiveServer(create_app(queue)) as server:
        with urllib.request.urlopen(f"{server.url}/jobs/{job.id}", timeout=10) as r:
            page = r.read().decode()
        with urllib.request.urlopen(f"{server.url}/jobs", timeout=10) as r:
            listing = r.read().decode()
    assert "KeyError: &#39;k&#39;" in page and "errtype" not in page
    assert "errtype" not in listing


@pytest.mark.sqlite_only
def test_a_tampered_error_is_read_as_untrusted_text(queue: Queue) -> None:
    import sqlite3

    @queue.task(max_retries=0)
    def fails() -> None:
        raise ValueError("real")

    job = fails.delay()
    queue.run_worker(run_once=True)
    forged = [
        '{"errtype": {"nested": 1}, "message": "x", "traceback": []}',
        '{"errtype": "<script>alert(1)</script>", "message": "<b>hi</b>", "traceback": []}',
        '{"errtype": "E", "message": "m", "traceback": [' + ",".join(['"line"'] * 10_000) + "]}",
    ]
    for text in forged:
        # Written by another process straight into the database.
        with sqlite3.connect(queue.db_path) as con:
            con.execute("UPDATE jobs SET error = ?", (text,))
        with pytest.raises(MaxRetriesExceededError) as info:
            job.result(timeout=1)
        decoded = decode_task_error(text)
        if decoded is None:
            assert info.value.errtype is None and info.value.raw_error == text
        else:
            assert info.value.errtype == decoded.errtype and str(info.value).endswith(decoded.summary())
    pytest.importorskip("starlette")
    from dashboard_support import LiveServer

    from taskito.dashboard import create_app

    with LiveServer(create_app(queue)) as server:
        with sqlite3.connect(queue.db_path) as con:
            con.execute("UPDATE jobs SET error = ?", (forged[1],))
        with urllib.request.urlopen(f"{server.url}/jobs", timeout=10) as r:
            listing = r.read().decode()
    assert "<script>" not in listing and "&lt;script&gt;alert(1)&lt;/script&gt;: &lt;b&gt;hi" in listing

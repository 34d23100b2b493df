"""Retention windows, their dry run and report, the archive and the explicit purges."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import pg
import pytest
from conftest import RunningWorker

from taskito import Page, Queue, Retention, current_job
from taskito.retention import DEFAULT_RETENTION


def _age_everything(db_path: str, seconds: float) -> None:
    """Moves every stored time back by ``seconds``, as if that much time had passed."""
    ms = int(seconds * 1000)
    updates = [
        "UPDATE jobs SET completed_at = completed_at - ? WHERE completed_at IS NOT NULL",
        "UPDATE job_errors SET failed_at = failed_at - ?",
        "UPDATE dead_letters SET failed_at = failed_at - ?",
        "UPDATE task_logs SET logged_at = logged_at - ?",
    ]
    if db_path.startswith("postgresql://"):
        pg.psql("SET search_path TO taskito; " + "; ".join(u.replace("?", str(ms)) for u in updates), db_path)
        return
    with sqlite3.connect(db_path) as c:
        for u in updates:
            c.execute(u, (ms,))


def _fill(q: Queue) -> dict[str, str]:
    @q.task(name="ok")
    def ok():
        current_job.log("hello")
        return 1

    @q.task(name="bad", max_retries=0)
    def bad():
        raise ValueError("no")

    done, dead = ok.delay(), bad.delay()
    q.run_worker(run_once=True)
    return {"done": done.id, "dead": dead.id}


def test_retention_validates_windows() -> None:
    assert Retention().enabled is False
    assert Retention(task_logs=10).windows_ms()["task_logs"] == 10_000
    for bad in (-1, float("nan"), "7d", True):
        with pytest.raises(ValueError, match="dead_letter"):
            Retention(dead_letter=bad)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Retention().task_logs = 5  # type: ignore[misc]


def test_defaults_and_dry_run(db_path: str) -> None:
    q = Queue(db_path=db_path)
    _fill(q)
    preview = q.dry_run_retention()
    assert preview.defaulted and preview.enabled
    assert preview.windows == DEFAULT_RETENTION.windows_ms()
    assert preview.total == 0 and set(preview.counts) == {
        "archived_jobs",
        "dead_letter",
        "task_logs",
        "task_metrics",
        "job_errors",
    }
    _age_everything(db_path, 8 * 24 * 3600)  # past 7 days, not 30
    preview = q.dry_run_retention()
    assert preview.counts == {
        "archived_jobs": 2,
        "dead_letter": 0,
        "task_logs": 1,
        "task_metrics": 0,
        "job_errors": 1,
    }
    assert preview.total == 4
    assert q.stats()["completed"] == 1, "a dry run deletes nothing"
    custom = q.dry_run_retention(Retention(dead_letter=3600))
    assert custom.counts["dead_letter"] == 1 and custom.total == 1 and not custom.defaulted


def test_result_ttl_sets_every_window_and_retention_wins(db_path: str) -> None:
    assert Queue(db_path=db_path, result_ttl=60).dry_run_retention().windows == dict.fromkeys(
        ["archived_jobs", "dead_letter", "task_logs", "task_metrics", "job_errors"], 60_000
    )
    both = Queue(db_path=db_path, result_ttl=60, retention=Retention(task_logs=5))
    assert both.dry_run_retention().windows["archived_jobs"] is None
    assert both.dry_run_retention().windows["task_logs"] == 5000
    off = Queue(db_path=db_path, retention=Retention())
    assert off.dry_run_retention().enabled is False
    with pytest.raises(ValueError, match="retention"):
        Queue(db_path=db_path, retention={"task_logs": 5})  # type: ignore[arg-type]


def test_a_worker_sweeps_by_window_without_cascade(db_path: str, caplog: pytest.LogCaptureFixture) -> None:
    q = Queue(
        db_path=db_path,
        workers=1,
        heartbeat_interval=0.2,
        stale_after=5,
        retention=Retention(archived_jobs=3600, task_logs=None, job_errors=None, dead_letter=None),
    )
    assert q.effective_retention() is None
    ids = _fill(q)
    _age_everything(db_path, 7200)
    worker = RunningWorker(q).start()
    try:
        deadline = time.monotonic() + 30
        while q.get_job(ids["done"]) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert q.get_job(ids["done"]) is None and q.get_job(ids["dead"]) is None
    # No cascade: errors, logs and the dead letter have windows of their own (None here).
    assert len(q.job_errors(ids["dead"])) == 1
    assert len(q.task_logs(ids["done"])) == 1
    assert len(q.dead_letters()) == 1
    report = q.effective_retention()
    assert report is not None and report.windows["archived_jobs"] == 3_600_000
    assert report.windows["task_logs"] is None and not report.defaulted and report.enabled


def test_defaulted_retention_warns_once(db_path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="taskito")
    q = Queue(db_path=db_path)

    @q.task(name="noop")
    def noop():
        return None

    noop.delay()
    worker = RunningWorker(q).start()
    try:
        deadline = time.monotonic() + 30
        while q.effective_retention() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        worker.stop()
    warnings = [r for r in caplog.records if "no retention configured" in r.getMessage()]
    assert len(warnings) == 1, "once, as the worker starts (and sweeps)"
    report = q.effective_retention()
    assert report is not None and report.defaulted


def test_purge_completed_cascades(db_path: str) -> None:
    q = Queue(db_path=db_path)
    ids = _fill(q)
    assert q.purge_completed() == 0  # default: older than a day
    assert q.purge_completed(older_than=0) == 1
    assert q.get_job(ids["done"]) is None and q.task_logs(ids["done"]) == []
    assert q.get_job(ids["dead"]) is not None  # not complete: kept
    with pytest.raises(ValueError, match="older_than"):
        q.purge_completed(older_than=-1)
    assert q.purge_completed(older_than=2**63) == 0


def test_archive_keeps_jobs_readable_and_pages_cleanly(db_path: str) -> None:
    q = Queue(db_path=db_path)

    @q.task(name="sq")
    def sq(x):
        return x * x

    jobs = q.enqueue_many("sq", [(i,) for i in range(7)])
    q.run_worker(run_once=True)
    pending = sq.delay(99)
    assert q.archive() == 0
    assert q.archive(older_than=0) == 7
    assert q.stats()["completed"] == 0 and pending.status == "pending"
    assert jobs[3].status == "complete" and jobs[3].result(timeout=1) == 9
    assert [j.id for j in q.list_archived(limit=3)] == [j.id for j in reversed(jobs)][:3]
    seen: list[str] = []
    page = q.list_archived_after(limit=3)
    assert isinstance(page, Page) and len(page) == 3
    while True:
        seen += [j.id for j in page]
        if page.next_cursor is None:
            break
        # New finished jobs archived meanwhile never make a page skip or repeat a row.
        page = q.list_archived_after(limit=3, after=page.next_cursor)
    assert seen == [j.id for j in reversed(jobs)]
    with pytest.raises(ValueError):
        q.list_archived(limit=-1)
    with pytest.raises(ValueError, match="cursor"):
        q.list_archived_after(after="garbage")

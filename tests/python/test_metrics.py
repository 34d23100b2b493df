"""Prometheus metrics: the database gauges at ``/metrics`` of the dashboard, and a worker's
own counters and histogram behind ``taskito worker --metrics-port``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import run_cli, start_cli, wait_for, write_app
from dashboard_support import LiveServer, free_port

from taskito import Queue

pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from taskito.metrics import outcome_of  # noqa: E402


def _scrape(url: str) -> dict[str, list]:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_dashboard_metrics_match_stats(queue: Queue) -> None:
    pytest.importorskip("starlette")
    from taskito.dashboard import create_app

    @queue.task(queue="mail")
    def send(i: int) -> int:
        return i

    @queue.task(max_retries=0)
    def bad() -> None:
        raise ValueError("no")

    send.delay(1)
    send.delay(2)
    bad.delay()
    queue.run_worker(run_once=True)
    send.delay(3)
    queue.enqueue("other", queue="reports")
    with LiveServer(create_app(queue)) as server:
        families = _scrape(server.url + "/metrics")
    jobs = {(s.labels["queue"], s.labels["status"]): s.value for s in families["taskito_queue_jobs"]}
    stats = queue.stats_all_queues()
    assert set(stats) == {"mail", "default", "reports"}
    for name, counts in stats.items():
        # A queue no task of this process uses counts under one shared label value.
        label = name if name != "reports" else "_other"
        for status, n in counts.items():
            assert jobs[(label, status)] == n
    assert jobs[("mail", "completed")] == 2 and jobs[("mail", "pending")] == 1
    assert jobs[("default", "dead")] == 1
    # The run_once worker above has stopped: none alive now.
    assert [s.value for s in families["taskito_workers_alive"]] == [0]


def test_outcome_names() -> None:
    assert outcome_of((True, b""), 0, 3) == "complete"
    assert outcome_of((False, "ValueError: x", "", True), 0, 3) == "retry"
    assert outcome_of((False, "ValueError: x", "", True), 3, 3) == "dead"
    assert outcome_of((False, "TaskNotRegistered: y", "", False), 0, 3) == "failed"
    assert outcome_of((False, "TaskCancelledError: z", "", True), 0, 3) == "cancelled"


def test_worker_serves_its_counters(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    app = write_app(
        tmp_path,
        db,
        body="""
        @queue.task(name="flaky", max_retries=1, retry_backoff=0.01)
        def flaky():
            raise RuntimeError("always")
        """,
    )
    port = free_port()
    worker = start_cli("worker", "--app", app, "--metrics-port", str(port), cwd=tmp_path)
    queue = Queue(db_path=db)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def up() -> bool:
            assert worker.poll() is None, worker.communicate()
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="the metrics port")
        for i in range(3):
            queue.enqueue("add", (i, i))
        queue.enqueue("flaky", max_retries=1)
        queue.enqueue("missing.task")
        wait_for(
            lambda: (
                queue.stats()["completed"] == 3
                and queue.stats()["dead"] == 1
                and queue.stats()["failed"] == 1
            ),
            timeout=60,
            what="the jobs to finish",
        )
        families = _scrape(url)
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    processed = {
        (s.labels["task"], s.labels["outcome"]): s.value
        for s in families["taskito_jobs_processed"]
        if s.name == "taskito_jobs_processed_total"
    }
    assert processed == {
        ("add", "complete"): 3,
        ("flaky", "retry"): 1,
        ("flaky", "dead"): 1,
        ("_other", "failed"): 1,  # an unregistered task name gets no series of its own
    }
    counts = {
        s.labels["task"]: s.value
        for s in families["taskito_job_duration_seconds"]
        if s.name == "taskito_job_duration_seconds_count"
    }
    assert counts == {"add": 3, "flaky": 2, "_other": 1}
    assert all("job" not in label for s in families["taskito_jobs_processed"] for label in s.labels)
    assert [s.value for s in families["taskito_workers_alive"]] == [1]
    jobs = {(s.labels["queue"], s.labels["status"]): s.value for s in families["taskito_queue_jobs"]}
    assert jobs[("default", "completed")] == 3


def test_bad_metrics_port_is_refused(tmp_path: Path) -> None:
    app = write_app(tmp_path, str(tmp_path / "q.db"))
    out = run_cli("worker", "--app", app, "--metrics-port", "70000", "--run-once", cwd=tmp_path)
    assert out.returncode == 2
    assert "metrics port" in out.stderr

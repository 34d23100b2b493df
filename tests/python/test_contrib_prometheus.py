"""taskito.contrib.prometheus: the 0.22 metric names, counted by the middleware and polled by
the stats collector, read back from the real prometheus_client registry and HTTP server."""

from __future__ import annotations

import time
import urllib.request

import prometheus_client
import pytest
from conftest import RunningWorker

from taskito import Queue
from taskito.contrib.prometheus import PrometheusMiddleware, PrometheusStatsCollector, start_metrics_server

REGISTRY = prometheus_client.REGISTRY


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_middleware_counts_runs_and_retries(tmp_path):
    mw = PrometheusMiddleware(namespace="tkt_mw", task_filter=lambda name: not name.endswith("skipped"))
    assert PrometheusMiddleware(namespace="tkt_mw")._m is mw._m  # shared per namespace
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10,
                  middleware=[mw], default_retry=1)  # fmt: skip

    @queue.task()
    def ok() -> int:
        return 1

    @queue.task(retry_backoff=0.01)
    def bad() -> None:
        raise ValueError("x")

    @queue.task()
    def skipped() -> None:
        pass

    jobs = [ok.delay(), ok.delay(), bad.delay(), skipped.delay()]
    w = RunningWorker(queue).start()
    for j in jobs:
        try:
            j.result(timeout=30)
        except Exception:
            pass
    w.stop()
    assert value("tkt_mw_jobs_total", task=ok.name, status="completed") == 2
    assert value("tkt_mw_jobs_total", task=bad.name, status="failed") == 2
    assert value("tkt_mw_retries_total", task=bad.name) == 1
    assert value("tkt_mw_job_duration_seconds_count", task=ok.name) == 2
    assert value("tkt_mw_jobs_total", task=skipped.name, status="completed") == 0
    assert value("tkt_mw_active_workers") == 0
    queue.close()


def test_stats_collector_and_server(tmp_path):
    queue = Queue(db_path=str(tmp_path / "q.db"), default_retry=0)
    for _ in range(3):
        queue.enqueue("some.task", queue="mail")
    collector = PrometheusStatsCollector(queue, interval=0.05, namespace="tkt_stats")
    collector.start()
    deadline = time.monotonic() + 10
    while value("tkt_stats_queue_depth", queue="mail") != 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    collector.stop()
    assert value("tkt_stats_queue_depth", queue="mail") == 3
    assert value("tkt_stats_dlq_size") == 0
    server = start_metrics_server(0)
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'tkt_stats_queue_depth{queue="mail"} 3.0' in body
    with pytest.raises(ValueError, match="disabled_metrics"):
        PrometheusStatsCollector(queue, disabled_metrics=["everything"])
    with pytest.raises(ValueError, match="interval"):
        PrometheusStatsCollector(queue, interval=0)
    queue.close()

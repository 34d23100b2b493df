"""OpenTelemetry: producer and consumer spans joined across processes and linked across a
retry, on worker threads, the async lane and prefork children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, RunningWorker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskito import Queue
from taskito.contrib.otel import TRACE_METADATA_KEY, OpenTelemetryMiddleware
from taskito.exceptions import TaskitoError

HERE = Path(__file__).resolve().parent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory, provider  # type: ignore[return-value]


def worker_process(db: str, spans: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OTEL_TEST_DB": db, "OTEL_TEST_SPANS": str(spans)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "taskito", "worker", "--app", "otel_app:queue", *extra],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(HERE),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def read_spans(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_producer_and_consumer_joined_across_processes_and_linked_across_a_retry(tmp_path, exporter):
    memory, provider = exporter
    db = str(tmp_path / "q.db")
    queue = Queue(db_path=db, middleware=[OpenTelemetryMiddleware(tracer_provider=provider)], default_retry=1)
    marker = str(tmp_path / "ran-once")
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request_span:
        job = queue.enqueue("otel_app.flaky", args=(marker,))
    produced = [s for s in memory.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER]
    assert len(produced) == 1
    producer = produced[0]
    assert producer.parent.span_id == request_span.get_span_context().span_id
    assert producer.attributes["messaging.system"] == "taskito"
    assert producer.attributes["messaging.destination.name"] == "default"
    assert producer.attributes["messaging.operation.type"] == "send"
    stored = json.loads(job.metadata)[TRACE_METADATA_KEY]
    assert stored["traceparent"].split("-")[2] == f"{producer.context.span_id:016x}"

    spans_file = tmp_path / "spans.jsonl"
    worker_process(db, spans_file, "--max-jobs", "2", "--workers", "1")
    assert job.refresh().status == "complete"
    runs = [s for s in read_spans(spans_file) if s["kind"] == "CONSUMER"]
    assert len(runs) == 2
    first, retry = runs
    trace_id = f"{producer.context.trace_id:032x}"
    producer_id = f"{producer.context.span_id:016x}"
    for run in runs:
        assert run["pid"] != os.getpid()
        assert run["trace_id"] == trace_id
        assert run["parent"] == producer_id
        assert run["name"] == "taskito.execute.otel_app.flaky"
        assert run["attributes"]["messaging.message.id"] == job.id
        assert run["attributes"]["messaging.operation.type"] == "process"
        assert run["attributes"]["taskito.job_id"] == job.id
        assert run["attributes"]["taskito.queue"] == "default"
    assert first["status"] == "ERROR"
    assert "exception" in first["events"] and "retry" in first["events"]
    assert first["attributes"]["taskito.retry_count"] == 0
    assert first["links"] == []
    assert retry["status"] == "OK"
    assert retry["attributes"]["taskito.retry_count"] == 1
    assert retry["links"] == [producer_id]
    queue.close()


def test_prefork_children_continue_the_trace(tmp_path, exporter):
    memory, provider = exporter
    db = str(tmp_path / "q.db")
    queue = Queue(db_path=db, middleware=[OpenTelemetryMiddleware(tracer_provider=provider)])
    jobs = [queue.enqueue("otel_app.async_echo", args=(i,)) for i in range(2)]
    spans_file = tmp_path / "spans.jsonl"
    worker_process(db, spans_file, "--pool", "prefork", "--workers", "1", "--max-jobs", "2")
    producers = {f"{s.context.span_id:016x}" for s in memory.get_finished_spans()}
    runs = [s for s in read_spans(spans_file) if s["kind"] == "CONSUMER"]
    assert sorted(r["attributes"]["messaging.message.id"] for r in runs) == sorted(j.id for j in jobs)
    assert {r["parent"] for r in runs} == producers
    assert all(r["status"] == "OK" for r in runs)
    queue.close()


def test_threads_and_async_lane_in_process(tmp_path, exporter):
    memory, provider = exporter
    tracing = OpenTelemetryMiddleware(tracer_provider=provider)
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=2, scheduler_poll_interval_ms=10,
                  middleware=[tracing], default_retry=0)  # fmt: skip

    @queue.task()
    def child_span(x: int) -> int:
        # A span made inside the task is a child of the run span.
        with provider.get_tracer("inner").start_as_current_span("inner work"):
            return x

    @queue.task()
    async def lane(x: int) -> int:
        with provider.get_tracer("inner").start_as_current_span("inner async"):
            return x

    @queue.task()
    def broken() -> None:
        raise KeyError("nope")

    jobs = [child_span.delay(1), lane.delay(2), broken.delay()]
    w = RunningWorker(queue).start()
    for j in jobs[:2]:
        j.result(timeout=30)
    with pytest.raises(TaskitoError):
        jobs[2].result(timeout=30)
    w.stop()
    spans = memory.get_finished_spans()
    by_name = {s.name: s for s in spans}
    for inner, task in (("inner work", child_span), ("inner async", lane)):
        run = by_name[f"taskito.execute.{task.name}"]
        assert by_name[inner].parent.span_id == run.context.span_id
        producer = next(s for s in spans if s.name == f"taskito.enqueue.{task.name}")
        assert run.parent.span_id == producer.context.span_id
    failed = by_name[f"taskito.execute.{broken.name}"]
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in failed.events][:1] == ["exception"]
    assert failed.events[0].attributes["exception.type"] == "KeyError"
    queue.close()


def test_no_provider_stores_nothing_and_makes_no_span(tmp_path):
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    queue = Queue(db_path=str(tmp_path / "q.db"), middleware=[OpenTelemetryMiddleware()])
    job = queue.enqueue("x", args=(1,), metadata={"k": 1})
    assert json.loads(job.metadata) == {"k": 1}
    queue.close()


def test_metadata_kept_and_joined(tmp_path, exporter):
    memory, provider = exporter
    queue = Queue(
        db_path=str(tmp_path / "q.db"), middleware=[OpenTelemetryMiddleware(tracer_provider=provider)]
    )
    as_dict = json.loads(queue.enqueue("x", metadata={"tenant": "a"}).metadata)
    assert as_dict["tenant"] == "a" and "traceparent" in as_dict[TRACE_METADATA_KEY]
    as_text = json.loads(queue.enqueue("x", metadata='{"tenant": "b"}').metadata)
    assert as_text["tenant"] == "b" and TRACE_METADATA_KEY in as_text
    # Metadata that is not a JSON object is left alone.
    assert queue.enqueue("x", metadata="plain words").metadata == "plain words"
    queue.close()


@pytest.mark.parametrize(
    "stored",
    [
        '{"otel": {"traceparent": "00-zzzz-0000000000000001-01"}}',
        '{"otel": {"traceparent": 5}}',
        '{"otel": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
        '{"otel": {"traceparent": "' + "0" * 5000 + '"}}',
        "not json {",
    ],
)
def test_tampered_trace_context_is_ignored(tmp_path, exporter, stored):
    memory, provider = exporter
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10,
                  middleware=[OpenTelemetryMiddleware(tracer_provider=provider, propagate=True)])  # fmt: skip

    @queue.task()
    def ok() -> int:
        return 1

    job = queue.enqueue(ok.name)  # through the middleware: a valid context
    # Written as another process could: the tampered text straight into the job's metadata.
    payload = ok._plan.dump_call(ok.name, (), {})
    raw = queue._inner.enqueue(ok.name, [payload], queue="default", priority=0, delay=0.0, max_retries=0,
                               retry_backoff=1.0, timeout=30.0, metadata=stored)  # fmt: skip
    w = RunningWorker(queue).start()
    assert queue.get_job(raw[0]).result(timeout=30) == 1
    job.result(timeout=30)
    w.stop()
    runs = {s.attributes["messaging.message.id"]: s for s in memory.get_finished_spans()
            if s.kind == trace.SpanKind.CONSUMER}  # fmt: skip
    assert runs[raw[0]].parent is None  # a root span: nothing forged was followed
    assert runs[job.id].parent is not None
    queue.close()

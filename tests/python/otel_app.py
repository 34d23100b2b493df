"""An app for the tracing tests' worker processes: an SDK tracer provider whose spans are
written, one JSON object a line, to ``OTEL_TEST_SPANS`` as each span ends."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from taskito import Queue
from taskito.contrib.otel import OpenTelemetryMiddleware


def span_record(span: ReadableSpan) -> dict[str, object]:
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [e.name for e in span.events],
        "pid": os.getpid(),
    }


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as f:
            for span in spans:
                f.write(json.dumps(span_record(span)) + "\n")
        return SpanExportResult.SUCCESS


if os.environ.get("OTEL_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["OTEL_TEST_SPANS"])))
    trace.set_tracer_provider(provider)

queue = Queue(
    db_path=os.environ.get("OTEL_TEST_DB", ".taskito/otel.db"),
    middleware=[OpenTelemetryMiddleware()],
    default_retry=1,
)


@queue.task(retry_backoff=0.01)
def flaky(marker: str) -> str:
    """Fails on its first run (the marker file is missing), then succeeds."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first run fails")
    return "ok"


@queue.task()
async def async_echo(x: int) -> int:
    return x

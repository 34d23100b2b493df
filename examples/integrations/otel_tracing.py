"""One trace from the enqueue to the run: a PRODUCER span where the job is enqueued, a
CONSUMER span, its child, where a worker runs it (here both in one process; across
processes it works the same, the trace context travels in the job's metadata)."""

import tempfile

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskito import Queue
from taskito.contrib.otel import OpenTelemetryMiddleware

spans = InMemorySpanExporter()  # in production: an OTLP exporter
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)

queue = Queue(db_path=f"{tempfile.mkdtemp()}/tasks.db", middleware=[OpenTelemetryMiddleware()])


@queue.task()
def resize(image: str, width: int) -> str:
    return f"{image}@{width}"


if __name__ == "__main__":
    with trace.get_tracer("web").start_as_current_span("POST /upload"):
        job = resize.delay("cat.png", width=320)
    queue.run_worker(run_once=True)
    print("result:", job.result(timeout=10))
    for span in sorted(spans.get_finished_spans(), key=lambda s: s.start_time):
        parent = f"{span.parent.span_id:016x}" if span.parent else "-"
        print(f"{span.kind.name:<9} {span.name:<48} span {span.context.span_id:016x} parent {parent}")

"""OpenTelemetry tracing of jobs (``pip install taskito[otel]``).

``OpenTelemetryMiddleware`` opens a ``PRODUCER`` span when a job is enqueued and stores its
W3C trace context in the job's metadata (key ``"otel"``); the worker that runs the job, in
any process, opens a ``CONSUMER`` span whose parent is that context, so one trace joins the
request that enqueued a job and every run of it. A retry is a new run span, linked to the
producer span. Spans carry the messaging semantic conventions (``messaging.system`` is
``"taskito"``) beside the ``<prefix>.*`` attributes.

With no tracer provider configured (the OpenTelemetry API's default) every hook returns at
once: nothing is stored with the job and no span is made.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import propagate as otel_propagate
from opentelemetry import trace
from opentelemetry.trace import Link, NoOpTracerProvider, ProxyTracerProvider, SpanKind, Status, StatusCode

from taskito.context import current_job
from taskito.contrib._filtering import EnqueueContext, FilteredMiddleware

__all__ = ["OpenTelemetryMiddleware", "TRACE_METADATA_KEY"]

log = logging.getLogger("taskito")

TRACE_METADATA_KEY = "otel"
"""The key of the job's metadata (a JSON object) that holds the producer's trace context."""

# A trace context read back from the database is untrusted: anything larger than a W3C
# traceparent plus a generous tracestate is ignored.
_MAX_CARRIER_BYTES = 1024
_MAX_METADATA_BYTES = 64 * 1024
_UNKNOWN = object()


class OpenTelemetryMiddleware(FilteredMiddleware):
    """Traces enqueues (``PRODUCER`` spans) and runs (``CONSUMER`` spans) of jobs.

    ``span_name_fn(ctx)`` names run spans (default ``<prefix>.execute.<task>``);
    ``extra_attributes_fn(ctx)`` returns more attributes for a run span; ``task_filter`` /
    ``predicate`` choose the jobs traced. ``tracer_provider`` (default: the global one) and
    ``propagate`` (store and follow trace context, default True) are taskito's own.
    """

    def __init__(
        self,
        tracer_name: str = "taskito",
        *,
        span_name_fn: Callable[[Any], str] | None = None,
        attribute_prefix: str = "taskito",
        extra_attributes_fn: Callable[[Any], dict[str, Any]] | None = None,
        task_filter: Callable[[str], bool] | None = None,
        predicate: Callable[[Any], Any] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        propagate: bool = True,
    ) -> None:
        super().__init__(task_filter=task_filter, predicate=predicate)
        if not isinstance(tracer_name, str) or not tracer_name:
            raise ValueError(f"tracer_name must be a non-empty string, got {tracer_name!r}")
        if not isinstance(attribute_prefix, str) or not attribute_prefix:
            raise ValueError(f"attribute_prefix must be a non-empty string, got {attribute_prefix!r}")
        for option, value in (("span_name_fn", span_name_fn), ("extra_attributes_fn", extra_attributes_fn)):
            if value is not None and not callable(value):
                raise ValueError(f"{option} must be callable, got {value!r}")
        self.tracer_name = tracer_name
        self.span_name_fn = span_name_fn
        self.attribute_prefix = attribute_prefix
        self.extra_attributes_fn = extra_attributes_fn
        self.propagate = bool(propagate)
        self._provider = tracer_provider
        self._provider_from_env = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
        self._tracer: tuple[Any, trace.Tracer] | None = None
        # Job id -> (span, context token or None, producer span context or None).
        self._runs: dict[str, tuple[trace.Span, Any, Any]] = {}

    # -- which tracer -------------------------------------------------------------------

    def _active_tracer(self) -> trace.Tracer | None:
        """The tracer to use, or None when no tracer provider is configured."""
        provider = self._provider
        if provider is None:
            # Called twice per job: the API's own getter looks up an environment variable
            # each time (microseconds), so while no provider is set, and none is named by
            # that variable, the module's global says so at the cost of one attribute read.
            provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
            if provider is None and not self._provider_from_env:
                return None
            if provider is None or provider is _UNKNOWN:
                provider = trace.get_tracer_provider()
        if isinstance(provider, (ProxyTracerProvider, NoOpTracerProvider)):
            return None
        cached = self._tracer
        if cached is None or cached[0] is not provider:
            cached = (provider, provider.get_tracer(self.tracer_name))
            self._tracer = cached
        return cached[1]

    # -- enqueue: the producer span -----------------------------------------------------

    def on_enqueue(self, task_name: str, args: tuple, kwargs: dict, options: dict[str, Any]) -> None:
        tracer = self._active_tracer()
        if tracer is None or not self.applies(task_name, EnqueueContext(task_name, args, kwargs)):
            return
        p = self.attribute_prefix
        queue_name = options.get("queue") or "default"
        attributes = {
            "messaging.system": "taskito",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": queue_name,
            f"{p}.task_name": task_name,
            f"{p}.queue": queue_name,
        }
        with tracer.start_as_current_span(
            f"{p}.enqueue.{task_name}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            if self.propagate:
                carrier: dict[str, str] = {}
                otel_propagate.inject(carrier)
                if carrier:
                    options["metadata"] = _with_carrier(options.get("metadata"), carrier)

    # -- run: the consumer span ---------------------------------------------------------

    def before(self, ctx: Any) -> None:
        tracer = self._active_tracer()
        if tracer is None or not self.applies(ctx.task_name, ctx):
            return
        parent = None
        producer = None
        if self.propagate:
            parent = _stored_context(ctx)
            if parent is not None:
                found = trace.get_current_span(parent).get_span_context()
                producer = found if found.is_valid else None
        p = self.attribute_prefix
        attributes: dict[str, Any] = {
            "messaging.system": "taskito",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": ctx.queue_name,
            "messaging.message.id": ctx.id,
            f"{p}.job_id": ctx.id,
            f"{p}.task_name": ctx.task_name,
            f"{p}.queue": ctx.queue_name,
            f"{p}.retry_count": ctx.retry_count,
            f"{p}.worker_id": ctx.worker_id,
        }
        if self.extra_attributes_fn is not None:
            try:
                attributes.update(self.extra_attributes_fn(ctx) or {})
            except Exception:
                log.exception("extra_attributes_fn raised for job %s; its attributes are left out", ctx.id)
        name = f"{p}.execute.{ctx.task_name}"
        if self.span_name_fn is not None:
            try:
                name = str(self.span_name_fn(ctx))
            except Exception:
                log.exception("span_name_fn raised for job %s; using %s", ctx.id, name)
        # A retry is a run of its own: linked to the producer span besides being its child.
        links = [Link(producer, {f"{p}.link": "retry"})] if producer is not None and ctx.retry_count else None
        span = tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._runs[ctx.id] = (span, token, producer)

    def after(self, ctx: Any, result: Any, error: BaseException | None) -> None:
        if not self._runs:
            return
        run = self._runs.get(ctx.id)
        if run is None:
            return
        span, token, _ = run
        if token is not None:
            otel_context.detach(token)
            self._runs[ctx.id] = (span, None, None)
        if error is None:
            span.set_status(Status(StatusCode.OK))
            self._end(ctx.id)
            return
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        # The span ends in the hook that tells how the run ended (retry, dead letter, cancel).

    def on_retry(self, ctx: Any, error: BaseException, retry_count: int) -> None:
        run = self._runs.get(ctx.id)
        if run is not None:
            run[0].add_event("retry", {f"{self.attribute_prefix}.retry_count": retry_count})
        self._end(ctx.id)

    def on_dead_letter(self, ctx: Any, error: BaseException) -> None:
        run = self._runs.get(ctx.id)
        if run is not None:
            run[0].add_event("dead_letter")
        self._end(ctx.id)

    def on_timeout(self, ctx: Any) -> None:
        run = self._runs.get(ctx.id)
        if run is not None:
            run[0].add_event("timeout")

    def on_cancel(self, ctx: Any) -> None:
        self._end(ctx.id)

    def _end(self, job_id: str) -> None:
        run = self._runs.pop(job_id, None)
        if run is not None:
            run[0].end()


def _with_carrier(metadata: Any, carrier: dict[str, str]) -> Any:
    """The job's metadata with the trace context added; metadata that is not a JSON object
    is left as it is (the job is then not joined to the trace)."""
    if metadata is None:
        return {TRACE_METADATA_KEY: carrier}
    if isinstance(metadata, dict):
        return {**metadata, TRACE_METADATA_KEY: carrier}
    if isinstance(metadata, str):
        try:
            decoded = json.loads(metadata)
        except ValueError:
            return metadata
        if isinstance(decoded, dict):
            decoded[TRACE_METADATA_KEY] = carrier
            return decoded
    return metadata


def _stored_context(ctx: Any) -> Any:
    """The producer's trace context stored with the running job, or None. The stored text
    is untrusted: anything but a small object of strings is ignored, and the propagator
    validates the values themselves."""
    core = getattr(current_job._ctx(), "core", None)
    if core is None:
        return None
    try:
        row = core.get_job(ctx.id)
    except Exception:
        return None
    raw = row.get("metadata") if row else None
    if not isinstance(raw, str) or len(raw) > _MAX_METADATA_BYTES or TRACE_METADATA_KEY not in raw:
        return None
    try:
        decoded = json.loads(raw)
    except ValueError:
        return None
    carrier = decoded.get(TRACE_METADATA_KEY) if isinstance(decoded, dict) else None
    if not isinstance(carrier, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()):
        return None
    if sum(len(k) + len(v) for k, v in carrier.items()) > _MAX_CARRIER_BYTES:
        return None
    return otel_propagate.extract(carrier)

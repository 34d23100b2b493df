"""Predicates attached to tasks and middleware: the checks at enqueue and at dispatch, the
``Queue`` calls that inspect them, and the middleware filter."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from taskito.events import EventType
from taskito.exceptions import PredicateRejectedError
from taskito.predicates.core import (
    Cancel,
    Defer,
    Outcome,
    Predicate,
    PredicateAction,
    PredicateContext,
    PredicateMetrics,
    PredicateValidationError,
    coerce_predicate,
    evaluate_predicate,
)
from taskito.predicates.registry import default_registry

if TYPE_CHECKING:
    from taskito.task import TaskWrapper

_ON_FALSE = ("defer", "cancel")


def _utc(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, timezone.utc)


class TaskGate:
    """A task's predicate and what a denial does."""

    def __init__(
        self, predicate: Any, on_false: Any, extras: dict[str, Any] | None, default_defer_seconds: Any
    ) -> None:
        if isinstance(on_false, PredicateAction):
            on_false = on_false.value
        if on_false not in _ON_FALSE:
            raise ValueError(f"on_false must be one of 'defer', 'cancel', got {on_false!r}")
        d = default_defer_seconds
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            raise ValueError(f"default_defer_seconds must be a number >= 0, got {d!r}")
        if extras is not None and not isinstance(extras, dict):
            raise ValueError(f"predicate_extras must be a dict, got {extras!r}")
        self.predicate: Predicate | None = None if predicate is None else coerce_predicate(predicate)
        self.on_false = on_false
        self.extras = dict(extras or {})
        self.default_defer_seconds = float(d)

    def _decide(self, queue: Any, ctx: PredicateContext) -> Outcome:
        assert self.predicate is not None
        outcome = evaluate_predicate(self.predicate, ctx, metrics=predicate_metrics(queue))
        if outcome is False:
            if self.on_false == "cancel":
                return Cancel("predicate returned False")
            return Defer(self.default_defer_seconds)
        return outcome

    def at_enqueue(
        self,
        queue: Any,
        task: TaskWrapper,
        args: tuple,
        kwargs: dict | None,
        priority: int | None,
        delay: float | None,
        queue_name: str | None,
    ) -> float | None:
        """The delay to store the job with; ``PredicateRejectedError`` if it must not be."""
        kwargs = kwargs or {}
        q = queue_name or task.queue_name
        now = time.time()
        ctx = PredicateContext(
            task_name=task.name,
            queue=q,
            priority=priority if priority is not None else (task.priority or queue.default_priority),
            retry_count=0,
            args=tuple(args),
            kwargs=dict(kwargs),
            job_id=None,
            scheduled_at=datetime.fromtimestamp(now + (delay or 0.0), timezone.utc),
            created_at=datetime.fromtimestamp(now, timezone.utc),
            payload_size=len(task._plan.dump_call(task.name, tuple(args), kwargs)),
            extras=dict(self.extras),
            _queue=queue,
        )
        outcome = self._decide(queue, ctx)
        if outcome is True:
            return delay
        if isinstance(outcome, Cancel):
            queue._emit(
                EventType.PREDICATE_REJECTED,
                {"task_name": task.name, "queue": q, "phase": "enqueue", "reason": outcome.reason},
            )
            raise PredicateRejectedError(task.name, outcome.reason)
        assert isinstance(outcome, Defer)
        queue._emit(
            EventType.PREDICATE_DEFERRED,
            {
                "task_name": task.name,
                "queue": q,
                "defer_seconds": outcome.seconds,
                "phase": "enqueue",
                "job_id": None,
            },
        )
        return (delay or 0.0) + outcome.seconds

    def at_dispatch(
        self,
        queue: Any,
        task: TaskWrapper,
        payload: bytes,
        args: tuple,
        kwargs: dict,
        job_id: str,
        queue_name: str,
        retry_count: int,
    ) -> tuple | None:
        """None to run the job; otherwise the worker's answer for a job the predicate
        stopped: it ends ``cancelled`` (for a Defer, after a fresh copy is stored)."""
        row = queue._inner.get_job(job_id) or {}
        ctx = PredicateContext(
            task_name=task.name,
            queue=queue_name,
            priority=row.get("priority", 0),
            retry_count=retry_count,
            args=tuple(args),
            kwargs=dict(kwargs),
            job_id=job_id,
            scheduled_at=_utc(row.get("scheduled_at")),
            created_at=_utc(row.get("created_at")),
            payload_size=len(payload),
            extras=dict(self.extras),
            _queue=queue,
        )
        outcome = self._decide(queue, ctx)
        if outcome is True:
            return None
        if isinstance(outcome, Cancel):
            error = (
                f"cancelled by predicate: {outcome.reason}" if outcome.reason else "cancelled by predicate"
            )
            queue._emit(
                EventType.PREDICATE_CANCELLED,
                {"task_name": task.name, "queue": queue_name, "phase": "dispatch", "reason": outcome.reason},
            )
        else:
            assert isinstance(outcome, Defer)
            # The copy carries the stored bytes as they are: it is the same call, and the
            # enqueue-time predicate is not asked again for it.
            (new_id,) = queue._inner.enqueue(
                task.name,
                [payload],
                queue=queue_name,
                priority=row.get("priority", 0),
                delay=outcome.seconds,
                max_retries=row.get("max_retries", 0),
                retry_backoff=float(task.retry_backoff),
                timeout=row.get("timeout", queue.default_timeout),
                unique_key=None,
                metadata=row.get("metadata"),
                unique_keys=None,
                max_pending=None,
                result_ttls=None,
            )
            error = f"deferred by predicate: re-enqueued as job {new_id} in {outcome.seconds:g}s"
            queue._emit(
                EventType.PREDICATE_DEFERRED,
                {
                    "task_name": task.name,
                    "queue": queue_name,
                    "defer_seconds": outcome.seconds,
                    "phase": "dispatch",
                    "job_id": job_id,
                    "new_job_id": new_id,
                },
            )
        # A cancel flag on the running job makes the store end it cancelled, not failed.
        queue._inner.cancel_running_job(job_id)
        return (False, error, "", False)


def predicate_metrics(queue: Any) -> PredicateMetrics:
    metrics = getattr(queue, "_predicate_metrics", None)
    if metrics is None:
        metrics = queue._predicate_metrics = PredicateMetrics()
    return metrics


def make_gate(predicate: Any, on_false: Any, extras: Any, default_defer_seconds: Any) -> TaskGate | None:
    """The gate of ``@queue.task``'s predicate options, checked even without a predicate;
    None when there is no predicate."""
    gate = TaskGate(predicate, on_false, extras, default_defer_seconds)
    return gate if gate.predicate is not None else None


def _entry(predicate: Predicate | None) -> dict[str, Any] | None:
    if predicate is None:
        return None
    try:
        return predicate.to_dict()
    except PredicateValidationError:
        return None


class PredicatesMixin:
    """The predicate calls of ``Queue``."""

    _tasks: dict[str, Any]

    def list_predicates(self) -> dict[str, dict[str, Any] | None]:
        """Each gated task's predicate as ``to_dict()`` (None for a plain callable)."""
        return {name: _entry(t._gate.predicate) for name, t in self._tasks.items() if t._gate is not None}

    def predicate_for(self, task: Any) -> dict[str, Any] | None:
        """One task's entry of ``list_predicates()`` (a task or its name); None if it has no
        predicate or no serialized form."""
        name = getattr(task, "name", task)
        wrapper = self._tasks.get(name)
        if wrapper is None or wrapper._gate is None:
            return None
        return _entry(wrapper._gate.predicate)

    def predicate_stats(self) -> dict[str, int]:
        """Evaluations in this process by outcome: ``allowed, denied, deferred, cancelled,
        errors``."""
        return predicate_metrics(self).snapshot()

    def register_predicate(self, op: str, *, replace: bool = False) -> Callable[[type], type]:
        """Class decorator: registers a custom op (setting its ``OP``) for ``from_dict`` and
        ``parse``."""

        def decorate(cls: type) -> type:
            return default_registry().register(op, cls, replace=replace)

        return decorate


def middleware_allows(m: Any, hook: str, args: tuple) -> bool:
    """Whether middleware ``m`` runs for this hook call: its predicate (which wins) or its
    ``task_filter(task_name)`` decides; a denial skips only this middleware."""
    predicate = getattr(m, "predicate", None)
    task_filter = getattr(m, "task_filter", None)
    if hook == "on_enqueue":
        task_name, call_args, call_kwargs, options = args
        ctx = PredicateContext(
            task_name=task_name,
            queue=options.get("queue") or "default",
            priority=options.get("priority") or 0,
            args=tuple(call_args),
            kwargs=dict(call_kwargs),
        )
    else:
        job = args[0]
        try:
            ctx = PredicateContext(
                task_name=job.task_name, queue=job.queue_name, retry_count=job.retry_count, job_id=job.id
            )
        except RuntimeError:  # no job in this thread
            return True
    if predicate is not None:
        return evaluate_predicate(predicate, ctx) is True
    return task_filter is None or bool(task_filter(ctx.task_name))

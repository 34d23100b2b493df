"""Events: ``queue.on_event(EventType.JOB_COMPLETED, callback)``.

Callbacks never run on an engine thread or a worker thread: emitting puts the event on a
queue, and one dispatcher thread per ``Queue`` (started by the first ``on_event``) calls the
callbacks. A slow callback only delays other callbacks; one that raises is logged. With no
callback registered, emitting costs one attribute check."""

from __future__ import annotations

import atexit
import enum
import logging
import queue as _queue
import threading
from typing import Any, Callable

__all__ = ["EventType", "EventBus"]

log = logging.getLogger("taskito.events")

EventCallback = Callable[["EventType", dict[str, Any]], Any]


class EventType(str, enum.Enum):
    """What happened. The value is the event's name as a string."""

    JOB_ENQUEUED = "job.enqueued"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_RETRYING = "job.retrying"
    JOB_DEAD = "job.dead"
    JOB_CANCELLED = "job.cancelled"
    WORKER_STARTED = "worker.started"
    WORKER_STOPPED = "worker.stopped"
    WORKER_ONLINE = "worker.online"
    WORKER_OFFLINE = "worker.offline"
    WORKER_UNHEALTHY = "worker.unhealthy"
    QUEUE_PAUSED = "queue.paused"
    QUEUE_RESUMED = "queue.resumed"
    WORKFLOW_SUBMITTED = "workflow.submitted"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_COMPLETED_WITH_FAILURES = "workflow.completed_with_failures"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_CANCELLED = "workflow.cancelled"
    WORKFLOW_GATE_REACHED = "workflow.gate_reached"
    WORKFLOW_COMPENSATING = "workflow.compensating"
    WORKFLOW_COMPENSATED = "workflow.compensated"
    WORKFLOW_COMPENSATION_FAILED = "workflow.compensation_failed"
    NODE_COMPENSATING = "workflow.node_compensating"
    NODE_COMPENSATED = "workflow.node_compensated"
    NODE_COMPENSATION_FAILED = "workflow.node_compensation_failed"
    PREDICATE_DEFERRED = "predicate.deferred"
    PREDICATE_CANCELLED = "predicate.cancelled"
    PREDICATE_REJECTED = "predicate.rejected"
    # In 0.22's set of events; taskito never emits it either.
    PREDICATE_SKIPPED = "predicate.skipped"


class _Dispatcher:
    """One daemon thread that delivers queued events to the callbacks."""

    def __init__(self, listeners: dict[EventType, list[EventCallback]]) -> None:
        self._listeners = listeners
        self._queue: _queue.SimpleQueue[tuple[EventType, dict[str, Any]] | None] = _queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="taskito-events", daemon=True)
        self._thread.start()
        # Events queued before the interpreter exits are still delivered (boundedly).
        atexit.register(self.flush, 2.0)

    def put(self, event_type: EventType, payload: dict[str, Any]) -> None:
        self._queue.put((event_type, payload))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event_type, payload = item
            for callback in list(self._listeners.get(event_type, ())):
                try:
                    callback(event_type, dict(payload))
                except Exception:
                    log.exception("event callback %r for %s raised", callback, event_type.name)

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until every event queued so far was delivered; False on timeout. A
        callback's own call returns False at once: it would wait for itself."""
        if threading.current_thread() is self._thread:
            return False
        done = threading.Event()
        self._queue.put((_FLUSH, {"done": done}))
        return done.wait(timeout)


# A private marker event: its one "callback" sets the flush flag.
_FLUSH = "__flush__"


def _set_done(_event_type: Any, payload: dict[str, Any]) -> None:
    payload["done"].set()


class EventBus:
    """A standalone event bus: ``on(event_type, callback)`` registers, ``emit(event_type,
    payload)`` returns at once and the callbacks run on a pool of ``max_workers`` threads.
    A callback that raises is logged and does not affect the others."""

    def __init__(self, max_workers: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self._listeners: dict[EventType, list[EventCallback]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="taskito-event-bus")

    def on(self, event_type: EventType, callback: EventCallback) -> EventCallback:
        if not isinstance(event_type, EventType):
            raise ValueError(f"event_type must be a taskito.EventType, got {event_type!r}")
        if not callable(callback):
            raise ValueError(f"callback must be callable, got {callback!r}")
        with self._lock:
            self._listeners.setdefault(event_type, []).append(callback)
        return callback

    def emit(self, event_type: EventType, payload: dict[str, Any]) -> None:
        for callback in list(self._listeners.get(event_type, ())):
            self._pool.submit(_call, callback, event_type, dict(payload))

    def shutdown(self, wait: bool = True) -> None:
        """Stops the pool (after running what was emitted, with ``wait``)."""
        self._pool.shutdown(wait=wait)


def _call(callback: EventCallback, event_type: EventType, payload: dict[str, Any]) -> None:
    try:
        callback(event_type, payload)
    except Exception:
        log.exception("event callback %r for %s raised", callback, event_type.name)

"""Event callbacks: ``queue.on_event(EventType.X, callback)`` (see ``taskito.events``)."""

from __future__ import annotations

import threading
from typing import Any

from taskito.events import _FLUSH, EventCallback, EventType, _Dispatcher, _set_done
from taskito.facets.base import QueueState


class Events(QueueState):
    """``on_event`` of ``Queue`` (``_emit`` is in ``facets.base``)."""

    def _init_events(self) -> None:
        self._listeners = {_FLUSH: [_set_done]}
        self._dispatcher = None
        self._events_lock = threading.Lock()

    def on_event(self, event_type: EventType, callback: EventCallback | None = None) -> Any:
        """Registers ``callback(event_type, payload)`` for one event type; usable as
        ``queue.on_event(EventType.X, fn)`` or as a decorator ``@queue.on_event(EventType.X)``."""
        if not isinstance(event_type, EventType):
            raise ValueError(f"event_type must be a taskito.EventType, got {event_type!r}")

        def register(fn: EventCallback) -> EventCallback:
            if not callable(fn):
                raise ValueError(f"callback must be callable, got {fn!r}")
            with self._events_lock:
                self._listeners.setdefault(event_type, []).append(fn)
                if self._dispatcher is None:
                    self._dispatcher = _Dispatcher(self._listeners)
            return fn

        return register(callback) if callback is not None else register

    @property
    def _event_bus(self) -> Any:
        """This queue's bus, as ``taskito.events.EventBus`` offers it (``on``/``emit``)."""
        return _QueueBus(self)

    def _flush_events(self, timeout: float = 5.0) -> bool:
        """Waits until queued events were delivered (tests, shutdown)."""
        dispatcher = self._dispatcher
        return True if dispatcher is None else dispatcher.flush(timeout)


class _QueueBus:
    """``queue._event_bus``: ``on`` registers like ``queue.on_event``, ``emit`` queues an
    event for this queue's callbacks (webhooks included)."""

    def __init__(self, queue: Events) -> None:
        self._queue = queue

    def on(self, event_type: EventType, callback: EventCallback) -> EventCallback:
        return self._queue.on_event(event_type, callback)  # type: ignore[no-any-return]

    def emit(self, event_type: EventType, payload: dict[str, Any]) -> None:
        self._queue._emit(event_type, payload)

"""What the worker's modules need of the ``Queue`` that runs them, as small protocols: they
read the task registry, the payloads, the engine and the hooks, and emit events, and touch
nothing else of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from taskito._taskito import QueueCore
    from taskito.events import EventType
    from taskito.payload.plan import Payloads
    from taskito.task import TaskWrapper


class EventSink(Protocol):
    """Where a job's events go: the queue's event thread (None until a callback is
    registered) and its ``_emit``."""

    @property
    def _dispatcher(self) -> object | None: ...

    def _emit(self, event_type: EventType, payload: dict[str, Any]) -> None: ...


class JobHost(EventSink, Protocol):
    """What running one job needs: the task registry, the payloads, the engine (for the job
    context), the task hooks and the worker's metrics (None when off)."""

    @property
    def _tasks(self) -> Mapping[str, TaskWrapper]: ...

    @property
    def _payloads(self) -> Payloads: ...

    @property
    def _inner(self) -> QueueCore: ...

    @property
    def _hooks(self) -> Mapping[str, list[Callable[..., Any]]]: ...

    @property
    def _metrics(self) -> Any: ...


class Stoppable(Protocol):
    """A queue whose running worker can be asked to drain."""

    def shutdown(self) -> None: ...

"""The state every method group of ``Queue`` shares, declared once and typed, and the few
primitives they all build on: the job options of one call (``JobOptions``), resolving them
against the task and queue defaults, ``on_enqueue`` middleware, a task's payload plan and
emitting an event. ``taskito.app.Queue.__init__`` sets the state up; a group reads it here
and never declares it again."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Callable, TypedDict

from taskito import _settings as settings
from taskito._taskito import QueueCore
from taskito.events import EventType
from taskito.middleware import TaskMiddleware, call_each
from taskito.result import JobResult

if TYPE_CHECKING:
    from taskito.events import EventCallback, _Dispatcher
    from taskito.facets.links import JobSpec
    from taskito.payload.plan import Payloads, Plan
    from taskito.periodic import _Schedule
    from taskito.retention import Retention
    from taskito.task import TaskWrapper
    from taskito.testing import TestResult, TestResults


class JobOptions(TypedDict):
    """The options of one enqueue call that ``enqueue``, ``enqueue_many``, ``publish``,
    ``TaskWrapper.apply_async`` and test mode share, as ``on_enqueue`` middleware sees and
    edits them. None means: the task's own option, else the queue's default."""

    priority: int | None
    delay: float | None
    queue: str | None
    max_retries: int | None
    timeout: float | None
    unique_key: str | None
    metadata: Any


#: The options that decide how a job runs (the others only matter to a stored job).
RUN_OPTIONS = ("priority", "delay", "queue", "max_retries", "timeout")

#: Each shared option's default in every public signature that takes it.
JOB_OPTION_DEFAULTS: JobOptions = dict.fromkeys(JobOptions.__annotations__)  # type: ignore[assignment]


def run_options(options: JobOptions) -> dict[str, Any]:
    """The ``RUN_OPTIONS`` of ``options``, as keyword arguments."""
    return {k: options[k] for k in RUN_OPTIONS}  # type: ignore[literal-required]


def job_options(
    priority: int | None = None,
    delay: float | None = None,
    queue: str | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
    unique_key: str | None = None,
    metadata: Any = None,
) -> JobOptions:
    """The options of one call as a ``JobOptions``."""
    return {
        "priority": priority,
        "delay": delay,
        "queue": queue,
        "max_retries": max_retries,
        "timeout": timeout,
        "unique_key": unique_key,
        "metadata": metadata,
    }


def check_result_ttl(result_ttl: Any) -> float | None:
    """A per-job ``result_ttl``: seconds a finished job is kept (None: the queue decides)."""
    if result_ttl is None:
        return None
    return settings.check_seconds("result_ttl", result_ttl)


def result_ttls(result_ttl: Any, result_ttl_list: Any, count: int) -> list[float | None] | None:
    """One checked ``result_ttl`` per job of a batch (``result_ttl_list`` wins), or None when
    no job has one."""
    if result_ttl_list is not None:
        ttls = list(result_ttl_list)
        if len(ttls) != count:
            raise ValueError("result_ttl_list must be as long as args_list")
        return [check_result_ttl(t) for t in ttls]
    if result_ttl is None:
        return None
    return [check_result_ttl(result_ttl)] * count


def metadata_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be a string or JSON-serializable: {exc}") from None


class QueueState:
    """What the method groups of ``Queue`` read and write: the engine, the task registry,
    the payloads, the options and the per-feature state. Set by ``Queue.__init__``."""

    # -- the engine and what jobs are made of
    _inner: QueueCore
    #: How the store was resolved (backend, URL, schema): what transactional enqueue reads.
    _store_settings: Any
    _tasks: dict[str, TaskWrapper]
    _payloads: Payloads
    _middleware: tuple[TaskMiddleware, ...]
    # Resolved options of a task's plain `delay()`, by task name.
    _default_options: dict[str, dict[str, Any]]
    _max_pending: dict[str, int]

    # -- defaults and worker settings (public attributes)
    backend: str
    db_path: str
    default_retry: int
    default_timeout: float
    default_priority: int
    drain_timeout: float
    scheduler_poll_interval_ms: int
    heartbeat_interval: float
    stale_after: float
    async_concurrency: int
    max_tasks_per_child: int | None
    _workers: int
    _running: threading.Lock
    _metrics: Any  # taskito.metrics.Metrics once enabled

    # -- per-feature state
    _hooks: dict[str, list[Callable[..., Any]]]
    _periodic: dict[str, _Schedule]
    _subscriptions: dict[str, list[str]]
    _retention: Retention
    _retention_defaulted: bool
    _listeners: dict[Any, list[EventCallback]]
    _dispatcher: _Dispatcher | None
    _events_lock: threading.Lock
    _test_results: TestResults | None = None
    _test_propagate: bool = False

    if TYPE_CHECKING:
        # Defined by one group, called by others.
        task: Callable[..., Any]
        _job_spec: Callable[..., JobSpec]
        _enqueue_specs: Callable[[list[JobSpec]], list[JobResult]]
        _run_inline: Callable[..., TestResult]
        _flush_events: Callable[..., bool]
        _check_retry_rules: Callable[[], None]
        _webhooks: Any
        _webhook_manager: Any
        _register_periodic: Callable[[], None]
        _worker_hooks: Callable[[str], None]
        _load_result: Callable[[str, bytes | None], Any]
        workers: Callable[[], list[dict[str, Any]]]

    # -- primitives -------------------------------------------------------------------------

    def _emit(self, event_type: EventType, payload: dict[str, Any]) -> None:
        """Queues an event for its callbacks; a no-op unless one is registered for it.
        Safe from any thread; never blocks and never raises."""
        dispatcher = self._dispatcher
        if dispatcher is not None and event_type in self._listeners:
            dispatcher.put(event_type, payload)

    def _emit_enqueued(self, job_id: str, task_name: str, queue: str) -> None:
        self._emit(EventType.JOB_ENQUEUED, {"job_id": job_id, "task_name": task_name, "queue": queue})

    def _job(self, job_id: str) -> JobResult:
        """The handle of a stored job; ``self`` is always the whole ``Queue``."""
        return JobResult(self, job_id)  # type: ignore[arg-type]

    def _plan_for(self, task_name: str) -> Plan:
        task = self._tasks.get(task_name)
        return task._plan if task is not None else self._payloads.queue_plan

    def _options(
        self,
        task_name: str,
        priority: int | None,
        delay: float | None,
        queue: str | None,
        max_retries: int | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        """The checked run options of one job (``RUN_OPTIONS`` plus ``retry_backoff``)."""
        if priority is None and delay is None and queue is None and max_retries is None and timeout is None:
            # The common case (`task.delay(...)`): the same checked options every time.
            cached = self._default_options.get(task_name)
            if cached is None:
                cached = self._resolve_options(task_name, None, None, None, None, None)
                if task_name in self._tasks:
                    self._default_options[task_name] = cached
            return cached
        return self._resolve_options(task_name, priority, delay, queue, max_retries, timeout)

    def _resolve_options(
        self,
        task_name: str,
        priority: int | None,
        delay: float | None,
        queue: str | None,
        max_retries: int | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        task = self._tasks.get(task_name)
        if not isinstance(task_name, str) or not task_name:
            raise ValueError(f"task_name must be a non-empty string, got {task_name!r}")
        priority = settings.first(priority, task and task.priority, default=self.default_priority)
        max_retries = settings.first(max_retries, task and task.max_retries, default=self.default_retry)
        timeout = settings.first(timeout, task and task.timeout, default=self.default_timeout)
        queue = settings.first(queue, task and task.queue_name, default="default")
        return {
            "queue": settings.check_queue_name("queue", queue),
            "priority": settings.check_int("priority", priority),
            "delay": 0.0 if delay is None else settings.check_seconds("delay", delay),
            "max_retries": settings.check_int("max_retries", max_retries, minimum=0),
            "retry_backoff": float(task.retry_backoff) if task else 1.0,
            "timeout": settings.check_seconds("timeout", timeout, positive=True),
        }

    def _enqueue_chain(self, task_name: str) -> tuple[TaskMiddleware, ...]:
        task = self._tasks.get(task_name)
        return task._middleware_chain() if task is not None else self._middleware

    def _on_enqueue(
        self,
        chain: tuple[TaskMiddleware, ...],
        task_name: str,
        args: tuple,
        kwargs: dict,
        options: JobOptions,
    ) -> JobOptions:
        """Runs each middleware's ``on_enqueue`` over a copy of the job's options; returns
        them as edited (checked again like any option when the job is stored)."""
        edited = options.copy()
        call_each(chain, "on_enqueue", task_name, tuple(args), kwargs, edited)
        return edited

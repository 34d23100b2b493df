"""``Queue``: the object users create. Its constructor checks the options and opens the
engine; ``task()`` registers functions. Everything else it does comes from its method
groups in ``taskito.facets``, one module per area, listed below in the order a reader
meets them."""

from __future__ import annotations

import atexit
import inspect
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar, overload

from taskito import _backend
from taskito import _settings as settings
from taskito._taskito import QueueCore, flush_logs
from taskito._transactional import TransactionalEnqueue
from taskito.batching import BatchAccumulator, BatchConfig, flush_all, per_item_checked
from taskito.facets.async_twins import AsyncTwins
from taskito.facets.enqueue import Enqueue
from taskito.facets.events import Events
from taskito.facets.hooks import HOOK_KINDS, Hooks
from taskito.facets.inspect import Inspection
from taskito.facets.job_control import JobControl
from taskito.facets.links import Links
from taskito.facets.pages import Pages
from taskito.facets.pause import Pause
from taskito.facets.periodic import PeriodicSchedules
from taskito.facets.resilience import Resilience
from taskito.facets.results import Results
from taskito.facets.retention import RetentionCalls
from taskito.facets.task_logs import TaskLogs
from taskito.facets.test_mode import TestMode
from taskito.facets.topics import Topics
from taskito.facets.webhooks import Webhooks
from taskito.facets.workers import Workers
from taskito.flow_control import check_max_concurrent, check_max_pending, parse_rate_limit
from taskito.middleware import TaskMiddleware, check_middleware
from taskito.payload.plan import Payloads
from taskito.predicates.gate import PredicatesMixin, make_gate
from taskito.resilience.breaker import CircuitBreaker
from taskito.resilience.retry_rules import RetryRules
from taskito.retention import Retention, resolve
from taskito.task import AsyncTaskWrapper, P, TaskDecorator, TaskWrapper

log = logging.getLogger("taskito")
# A library leaves output to the application: without a handler configured anywhere, records
# are dropped instead of reaching logging's last-resort stderr handler.
log.addHandler(logging.NullHandler())
# Engine records still queued when the interpreter exits reach logging before it shuts down.
atexit.register(flush_logs)


_R = TypeVar("_R")


class Queue(
    TransactionalEnqueue,
    Enqueue,
    Links,
    Topics,
    Inspection,
    Pages,
    JobControl,
    TaskLogs,
    Pause,
    PeriodicSchedules,
    RetentionCalls,
    Hooks,
    Events,
    Resilience,
    Webhooks,
    Workers,
    TestMode,
    Results,
    AsyncTwins,
    PredicatesMixin,
):
    """A task queue stored in one SQLite file.

    Options left as ``None`` come from the ``TASKITO_*`` environment variables, then from
    the defaults shown in the docs (``db_path=".taskito/taskito.db"``, ``workers=0`` for
    the CPU count, ``drain_timeout=30``, ``scheduler_poll_interval_ms=50``).

    ``serializer`` (default ``SmartSerializer()``), ``codec`` (a codec or a list: the chain
    around every payload and result) and ``codecs`` (named codecs tasks pick with
    ``@queue.task(codecs=[...])``) say how payloads are stored; ``secret_key`` (or
    ``TASKITO_SECRET_KEY``) signs them, bound to their task (arguments) or job (results), so
    workers refuse bytes written or moved by anyone without the key; a list of keys signs
    with the first and verifies with any. A database file created here gets the permission
    bits ``file_mode`` (default ``0o600``: the owner only). ``max_payload_bytes`` and
    ``max_metadata_bytes`` refuse (``ValueError``) an enqueue whose encoded arguments or
    metadata are larger. See ``docs/guides/trust.md``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        workers: int | None = None,
        default_retry: int = 3,
        default_timeout: float = 300,
        default_priority: int = 0,
        result_ttl: float | None = None,
        drain_timeout: float | None = None,
        scheduler_poll_interval_ms: int | None = None,
        durability: str = "normal",
        heartbeat_interval: float = 2.0,
        stale_after: float = 10.0,
        middleware: list[TaskMiddleware] | None = None,
        retention: Retention | None = None,
        backend: str | None = None,
        db_url: str | None = None,
        schema: str = "taskito",
        pool_size: int | None = None,
        notify: bool | None = None,
        async_concurrency: int = 100,
        max_tasks_per_child: int | None = None,
        max_pending: dict[str, int] | None = None,
        serializer: Any = None,
        codec: Any = None,
        codecs: dict[str, Any] | None = None,
        secret_key: str | bytes | list[str | bytes] | None = None,
        file_mode: int | None = None,
        max_payload_bytes: int | None = None,
        max_metadata_bytes: int | None = None,
    ) -> None:
        level = settings.env_log_level()
        if level is not None:
            log.setLevel(level)
        path = os.fspath(db_path) if db_path is not None else None
        store = _backend.resolve(path, backend, db_url, schema, pool_size, notify)
        self._store_settings = store
        self.backend = store.backend
        #: The SQLite file, or for PostgreSQL the URL without its password.
        self.db_path = store.shown
        self.db_url: str | None = store.shown if store.db_url is not None else None
        self.schema: str = store.schema
        self._workers = settings.check_int(
            "workers",
            settings.first(workers, settings.env_workers(), default=0),
            minimum=0,
            maximum=settings.MAX_WORKERS,
        )
        self.default_retry = settings.check_int("default_retry", default_retry, minimum=0)
        self.default_timeout = settings.check_seconds("default_timeout", default_timeout, positive=True)
        self.default_priority = settings.check_int("default_priority", default_priority)
        self.result_ttl = None if result_ttl is None else settings.check_seconds("result_ttl", result_ttl)
        self.drain_timeout = settings.check_seconds(
            "drain_timeout",
            settings.first(drain_timeout, settings.env_drain_timeout(), default=30.0),
        )
        self.scheduler_poll_interval_ms = settings.check_int(
            "scheduler_poll_interval_ms",
            settings.first(scheduler_poll_interval_ms, settings.env_poll_interval_ms(), default=50),
            minimum=1,
            maximum=settings.MAX_POLL_INTERVAL_MS,
        )
        if durability not in ("normal", "full"):
            raise ValueError(f'durability must be "normal" or "full", got {durability!r}')
        self.durability = durability
        self.heartbeat_interval = settings.check_seconds(
            "heartbeat_interval", heartbeat_interval, positive=True, maximum=settings.MAX_HEARTBEAT_INTERVAL
        )
        self.stale_after = settings.check_seconds("stale_after", stale_after, positive=True)
        if self.stale_after <= self.heartbeat_interval:
            raise ValueError("stale_after must be longer than heartbeat_interval")
        self._middleware = check_middleware("middleware", middleware)
        self._retention, self._retention_defaulted = resolve(retention, self.result_ttl)
        self.async_concurrency = settings.check_int("async_concurrency", async_concurrency, minimum=1)
        self.max_tasks_per_child = (
            None
            if max_tasks_per_child is None
            else settings.check_int("max_tasks_per_child", max_tasks_per_child, minimum=1)
        )
        self._payloads = Payloads(
            serializer,
            codec,
            codecs,
            settings.first(secret_key, settings.env_secret_key(), default=None),
            max_payload_bytes,
            max_metadata_bytes,
        )
        mode = settings.check_file_mode("file_mode", settings.first(file_mode, default=0o600))
        self._inner = QueueCore(
            store.db_path,
            durability,
            file_mode=mode,
            backend=store.backend,
            db_url=store.db_url,
            schema=store.schema,
            pool_size=store.pool_size,
            notify=store.notify,
        )
        self._tasks = {}
        self._default_options = {}
        self._hooks = {k: [] for k in HOOK_KINDS}
        self._running = threading.Lock()
        self._metrics = None
        self._max_pending = check_max_pending(max_pending)
        self._periodic = {}
        self._subscriptions = {}
        self._init_events()

    def __repr__(self) -> str:
        return f"<taskito.Queue {self.db_path!r} tasks={len(self._tasks)}>"

    def close(self) -> None:
        """Releases every database connection this queue holds; safe to call twice (a
        queue used again after it reconnects on demand). Buffered batches
        (``@queue.task(batch=...)``) are flushed first."""
        flush_all(self)
        self._inner.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tasks ---------------------------------------------------------------------------

    # For type checkers: a decorated function keeps its signature (``TaskWrapper[P, R]``;
    # an ``async def`` gives ``AsyncTaskWrapper[P, R]`` with ``R`` what it returns).
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, _R]], /) -> AsyncTaskWrapper[P, _R]: ...
    @overload
    def task(self, fn: Callable[P, _R], /) -> TaskWrapper[P, _R]: ...
    @overload
    def task(
        self,
        fn: str | None = None,
        *,
        name: str | None = None,
        max_retries: int | None = None,
        retry_backoff: float = 1.0,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str = "default",
        middleware: list[TaskMiddleware] | None = None,
        rate_limit: str | None = None,
        max_concurrent: int | None = None,
        idempotent: bool = False,
        expires: float | None = None,
        serializer: Any = None,
        codecs: list[str] | None = None,
        batch: Any = None,
        predicate: Any = None,
        on_false: str = "defer",
        predicate_extras: dict[str, Any] | None = None,
        default_defer_seconds: float = 60.0,
        circuit_breaker: dict[str, Any] | None = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        soft_timeout: float | None = None,
        retry_delays: list[float] | None = None,
        max_retry_delay: float | None = None,
        retry_budget: str | None = None,
    ) -> TaskDecorator: ...
    def task(
        self,
        fn: Callable[..., Any] | str | None = None,
        *,
        name: str | None = None,
        max_retries: int | None = None,
        retry_backoff: float = 1.0,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str = "default",
        middleware: list[TaskMiddleware] | None = None,
        rate_limit: str | None = None,
        max_concurrent: int | None = None,
        idempotent: bool = False,
        expires: float | None = None,
        serializer: Any = None,
        codecs: list[str] | None = None,
        batch: Any = None,
        predicate: Any = None,
        on_false: str = "defer",
        predicate_extras: dict[str, Any] | None = None,
        default_defer_seconds: float = 60.0,
        circuit_breaker: dict[str, Any] | None = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        soft_timeout: float | None = None,
        retry_delays: list[float] | None = None,
        max_retry_delay: float | None = None,
        retry_budget: str | None = None,
    ) -> Any:
        """Registers a function as a task; use as ``@queue.task()``, ``@queue.task`` or
        ``@queue.task("name")``.
        ``expires``: seconds after enqueue past which a job not yet started is cancelled.
        ``serializer`` (None: the queue's) encodes its arguments and result; ``codecs`` names
        codecs of ``Queue(codecs=...)`` applied to its arguments.
        ``retry_on``/``dont_retry_on`` (exception classes), ``retry_delays``,
        ``max_retry_delay``, ``retry_budget``, ``circuit_breaker`` and ``soft_timeout``:
        see ``taskito.resilience`` and ``current_job.check_timeout()``."""
        task_middleware = check_middleware("middleware", middleware)
        gate = make_gate(predicate, on_false, predicate_extras, default_defer_seconds)
        batch_config = BatchConfig.normalize(batch)
        if batch_config is not None and idempotent:
            raise ValueError("batch= cannot be combined with idempotent=True: a batch is one job of many")
        if rate_limit is not None:
            parse_rate_limit(rate_limit)
        check_max_concurrent(max_concurrent)
        if not isinstance(idempotent, bool):
            raise ValueError(f"idempotent must be True or False, got {idempotent!r}")
        if max_retries is not None:
            settings.check_int("max_retries", max_retries, minimum=0)
        settings.check_seconds("retry_backoff", retry_backoff)
        if timeout is not None:
            settings.check_seconds("timeout", timeout, positive=True)
        if priority is not None:
            settings.check_int("priority", priority)
        settings.check_queue_name("queue", queue)
        if expires is not None:
            settings.check_seconds("expires", expires, positive=True)
        plan = self._payloads.for_task(serializer, codecs)
        if soft_timeout is not None:
            settings.check_seconds("soft_timeout", soft_timeout, positive=True)
        rule_options = (retry_on, dont_retry_on, retry_delays, max_retry_delay, retry_budget)
        RetryRules.build("", *rule_options)  # checked now, built per name below
        if circuit_breaker is not None:
            CircuitBreaker("", circuit_breaker)

        def register(f: Callable[..., Any]) -> TaskWrapper:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            existing = self._tasks.get(task_name)
            if (
                existing is not None
                and existing.__wrapped__ is not f
                and (getattr(existing.__wrapped__, "__code__", None) is not getattr(f, "__code__", None))
            ):
                raise ValueError(
                    f"a different function is already registered as task {task_name!r}; "
                    "pass name= to tell them apart"
                )
            kind = AsyncTaskWrapper if inspect.iscoroutinefunction(f) else TaskWrapper
            wrapper = kind(
                self,
                f,
                task_name,
                max_retries,
                retry_backoff,
                timeout,
                priority,
                queue,
                task_middleware,
                rate_limit=rate_limit,
                max_concurrent=max_concurrent,
                idempotent=idempotent,
            )
            wrapper.expires = expires
            wrapper._plan = plan
            wrapper._gate = gate
            if batch_config is not None:
                wrapper._batch = BatchAccumulator(self, wrapper, batch_config)
                if batch_config.per_item_results:
                    wrapper.fn = per_item_checked(f)
            # Left unset (the class's None) for a task without them: dispatch reads one
            # attribute per run and nothing more.
            if soft_timeout is not None:
                wrapper.soft_timeout = soft_timeout
            rules = RetryRules.build(task_name, *rule_options)
            if rules is not None:
                wrapper._retry_rules = rules
            if circuit_breaker is not None:
                wrapper._breaker = CircuitBreaker(task_name, circuit_breaker)
            self._tasks[task_name] = wrapper
            self._default_options.pop(task_name, None)
            return wrapper

        if fn is None:
            return register
        if isinstance(fn, str):
            # `@queue.task("name")`: the name given positionally, as 0.22 takes it.
            if name is not None:
                raise ValueError(f"task name given twice: {fn!r} and name={name!r}")
            name = fn
            return register
        if not callable(fn):
            raise ValueError(f"@queue.task takes a function or a task name, got {fn!r}")
        return register(fn)

    @property
    def tasks(self) -> dict[str, TaskWrapper]:
        """Registered tasks by name."""
        return dict(self._tasks)

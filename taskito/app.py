"""``Queue``: the object users create. It holds the task registry and the hooks, turns
calls into stored jobs, and runs workers on the Rust engine."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable

from taskito import _backend, _prefork, _transactional
from taskito import _settings as settings
from taskito._async_pool import AsyncPool, async_task_names
from taskito._dispatch import make_dispatch
from taskito._inspect import Inspection
from taskito._links import LinksMixin, result_ttls
from taskito._operations import AsyncOperations, Operations
from taskito._paging import Pagination
from taskito._signals import _signals_drain
from taskito._taskito import QueueCore, flush_logs
from taskito._topics import TopicsMixin
from taskito._transactional import TransactionalEnqueue
from taskito.events import EventsMixin, EventType
from taskito.exceptions import JobNotFoundError, TaskitoError
from taskito.flow_control import (
    check_max_concurrent,
    check_max_pending,
    check_unique_keys,
    idempotency_key,
    is_idempotent,
    parse_rate_limit,
    register_limits,
    unique_keys_for,
)
from taskito.middleware import TaskMiddleware, call_each, check_middleware
from taskito.pause import Pause
from taskito.periodic import PeriodicMixin
from taskito.result import JobResult
from taskito.retention import Retention, RetentionCalls, resolve
from taskito.serializer import PayloadMixin, Payloads
from taskito.task import TaskWrapper
from taskito.testing import TestModeMixin

log = logging.getLogger("taskito")
# A library leaves output to the application: without a handler configured anywhere, records
# are dropped instead of reaching logging's last-resort stderr handler.
log.addHandler(logging.NullHandler())
# Engine records still queued when the interpreter exits reach logging before it shuts down.
atexit.register(flush_logs)

_run_counter = itertools.count(1)
_HOOK_KINDS = (
    "before_task",
    "on_success",
    "on_failure",
    "after_task",
    "on_worker_start",
    "on_worker_stop",
)


def _default_worker_id() -> str:
    """``<hostname>-<pid>`` for the first worker of this process, then ``-2``, ``-3``..."""
    n = next(_run_counter)
    base = f"{socket.gethostname()}-{os.getpid()}"
    return base if n == 1 else f"{base}-{n}"


_inline_counter = itertools.count(1)
_inline_ids = threading.local()


def _inline_worker_id() -> str:
    """The id under which ``process_one`` and ``execute_job`` run jobs in the calling
    thread: ``<hostname>-<pid>-inline-<n>``, one per thread, so repeated calls reuse one
    registry row and calls from different threads never share one."""
    wid = getattr(_inline_ids, "worker_id", None)
    if wid is None:
        wid = f"{socket.gethostname()}-{os.getpid()}-inline-{next(_inline_counter)}"
        _inline_ids.worker_id = wid
    return wid


def _metadata(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be a string or JSON-serializable: {exc}") from None


class Queue(
    TransactionalEnqueue,
    Inspection,
    Operations,
    RetentionCalls,
    AsyncOperations,
    Pause,
    Pagination,
    PeriodicMixin,
    LinksMixin,
    EventsMixin,
    TestModeMixin,
    PayloadMixin,
    TopicsMixin,
):
    """A task queue stored in one SQLite file.

    Options left as ``None`` come from the ``TASKITO_*`` environment variables, then from
    the defaults shown in the docs (``db_path=".taskito/taskito.db"``, ``workers=0`` for
    the CPU count, ``drain_timeout=30``, ``scheduler_poll_interval_ms=50``).

    ``serializer`` (default ``SmartSerializer()``), ``codec`` (a codec or a list: the chain
    around every payload and result) and ``codecs`` (named codecs tasks pick with
    ``@queue.task(codecs=[...])``) say how payloads are stored; ``secret_key`` (or
    ``TASKITO_SECRET_KEY``) signs them, so workers refuse bytes written by anyone without the
    key. A database file created here gets the permission bits ``file_mode`` (default
    ``0o600``: the owner only).
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
        secret_key: str | bytes | None = None,
        file_mode: int | None = None,
    ) -> None:
        level = settings.env_log_level()
        if level is not None:
            log.setLevel(level)
        path = os.fspath(db_path) if db_path is not None else None
        store = _backend.resolve(path, backend, db_url, schema, pool_size, notify)
        self._store_settings = store
        self.backend: str = store.backend
        #: The SQLite file, or for PostgreSQL the URL without its password.
        self.db_path: str = store.shown
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
            serializer, codec, codecs, settings.first(secret_key, settings.env_secret_key(), default=None)
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
        self._tasks: dict[str, TaskWrapper] = {}
        self._default_options: dict[str, dict[str, Any]] = {}
        self._hooks: dict[str, list[Callable[..., Any]]] = {k: [] for k in _HOOK_KINDS}
        self._running = threading.Lock()
        self._metrics: Any = None  # taskito.metrics.Metrics once enabled
        self._max_pending = check_max_pending(max_pending)
        self._periodic = {}
        self._subscriptions: dict[str, list[str]] = {}
        self._init_events()

    def __repr__(self) -> str:
        return f"<taskito.Queue {self.db_path!r} tasks={len(self._tasks)}>"

    def close(self) -> None:
        """Releases every database connection this queue holds; safe to call twice (a
        queue used again after it reconnects on demand)."""
        self._inner.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tasks ---------------------------------------------------------------------------

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
    ) -> Any:
        """Registers a function as a task; use as ``@queue.task()``, ``@queue.task`` or
        ``@queue.task("name")``.
        ``expires``: seconds after enqueue past which a job not yet started is cancelled.
        ``serializer`` (None: the queue's) encodes its arguments and result; ``codecs`` names
        codecs of ``Queue(codecs=...)`` applied to its arguments."""
        task_middleware = check_middleware("middleware", middleware)
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

        def register(f: Callable[..., Any]) -> TaskWrapper:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            existing = self._tasks.get(task_name)
            if (
                existing is not None
                and existing.fn is not f
                and (getattr(existing.fn, "__code__", None) is not getattr(f, "__code__", None))
            ):
                raise ValueError(
                    f"a different function is already registered as task {task_name!r}; "
                    "pass name= to tell them apart"
                )
            wrapper = TaskWrapper(
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

    # -- enqueue -------------------------------------------------------------------------

    def _options(
        self,
        task_name: str,
        priority: int | None,
        delay: float | None,
        queue: str | None,
        max_retries: int | None,
        timeout: float | None,
    ) -> dict[str, Any]:
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

    def enqueue(
        self,
        task_name: str,
        args: tuple = (),
        kwargs: dict | None = None,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        metadata: Any = None,
        idempotent: bool | None = None,
        *,
        depends_on: Any = None,
        expires: float | None = None,
        notes: dict[str, Any] | None = None,
        result_ttl: float | None = None,
        connection: Any = None,
    ) -> JobResult:
        """Stores one job for the task named ``task_name`` (registered here or not).
        While a job with the same ``unique_key`` is pending or running, returns that job
        instead; ``idempotent`` derives the key from the task and its arguments (default:
        the task's own ``idempotent`` option). ``depends_on``: job id(s) that must complete
        first; ``expires``: seconds within which it must start; ``notes``: a small dict
        (``taskito.notes``); ``result_ttl``: seconds the job is kept once finished, then
        deleted by a worker's maintenance sweep, whatever the queue's retention says.
        ``connection``: write the job through the application's connection, inside its
        transaction (see ``Queue.using``)."""
        if connection is not None:
            with self.using(connection):
                return self.enqueue(
                    task_name, args, kwargs, priority, delay, queue, max_retries, timeout, unique_key,
                    metadata, idempotent, depends_on=depends_on, expires=expires, notes=notes,
                    result_ttl=result_ttl,
                )  # fmt: skip
        if self._test_results is not None:
            options = dict(
                priority=priority, delay=delay, queue=queue, max_retries=max_retries, timeout=timeout,
                unique_key=unique_key, metadata=metadata,
            )  # fmt: skip
            return self._run_inline(task_name, args, kwargs or {}, options)  # type: ignore[return-value]
        chain = self._enqueue_chain(task_name)
        if chain:
            options = self._on_enqueue(
                chain,
                task_name,
                args,
                kwargs or {},
                priority,
                delay,
                queue,
                max_retries,
                timeout,
                unique_key,
                metadata,
            )
            priority, delay, queue = options["priority"], options["delay"], options["queue"]
            max_retries, timeout = options["max_retries"], options["timeout"]
            unique_key, metadata = options["unique_key"], options["metadata"]
        task = self._tasks.get(task_name)
        if depends_on is not None or notes is not None or expires is not None or (task and task.expires):
            (job,) = self._enqueue_specs(
                [
                    self._job_spec(
                        task_name, args, kwargs, priority=priority, delay=delay, queue=queue,
                        max_retries=max_retries, timeout=timeout, unique_key=unique_key,
                        metadata=metadata, idempotent=idempotent, notes=notes, expires=expires,
                        depends_on=depends_on, result_ttl=result_ttl,
                    )
                ]
            )  # fmt: skip
            return job
        opts = self._options(task_name, priority, delay, queue, max_retries, timeout)
        payload = self._plan_for(task_name).dump_call(task_name, args, kwargs or {})
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise ValueError(f"unique_key must be a non-empty string, got {unique_key!r}")
        if unique_key is None and is_idempotent(self._tasks.get(task_name), idempotent):
            unique_key = idempotency_key(task_name, payload)
        (job_id,) = _transactional.store(
            self,
            task_name,
            [payload],
            unique_key=unique_key,
            metadata=_metadata(metadata),
            max_pending=self._max_pending.get(opts["queue"]),
            result_ttls=result_ttls(result_ttl, None, 1),
            **opts,
        )
        if self._dispatcher is not None:
            self._emit_enqueued(job_id, task_name, opts["queue"])
        return JobResult(self, job_id)

    def enqueue_many(
        self,
        task_name: str,
        args_list: list[tuple],
        kwargs_list: list[dict] | None = None,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        metadata: Any = None,
        unique_keys: list[str | None] | None = None,
        idempotent: bool | None = None,
        *,
        notes: dict[str, Any] | None = None,
        notes_list: list[dict[str, Any] | None] | None = None,
        expires: float | None = None,
        result_ttl: float | None = None,
        result_ttl_list: list[float | None] | None = None,
        connection: Any = None,
    ) -> list[JobResult]:
        """Stores many jobs of one task in one transaction. ``unique_keys`` gives each job
        a key (None for none); an item whose key a pending or running job holds returns that
        job. With ``max_pending`` on the queue, a batch that would exceed it stores nothing.
        ``notes`` and ``result_ttl`` apply to every job; ``notes_list`` and
        ``result_ttl_list`` (one entry per job) win over them. ``connection``: write the
        jobs through the application's connection, inside its transaction (``Queue.using``)."""
        if connection is not None:
            with self.using(connection):
                return self.enqueue_many(
                    task_name, args_list, kwargs_list, priority, delay, queue, max_retries, timeout,
                    metadata, unique_keys, idempotent, notes=notes, notes_list=notes_list,
                    expires=expires, result_ttl=result_ttl, result_ttl_list=result_ttl_list,
                )  # fmt: skip
        args_list = list(args_list)
        if kwargs_list is not None:
            kwargs_list = list(kwargs_list)
            if len(kwargs_list) != len(args_list):
                raise ValueError("kwargs_list must be as long as args_list")
        if notes_list is not None:
            notes_list = list(notes_list)
            if len(notes_list) != len(args_list):
                raise ValueError("notes_list must be as long as args_list")
        ttls = result_ttls(result_ttl, result_ttl_list, len(args_list))
        if self._test_results is not None:
            options = dict(
                priority=priority, delay=delay, queue=queue, max_retries=max_retries, timeout=timeout,
                metadata=metadata,
            )  # fmt: skip
            return [
                self._run_inline(task_name, a, kwargs_list[i] if kwargs_list else {}, options)  # type: ignore[misc]
                for i, a in enumerate(args_list)
            ]
        if unique_keys is not None:
            unique_keys = check_unique_keys(unique_keys, len(args_list))
        task = self._tasks.get(task_name)
        if notes is not None or notes_list is not None or expires is not None or (task and task.expires):
            options = dict(
                priority=priority, delay=delay, queue=queue, max_retries=max_retries, timeout=timeout
            )
            specs = [
                self._job_spec(
                    task_name, a, kwargs_list[i] if kwargs_list else {}, metadata=metadata,
                    unique_key=unique_keys[i] if unique_keys is not None else None,
                    idempotent=idempotent,
                    notes=notes_list[i] if notes_list is not None else notes, expires=expires,
                    result_ttl=ttls[i] if ttls else None, **options,
                )
                for i, a in enumerate(args_list)
            ]  # fmt: skip
            return self._enqueue_specs(specs) if specs else []
        chain = self._enqueue_chain(task_name)
        if chain and args_list:
            return self._enqueue_many_through(
                chain,
                task_name,
                args_list,
                kwargs_list,
                priority,
                delay,
                queue,
                max_retries,
                timeout,
                metadata,
                unique_keys,
                idempotent,
                ttls,
            )
        opts = self._options(task_name, priority, delay, queue, max_retries, timeout)
        plan = self._plan_for(task_name)
        payloads = [
            plan.dump_call(task_name, a, kwargs_list[i] if kwargs_list else {})
            for i, a in enumerate(args_list)
        ]
        if not payloads:
            return []
        keys = unique_keys_for(self._tasks.get(task_name), task_name, payloads, unique_keys, idempotent)
        ids = _transactional.store(
            self,
            task_name,
            payloads,
            metadata=_metadata(metadata),
            unique_keys=keys,
            max_pending=self._max_pending.get(opts["queue"]),
            result_ttls=ttls,
            **opts,
        )
        if self._dispatcher is not None:
            for i in ids:
                self._emit_enqueued(i, task_name, opts["queue"])
        return [JobResult(self, i) for i in ids]

    # -- middleware at enqueue -------------------------------------------------------------

    def _enqueue_chain(self, task_name: str) -> tuple[TaskMiddleware, ...]:
        task = self._tasks.get(task_name)
        return task._middleware_chain() if task is not None else self._middleware

    def _on_enqueue(
        self,
        chain: tuple[TaskMiddleware, ...],
        task_name: str,
        args: tuple,
        kwargs: dict,
        priority: int | None,
        delay: float | None,
        queue: str | None,
        max_retries: int | None,
        timeout: float | None,
        unique_key: str | None,
        metadata: Any,
    ) -> dict[str, Any]:
        """Runs each middleware's ``on_enqueue`` over the job's options; returns them as
        edited (checked again like any option when the job is stored)."""
        options: dict[str, Any] = {
            "priority": priority,
            "delay": delay,
            "queue": queue,
            "max_retries": max_retries,
            "timeout": timeout,
            "unique_key": unique_key,
            "metadata": metadata,
        }
        call_each(chain, "on_enqueue", task_name, tuple(args), kwargs, options)
        return options

    def _enqueue_many_through(
        self,
        chain: tuple[TaskMiddleware, ...],
        task_name: str,
        args_list: list[tuple],
        kwargs_list: list[dict] | None,
        priority: int | None,
        delay: float | None,
        queue: str | None,
        max_retries: int | None,
        timeout: float | None,
        metadata: Any,
        unique_keys: list[str | None] | None = None,
        idempotent: bool | None = None,
        ttls: list[float | None] | None = None,
    ) -> list[JobResult]:
        """``enqueue_many`` with ``on_enqueue`` middleware: called once per job; jobs whose
        edited options agree are stored together, in one transaction per distinct set."""
        groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
        for i, a in enumerate(args_list):
            kw = kwargs_list[i] if kwargs_list else {}
            options = self._on_enqueue(
                chain, task_name, a, kw, priority, delay, queue, max_retries, timeout, None, metadata
            )
            if options.pop("unique_key") is not None:
                raise ValueError("on_enqueue may not set unique_key in enqueue_many")
            key = repr(sorted(options.items()))
            groups.setdefault(key, (options, []))[1].append(i)
        out: list[JobResult | None] = [None] * len(args_list)
        for options, indexes in groups.values():
            opts = self._options(
                task_name,
                options["priority"],
                options["delay"],
                options["queue"],
                options["max_retries"],
                options["timeout"],
            )
            plan = self._plan_for(task_name)
            payloads = [
                plan.dump_call(task_name, args_list[i], kwargs_list[i] if kwargs_list else {})
                for i in indexes
            ]
            keys = unique_keys_for(
                self._tasks.get(task_name),
                task_name,
                payloads,
                [unique_keys[i] for i in indexes] if unique_keys is not None else None,
                idempotent,
            )
            ids = _transactional.store(
                self,
                task_name,
                payloads,
                metadata=_metadata(options["metadata"]),
                unique_keys=keys,
                max_pending=self._max_pending.get(opts["queue"]),
                result_ttls=[ttls[i] for i in indexes] if ttls is not None else None,
                **opts,
            )
            for i, job_id in zip(indexes, ids):
                out[i] = JobResult(self, job_id)
                if self._dispatcher is not None:
                    self._emit_enqueued(job_id, task_name, opts["queue"])
        return [j for j in out if j is not None]

    def _emit_enqueued(self, job_id: str, task_name: str, queue: str) -> None:
        self._emit(EventType.JOB_ENQUEUED, {"job_id": job_id, "task_name": task_name, "queue": queue})

    # -- hooks ---------------------------------------------------------------------------

    def _hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self._hooks[kind].append(fn)
        return fn

    def before_task(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs)`` runs before each job."""
        return self._hook("before_task", fn)

    def on_success(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, result)`` runs after each job that returned."""
        return self._hook("on_success", fn)

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, error)`` runs after each job that raised."""
        return self._hook("on_failure", fn)

    def after_task(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(task_name, args, kwargs, result, error)`` runs after every job, after
        ``on_success``/``on_failure``; ``error`` is None when the task returned ``result``."""
        return self._hook("after_task", fn)

    def on_worker_start(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn()`` runs once when a worker starts, before it takes a job."""
        return self._hook("on_worker_start", fn)

    def on_worker_stop(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn()`` runs once when a worker has stopped."""
        return self._hook("on_worker_stop", fn)

    def _worker_hooks(self, kind: str) -> None:
        for hook in self._hooks[kind]:
            try:
                hook()
            except Exception:
                log.exception("%s hook %r raised", kind, hook)

    # -- workers -------------------------------------------------------------------------

    def _thread_count(self, workers: int | None) -> int:
        n = settings.check_int(
            "workers", settings.first(workers, default=self._workers), minimum=0, maximum=settings.MAX_WORKERS
        )
        return n or os.cpu_count() or 1

    def run_worker(
        self,
        queues: list[str] | None = None,
        workers: int | None = None,
        worker_id: str | None = None,
        run_once: bool = False,
        max_jobs: int | None = None,
        *,
        drain_timeout: float | None = None,
        pool: str = "thread",
        app: str | None = None,
        max_tasks_per_child: int | None = None,
    ) -> int:
        """Runs a worker until shutdown (or, with ``run_once``, until nothing is ready);
        returns the number of jobs processed. In the main thread, the first SIGINT/SIGTERM
        drains and the second stops at once.

        ``pool="thread"`` runs tasks on ``workers`` threads, and ``async def`` tasks
        concurrently on one event loop (up to ``async_concurrency``); ``pool="prefork"``
        runs them in ``workers`` child processes, which import the app (``app="m:attr"``,
        else found from this Queue's module) and are replaced after
        ``max_tasks_per_child`` jobs."""
        queues = settings.check_queues(settings.first(queues, settings.env_queues(), default=None))
        threads = self._thread_count(workers)
        if max_jobs is not None:
            settings.check_int("max_jobs", max_jobs, minimum=1)
        drain = (
            self.drain_timeout
            if drain_timeout is None
            else settings.check_seconds("drain_timeout", drain_timeout)
        )
        wid = worker_id if worker_id is not None else _default_worker_id()
        settings.check_queue_name("worker_id", wid)
        host = socket.gethostname()
        if pool not in ("thread", "prefork"):
            raise ValueError(f'pool must be "thread" or "prefork", got {pool!r}')
        if _prefork.CHILD_LOADING:
            raise TaskitoError(
                "run_worker was called while a prefork child imported the app: "
                'guard the call with `if __name__ == "__main__":`'
            )
        if max_tasks_per_child is not None:
            settings.check_int("max_tasks_per_child", max_tasks_per_child, minimum=1)
        if not self._running.acquire(blocking=False):
            raise TaskitoError("a worker of this Queue is already running in this process")
        # From here on a stop request (a signal, shutdown() from another thread) is kept,
        # even one that arrives while the run is still starting.
        self._inner.arm()
        try:
            log.info(
                "worker %s starting: %d thread(s), queues %s, tasks %s, database %s",
                wid,
                threads,
                ",".join(queues) if queues else "all",
                ", ".join(sorted(self._tasks)) or "none",
                self.db_path,
            )
            if self._retention_defaulted:
                log.warning(
                    "no retention configured: finished jobs, task metrics and job errors are kept "
                    "7 days, task logs 3 days and dead letters 30 days; pass retention=Retention() "
                    "to keep everything, or retention=/result_ttl= to choose"
                )
            self._worker_hooks("on_worker_start")
            register_limits(self._inner, self._tasks)
            self._register_periodic()
            dispatch = make_dispatch(self)
            if self._metrics is not None:
                dispatch = self._metrics.wrap_dispatch(dispatch)
            extra, async_pool = self._pool_args(pool, app, max_tasks_per_child)
            self._emit(EventType.WORKER_STARTED, {"worker_id": wid, "hostname": host, "queues": queues})
            with _signals_drain(self), _stopping(async_pool):
                processed = self._inner.run_worker(
                    dispatch,
                    threads,
                    queues,
                    wid,
                    host,
                    os.getpid(),
                    self.scheduler_poll_interval_ms,
                    drain,
                    run_once=run_once,
                    max_jobs=max_jobs,
                    heartbeat_interval=self.heartbeat_interval,
                    stale_after=self.stale_after,
                    retention=self._retention._engine(self._retention_defaulted),
                    **extra,
                )
            log.info("worker %s stopped after %d job(s)", wid, processed)
            return processed
        finally:
            self._worker_hooks("on_worker_stop")
            self._emit(EventType.WORKER_STOPPED, {"worker_id": wid, "hostname": host, "queues": queues})
            self._running.release()

    def _pool_args(
        self, pool: str, app: str | None, max_tasks_per_child: int | None
    ) -> tuple[dict[str, Any], AsyncPool | None]:
        """The engine arguments of the chosen pool, and the async pool to stop afterwards."""
        if pool == "prefork":
            if self.db_path == ":memory:":
                raise ValueError(
                    'pool="prefork" needs a database file: child processes cannot see an '
                    'in-memory queue (db_path=":memory:")'
                )
            per_child = settings.first(max_tasks_per_child, self.max_tasks_per_child, default=None)
            # The children run the jobs; the metrics of this process count them here.
            observe = self._metrics.observe if self._metrics is not None else None
            return {"prefork": _prefork.child_spec(self, app, per_child, observe)}, None
        names = async_task_names(self)
        if not names:
            return {}, None
        async_pool = AsyncPool(self, names, self.async_concurrency)
        async_pool.start()
        return {"async_lane": async_pool.lane}, async_pool

    async def arun_worker(
        self,
        queues: list[str] | None = None,
        workers: int | None = None,
        worker_id: str | None = None,
        run_once: bool = False,
        max_jobs: int | None = None,
    ) -> int:
        """``run_worker`` for asyncio: runs in a thread; cancelling the awaiting task drains
        the worker and waits for it to stop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        def target() -> None:
            try:
                n = self.run_worker(queues, workers, worker_id, run_once, max_jobs)
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, n, None)

        thread = threading.Thread(target=target, name="taskito-arun-worker", daemon=True)
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.to_thread(self._stop_thread, thread)
            raise

    def _stop_thread(self, thread: threading.Thread) -> None:
        # Asked again until the thread ends: a request made before its worker started
        # would otherwise be lost (a starting worker begins in the running state).
        while thread.is_alive():
            self.shutdown()
            thread.join(0.1)

    def shutdown(self) -> None:
        """Makes a running worker of this queue drain and return; a no-op when none runs."""
        self._inner.request_shutdown()

    def process_one(self, queues: list[str] | None = None) -> bool:
        """Runs at most one ready job in the calling thread; True if one ran."""
        ran = self._inner.process_one(
            make_dispatch(self),
            settings.check_queues(queues),
            _inline_worker_id(),
            socket.gethostname(),
            os.getpid(),
            threading.get_ident(),
            heartbeat_interval=self.heartbeat_interval,
        )
        return ran is not None

    def execute_job(self, job_id: str) -> JobResult:
        """Runs the job ``job_id`` in this thread whatever its status and schedule, and
        records the outcome as a worker would. Raises ``JobNotFoundError`` if there is no
        such job and ``TaskitoError`` if another worker is running it."""
        if self._inner.get_job(job_id) is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        ran = self._inner.execute(
            make_dispatch(self),
            job_id,
            _inline_worker_id(),
            socket.gethostname(),
            os.getpid(),
            threading.get_ident(),
            heartbeat_interval=self.heartbeat_interval,
        )
        if ran is None:
            raise TaskitoError(f"job {job_id} is running on another worker")
        return JobResult(self, job_id)


@contextlib.contextmanager
def _stopping(async_pool: AsyncPool | None) -> Iterator[None]:
    try:
        yield
    finally:
        if async_pool is not None:
            async_pool.stop()


def _settle(fut: asyncio.Future[int], value: int | None, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)  # type: ignore[arg-type]

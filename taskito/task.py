"""``TaskWrapper``: what ``@queue.task()`` returns. Calling it runs the function inline;
``delay`` and ``apply_async`` enqueue it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar, overload

from taskito.payload.plan import Plan

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover - Python 3.9
    from typing_extensions import ParamSpec

if TYPE_CHECKING:
    from taskito.app import Queue
    from taskito.canvas import Signature
    from taskito.middleware import TaskMiddleware
    from taskito.resilience.breaker import CircuitBreaker
    from taskito.resilience.retry_rules import RetryRules
    from taskito.result import JobResult

P = ParamSpec("P")
R = TypeVar("R")


class TaskWrapper(Generic[P, R]):
    """A registered task. ``wrapper(*a, **kw)`` calls the function in this thread.

    For type checkers it is ``TaskWrapper[P, R]``: ``P`` the function's parameters, ``R``
    its return type, so ``delay`` is checked against the signature and returns
    ``JobResult[R]``."""

    # How its arguments and result become bytes; set by ``Queue.task()``.
    _plan: Plan
    # Its predicate (``taskito.predicates.gate.TaskGate``) and its producer-side batch
    # (``taskito.batching.BatchAccumulator``), if it has them: one attribute check when not.
    _gate: Any = None
    _batch: Any = None
    __wrapped__: Callable[..., Any]
    # Set by ``Queue.task()`` only for a task that has them (``taskito.resilience``).
    soft_timeout: float | None = None
    _retry_rules: RetryRules | None = None
    _breaker: CircuitBreaker | None = None

    def __init__(
        self,
        queue: Queue,
        fn: Callable[P, Any],
        name: str,
        max_retries: int | None,
        retry_backoff: float,
        timeout: float | None,
        priority: int | None,
        queue_name: str,
        middleware: tuple[TaskMiddleware, ...] = (),
        rate_limit: str | None = None,
        max_concurrent: int | None = None,
        idempotent: bool = False,
    ) -> None:
        self._queue = queue
        self.fn = fn
        self.name = name
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self.priority = priority
        self.queue_name = queue_name
        self.middleware = middleware
        self.rate_limit = rate_limit
        self.max_concurrent = max_concurrent
        self.idempotent = idempotent
        self.expires: float | None = None
        functools.update_wrapper(self, fn)

    def _middleware_chain(self) -> tuple[TaskMiddleware, ...]:
        """The queue's middleware, then the task's own (empty for most tasks)."""
        return self._queue._middleware + self.middleware

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # The function as written (``fn`` may wrap it for the worker, as batching does).
        return self.__wrapped__(*args, **kwargs)  # type: ignore[no-any-return]

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobResult[R]:
        """Enqueues a call with the task's defaults (for a batch task: adds one item to
        the batch and returns a ``taskito.batching.BatchedJobResult``)."""
        if self._batch is not None:
            return self._batch.add(args, kwargs)  # type: ignore[no-any-return]
        return self.apply_async(args=args, kwargs=kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int | None = None,
        delay: float | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        metadata: str | None = None,
        idempotent: bool | None = None,
        depends_on: Any = None,
        expires: float | None = None,
        notes: dict[str, Any] | None = None,
        result_ttl: float | None = None,
        connection: Any = None,
    ) -> JobResult[R]:
        """Enqueues a call; each option overrides the task's own for this job.
        ``depends_on``: job id(s) (or ``JobResult``s) that must complete first;
        ``result_ttl``: seconds the finished job is kept (see ``Queue.enqueue``);
        ``connection``: through the application's connection, in its transaction."""
        return self._queue.enqueue(  # type: ignore[return-value]
            self.name,
            args=args,
            kwargs=kwargs,
            priority=priority,
            delay=delay,
            queue=queue,
            max_retries=max_retries,
            timeout=timeout,
            unique_key=unique_key,
            metadata=metadata,
            idempotent=idempotent,
            depends_on=depends_on,
            expires=expires,
            notes=notes,
            result_ttl=result_ttl,
            connection=connection,
        )

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]:
        """A signature of this call for the canvas; in a chain it receives the previous
        step's result as its first argument."""
        from taskito.canvas import Signature

        return Signature(self, args, kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]:
        """An immutable signature: in a chain it receives no result from the step before."""
        from taskito.canvas import Signature

        return Signature(self, args, kwargs, immutable=True)

    def map(self, args_list: Any) -> list[JobResult[R]]:
        """Enqueues one job per argument tuple in one transaction."""
        return self._queue.enqueue_many(self.name, [tuple(a) for a in args_list])

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.queue_name!r}>"


class AsyncTaskWrapper(TaskWrapper[P, R]):
    """The task of an ``async def`` function: the same as ``TaskWrapper`` at run time, but
    calling it gives the coroutine, while its jobs' results are what the coroutine returns
    (``R``)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:  # type: ignore[override]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]


class TaskDecorator(Protocol):
    """What ``@queue.task(...)`` with options returns, to type checkers: applied to a
    function it gives that function's typed task."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTaskWrapper[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> TaskWrapper[P, R]: ...

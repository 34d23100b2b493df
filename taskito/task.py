"""``TaskWrapper``: what ``@queue.task()`` returns. Calling it runs the function inline;
``delay`` and ``apply_async`` enqueue it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from taskito.serializer import Plan

if TYPE_CHECKING:
    from taskito.app import Queue
    from taskito.canvas import Signature
    from taskito.middleware import TaskMiddleware
    from taskito.result import JobResult


class TaskWrapper:
    """A registered task. ``wrapper(*a, **kw)`` calls the function in this thread."""

    # How its arguments and result become bytes; set by ``Queue.task()``.
    _plan: Plan

    def __init__(
        self,
        queue: Queue,
        fn: Callable[..., Any],
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> JobResult:
        """Enqueues a call with the task's defaults."""
        return self.apply_async(args=args, kwargs=kwargs)

    def apply_async(
        self,
        args: tuple = (),
        kwargs: dict | None = None,
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
    ) -> JobResult:
        """Enqueues a call; each option overrides the task's own for this job.
        ``depends_on``: job id(s) (or ``JobResult``s) that must complete first;
        ``result_ttl``: seconds the finished job is kept (see ``Queue.enqueue``);
        ``connection``: through the application's connection, in its transaction."""
        return self._queue.enqueue(
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

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this call for the canvas; in a chain it receives the previous
        step's result as its first argument."""
        from taskito.canvas import Signature

        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: in a chain it receives no result from the step before."""
        from taskito.canvas import Signature

        return Signature(self, args, kwargs, immutable=True)

    def map(self, args_list: Any) -> list[JobResult]:
        """Enqueues one job per argument tuple in one transaction."""
        return self._queue.enqueue_many(self.name, [tuple(a) for a in args_list])

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.queue_name!r}>"

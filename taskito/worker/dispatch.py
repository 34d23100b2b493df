"""The one function worker threads call while holding the GIL: payload bytes in, look up the
task, call it (awaiting coroutines on the thread's own event loop), result bytes out.
Everything a task does wrong becomes an answer tuple; nothing escapes to the engine. The
steps of one job are a generator (``_job_steps``) that yields the task's awaitable, if it
returns one: worker threads run it on their own loop (``make_dispatch``, also what prefork
children call), the async pool awaits it on the shared loop (``make_async_dispatch``).

Answer: ``(True, result_bytes)`` or ``(False, error, traceback, retryable)``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Callable

from taskito._signing import parent_values
from taskito.context import _enter, _JobContext, _leave, current_job
from taskito.events import EventType
from taskito.exceptions import CryptoError, TaskCancelledError, TaskTimeoutError
from taskito.middleware import TaskMiddleware, call_each
from taskito.resilience.breaker import POSTPONE_MS
from taskito.resilience.retry_rules import POSTPONE, RETRY_AFTER
from taskito.task_errors import stored_error

if TYPE_CHECKING:
    from taskito.worker.host import EventSink, JobHost

log = logging.getLogger("taskito")
# Per-job lines (start, success, retry, failure) on a child logger, so they can be tuned
# apart from the engine's own records.
worker_log = logging.getLogger("taskito.worker")

_local = threading.local()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The calling worker thread's own event loop, created on first use."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


def thread_exit() -> None:
    """Called by each worker thread as it exits: closes its event loop, if it made one."""
    loop = getattr(_local, "loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()
    _local.loop = None


def _run_hooks(hooks: list[Callable[..., Any]], kind: str, *args: Any) -> None:
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            log.exception("%s hook %r raised; the job is not affected", kind, hook)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _ended(chain: tuple[TaskMiddleware, ...], exc: BaseException, retrying: bool, retry_count: int) -> None:
    """The middleware hooks of how a failed run ended (see ``taskito.middleware``)."""
    if isinstance(exc, TaskTimeoutError):
        call_each(chain, "on_timeout", current_job)
    if isinstance(exc, TaskCancelledError):
        call_each(chain, "on_cancel", current_job)
    elif retrying:
        call_each(chain, "on_retry", current_job, exc, retry_count + 1)
    else:
        call_each(chain, "on_dead_letter", current_job, exc)


def _log_failure(job_id: str, task_name: str, exc: BaseException, retrying: bool) -> None:
    # Names the job and the error, never the arguments: they may hold secrets.
    if retrying:
        worker_log.warning("job %s (%s) failed, will retry: %s", job_id, task_name, _describe(exc))
    else:
        worker_log.error("job %s (%s) failed for good: %s", job_id, task_name, _describe(exc))


class PutBack(BaseException):
    """Thrown into a job's steps when the async pool stops: the engine has put the job
    back, so no hook runs and no answer is given."""


class LoopTimeout(TaskTimeoutError):
    """Raised into a coroutine that kept the event loop past its job's deadline (it never
    awaited, so it could not be cancelled); reported as the job's ``TaskTimeoutError``."""


def _job_steps(queue: JobHost) -> Callable[..., Generator[Any, Any, tuple]]:
    """The steps of one job, as a generator: it yields the awaitable a task returned and
    takes its value (or its exception, thrown in) back; it returns the answer."""

    def steps(
        task_name: str,
        payload: bytes,
        job_id: str,
        queue_name: str,
        retry_count: int,
        max_retries: int,
        worker_id: str,
        parents: tuple[int, list[bytes | None]] | None = None,
    ) -> Generator[Any, Any, tuple]:
        task = queue._tasks.get(task_name)
        if task is None:
            known = ", ".join(sorted(queue._tasks)) or "none"
            return (
                False,
                f"TaskNotRegistered: task {task_name!r} is not registered in this worker "
                f"(registered: {known})",
                "",
                False,
            )
        plan = task._plan
        try:
            args, kwargs = plan.load_call(payload, task_name)
        except CryptoError as exc:
            # Refused before any deserializer saw the bytes; running it again cannot help.
            error = f"CryptoError: the arguments of job {job_id} ({task_name}) were refused unread: {exc}"
            worker_log.error("job %s (%s) failed: %s", job_id, task_name, error)
            return (False, error, "", False)
        except Exception as exc:
            return (
                False,
                f"SerializationError: cannot read the arguments of job {job_id} "
                f"({task_name}): {_describe(exc)}",
                traceback.format_exc(),
                False,
            )
        if parents is not None:
            # A canvas step: the previous step's result (chain) or the list of a group's
            # results (chord) comes first.
            mode, results = parents
            try:
                values = parent_values(queue, job_id, results)
            except CryptoError as exc:
                # A parent's stored result was altered or moved: this step fails once.
                error = f"CryptoError: a parent result of job {job_id} ({task_name}) was refused: {exc}"
                worker_log.error("job %s (%s) failed: %s", job_id, task_name, error)
                return (False, error, "", False)
            args = ((values[0] if values else None) if mode == 1 else values, *args)
        if task._gate is not None:
            gate = task._gate
            stopped = gate.at_dispatch(queue, task, payload, args, kwargs, job_id, queue_name, retry_count)
            if stopped is not None:
                return stopped
        # Asked last, just before the run: an admitted run (a half-open probe slot) is
        # always followed by its record below.
        breaker = task._breaker
        if breaker is not None and not breaker.admit(queue._inner):
            # Put off, not failed: no retry is used and the job is never dropped.
            return (
                False,
                f"CircuitBreakerOpenError: the circuit breaker of task {task_name!r} is open",
                "",
                True,
                (POSTPONE, POSTPONE_MS, None),
            )
        context = _JobContext(job_id, task_name, queue_name, retry_count, worker_id, queue._inner)
        ran = yield from run_steps(queue, task, args, kwargs, context, max_retries)
        if breaker is not None:
            breaker.record(queue._inner, ran[0])
        if not ran[0]:
            if len(ran) > 4:
                return (False, stored_error(ran[1], ran[2]), ran[2], ran[3], ran[4])
            return (False, stored_error(ran[1], ran[2]), ran[2], ran[3])
        value = ran[1]
        try:
            data = plan.dump_result(value, job_id)
        except Exception as exc:
            error = (
                f"SerializationError: the result of job {job_id} ({task_name}) cannot be "
                f"serialized: {_describe(exc)}"
            )
            _run_hooks(queue._hooks["on_failure"], "on_failure", task_name, args, kwargs, exc)
            worker_log.error("job %s (%s) failed: %s", job_id, task_name, error)
            if queue._dispatcher is not None:
                _emit_failure(queue, _timed_event(context), exc, False, retry_count, max_retries)
            return (False, error, traceback.format_exc(), False)
        completed(queue, context)
        return (True, data)

    return steps


def _event(context: _JobContext) -> dict[str, Any]:
    return {"job_id": context.id, "task_name": context.task_name, "queue": context.queue_name}


def _timed_event(context: _JobContext) -> dict[str, Any]:
    """``_event`` plus ``duration_ms``: how long the run took (None if events were turned on
    while it ran). Built only when events are on."""
    started = getattr(context, "event_started", None)
    duration = None if started is None else round((time.perf_counter() - started) * 1000, 3)
    return {**_event(context), "duration_ms": duration}


def run_steps(
    queue: JobHost, task: Any, args: tuple, kwargs: dict, context: _JobContext, max_retries: int
) -> Generator[Any, Any, tuple]:
    """One run of a task whose arguments are read, as a worker runs it and test mode too:
    the start event, middleware ``before``, the hooks, the task (yielding the awaitable it
    returned), middleware ``after`` and, for a failure, the hook, log line and events of how
    it ended. Returns ``(True, value)``, or ``(False, exc, traceback, retryable)``; the
    caller reports a completion with ``completed`` once the result is kept."""
    # This runs once per job with the GIL held: checks are hoisted, empty hook lists
    # skipped, and the log lines cost one level check each.
    job_id, task_name, retry_count = context.id, context.task_name, context.retry_count
    hooks = queue._hooks
    chain = task._middleware_chain()
    if worker_log.isEnabledFor(logging.INFO):
        worker_log.info("job %s (%s) started on %s", job_id, task_name, context.worker_id)
    events = queue._dispatcher
    if events is not None:
        context.event_started = time.perf_counter()
        queue._emit(EventType.JOB_STARTED, _event(context))
    if task.soft_timeout is not None:
        context.soft_deadline = time.monotonic() + task.soft_timeout
    token = _enter(context)
    try:
        entered = call_each(chain, "before", current_job) if chain else chain
        if hooks["before_task"]:
            _run_hooks(hooks["before_task"], "before_task", task_name, args, kwargs)
        try:
            value = task.fn(*args, **kwargs)
            if value is not None and inspect.isawaitable(value):
                value = yield value
        except BaseException as exc:  # a task's SystemExit or KeyboardInterrupt fails the job only
            if isinstance(exc, PutBack):
                raise
            tb = traceback.format_exc()
            _run_hooks(hooks["on_failure"], "on_failure", task_name, args, kwargs, exc)
            if hooks["after_task"]:
                _run_hooks(hooks["after_task"], "after_task", task_name, args, kwargs, None, exc)
            # A cancel asked for by cancel_running_job is not retried: the store ends
            # the job cancelled.
            retryable = not isinstance(exc, TaskCancelledError)
            rules = task._retry_rules
            rule = None
            if rules is not None and retryable:
                rule = rules.decide(context.core, exc, retry_count, max_retries, task.retry_backoff)
                retrying = rule[0] == RETRY_AFTER
            else:
                retrying = retryable and retry_count < max_retries
            if entered:
                call_each(entered, "after", current_job, None, exc)
            if chain:
                _ended(chain, exc, retrying, retry_count)
            _log_failure(job_id, task_name, exc, retrying)
            if events is not None:
                # A rule that dead-letters early reads to the events as no retries left.
                limit = max_retries if retrying or rule is None else retry_count
                _emit_failure(queue, _timed_event(context), exc, retryable, retry_count, limit)
            if rule is not None:
                return (False, exc, tb, retryable, rule)
            return (False, exc, tb, retryable)
        if hooks["on_success"]:
            _run_hooks(hooks["on_success"], "on_success", task_name, args, kwargs, value)
        if hooks["after_task"]:
            _run_hooks(hooks["after_task"], "after_task", task_name, args, kwargs, value, None)
        if entered:
            call_each(entered, "after", current_job, value, None)
    finally:
        _leave(token)
    return (True, value)


def completed(queue: EventSink, context: _JobContext) -> None:
    """The log line and event of a run that completed."""
    if worker_log.isEnabledFor(logging.INFO):
        worker_log.info("job %s (%s) complete", context.id, context.task_name)
    if queue._dispatcher is not None:
        queue._emit(EventType.JOB_COMPLETED, _timed_event(context))


def make_dispatch(queue: JobHost) -> Callable[..., tuple]:
    """Builds the dispatch function for one queue's task registry and hooks."""
    steps = _job_steps(queue)

    def dispatch(
        task_name: str,
        payload: bytes,
        job_id: str,
        queue_name: str,
        retry_count: int,
        max_retries: int,
        worker_id: str,
        parents: tuple[int, list[bytes | None]] | None = None,
    ) -> tuple:
        run = steps(task_name, payload, job_id, queue_name, retry_count, max_retries, worker_id, parents)
        return drive(run, _on_thread_loop)

    return dispatch


def _on_thread_loop(awaitable: Any) -> Any:
    # The task returned an awaitable: this thread runs it on its own loop.
    return _event_loop().run_until_complete(awaitable)


def drive(run: Generator[Any, Any, tuple], complete: Callable[[Any], Any]) -> tuple:
    """Runs a job's steps to their answer; ``complete`` runs the awaitable a task
    returned, if it did, to its value."""
    try:
        awaitable = run.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    try:
        value = complete(awaitable)
    except BaseException as exc:  # handed to the steps, which answer for it
        return _resume(run, exc, None)
    return _resume(run, None, value)


def _resume(run: Generator[Any, Any, tuple], error: BaseException | None, value: Any) -> tuple:
    try:
        if error is not None:
            run.throw(error)
        else:
            run.send(value)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("a job's steps yielded twice")


async def _within(
    awaitable: Any, timeout: float, job_id: str, task_name: str, track: Callable[[Any], Any]
) -> Any:
    """Awaits the task, cancelling it at ``timeout`` seconds. Only that cancellation
    becomes a ``TaskTimeoutError``: a ``TimeoutError`` the task raises stays its own."""
    inner = asyncio.ensure_future(track(awaitable))
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        inner.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await inner
    except (LoopTimeout, asyncio.CancelledError) as exc:
        if expired or isinstance(exc, LoopTimeout):
            message = f"job {job_id} ({task_name}) exceeded its timeout of {timeout:g}s"
            raise TaskTimeoutError(message) from None
        raise
    finally:
        timer.cancel()


def make_async_dispatch(queue: JobHost, track: Callable[[Any, str], Any]) -> Callable[..., Any]:
    """The dispatch coroutine of the async pool: the same steps as ``make_dispatch``, with
    the task awaited on the running loop and cancelled at ``timeout`` seconds. ``track``
    wraps the task's coroutine so the pool knows when it holds the loop. Run in the job's
    own asyncio task, so ``current_job`` is per job."""
    steps = _job_steps(queue)

    async def adispatch(
        task_name: str,
        payload: bytes,
        job_id: str,
        queue_name: str,
        retry_count: int,
        max_retries: int,
        worker_id: str,
        timeout: float,
        parents: tuple[int, list[bytes | None]] | None = None,
    ) -> tuple:
        run = steps(task_name, payload, job_id, queue_name, retry_count, max_retries, worker_id, parents)
        try:
            awaitable = run.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            value = await _within(awaitable, timeout, job_id, task_name, lambda c: track(c, job_id))
        except asyncio.CancelledError:
            # The pool is stopping and the engine has put the job back: unwind quietly.
            try:
                run.throw(PutBack())
            except (PutBack, StopIteration):
                pass
            raise
        except BaseException as exc:  # handed to the steps, which answer for it
            return _resume(run, exc, None)
        return _resume(run, None, value)

    return adispatch


def _emit_failure(
    queue: EventSink,
    info: dict[str, Any],
    exc: BaseException,
    retryable: bool,
    retry_count: int,
    max_retries: int,
) -> None:
    """The events of a failed run (see ``emit_failure_events``)."""
    cancelled = isinstance(exc, TaskCancelledError)
    emit_failure_events(queue, info, _describe(exc), cancelled, retryable, retry_count, max_retries)


def emit_failure_events(
    queue: EventSink,
    info: dict[str, Any],
    error: str,
    cancelled: bool,
    retryable: bool,
    retry_count: int,
    max_retries: int,
) -> None:
    """The events of a failed run: cancelled, or failed and then retrying or dead (the
    result handler decides the same way: retryable with retries left means a retry)."""
    payload = {**info, "error": error, "retry_count": retry_count}
    if cancelled:
        queue._emit(EventType.JOB_CANCELLED, payload)
        return
    queue._emit(EventType.JOB_FAILED, payload)
    if not retryable:
        return
    if retry_count < max_retries:
        queue._emit(EventType.JOB_RETRYING, payload)
    else:
        queue._emit(EventType.JOB_DEAD, payload)

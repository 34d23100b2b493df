"""The async pool: one event loop per worker process that runs the jobs of ``async def``
tasks concurrently, up to ``Queue(async_concurrency=...)`` at once, beside the worker
threads. The engine claims those jobs apart from the threads' (``AsyncLane``); a feeder
thread takes each one from the lane without the GIL and starts it on the loop, so no
worker thread is held while it awaits; its answer goes back through ``lane.finish`` to the
engine's one result handler. A job is cancelled at its timeout (``TaskTimeoutError``); one
that holds the loop past it without awaiting gets the error raised into its code, as a
worker thread would."""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import threading
import time
import traceback
import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from taskito._taskito import AsyncLane
from taskito.worker.dispatch import LoopTimeout, make_async_dispatch

if TYPE_CHECKING:
    from taskito.worker.host import JobHost

log = logging.getLogger("taskito")

# How long past its timeout a job blocking the loop keeps its claim before the engine
# fails it (a coroutine that never awaits cannot be cancelled).
_GRACE = 1.0
# How long a stopping pool waits for cancelled jobs to unwind.
_STOP_WAIT = 5.0
# How long past its deadline a job holding the loop is left to the loop's own timer before
# the error is raised into its code; and how often that is checked.
_LATE = 0.2
_WATCH_EVERY = 0.1


def async_task_names(queue: JobHost) -> list[str]:
    """The names of the queue's ``async def`` tasks."""
    return sorted(name for name, task in queue._tasks.items() if inspect.iscoroutinefunction(task.fn))


class AsyncPool:
    """The loop and feeder threads of one worker run."""

    def __init__(self, queue: JobHost, names: list[str], concurrency: int) -> None:
        self.lane = AsyncLane(names, concurrency, _GRACE)
        self._queue = queue
        self._dispatch = make_async_dispatch(queue, self._track)
        # The job whose coroutine is executing on the loop right now, if any.
        self._stepping: str | None = None
        self._deadlines: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._loop_thread = threading.Thread(target=self._run_loop, name="taskito-async-loop", daemon=True)
        self._feed_thread = threading.Thread(target=self._feed, name="taskito-async-feed", daemon=True)
        self._watch_thread = threading.Thread(target=self._watch, name="taskito-async-watch", daemon=True)
        self._done = threading.Event()

    def start(self) -> None:
        self._loop_thread.start()
        self._feed_thread.start()
        self._watch_thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        while True:
            try:
                self._loop.run_forever()
                return
            except LoopTimeout:
                # Raised between two steps rather than inside the late job: go on.
                log.warning("a timeout meant for an async job reached the event loop")

    @types.coroutine
    def _track(self, coro: Any, job_id: str) -> Generator[Any, Any, Any]:
        """Runs ``coro`` step by step, noting which job holds the loop during each step."""
        if not inspect.iscoroutine(coro):
            coro = coro.__await__()  # any other awaitable: drive its iterator the same way
        value: Any = None
        error: BaseException | None = None
        while True:
            self._stepping = job_id
            try:
                if error is None:
                    yielded = coro.send(value)
                else:
                    yielded, error = coro.throw(error), None
            except StopIteration as stop:
                return stop.value
            finally:
                self._stepping = None
            try:
                value = yield yielded
            except BaseException as exc:  # delivered into the coroutine at its next step
                error, value = exc, None

    def _watch(self) -> None:
        """Raises ``LoopTimeout`` into a job that holds the loop past its deadline (the
        loop's own timer cannot fire while it does)."""
        interrupted: set[str] = set()
        ident = self._loop_thread.ident
        while not self._done.wait(_WATCH_EVERY):
            job_id = self._stepping
            if job_id is None or job_id in interrupted:
                continue
            deadline = self._deadlines.get(job_id)
            if deadline is not None and time.monotonic() > deadline + _LATE and self._stepping == job_id:
                interrupted.add(job_id)
                log.warning("async job %s holds the event loop past its timeout; interrupting it", job_id)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(LoopTimeout)
                )

    def _feed(self) -> None:
        while True:
            job = self.lane.next_job()
            if job is None:
                return
            self._loop.call_soon_threadsafe(self._spawn, job)

    def _spawn(self, job: tuple) -> None:
        self._deadlines[job[2]] = time.monotonic() + job[7]
        task = self._loop.create_task(self._run(job))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _run(self, job: tuple) -> None:
        job_id = job[2]
        started = time.perf_counter()
        try:
            answer: Any = await self._dispatch(*job)
        except LoopTimeout:
            timeout = job[7]
            answer = (
                False,
                f"TaskTimeoutError: job {job_id} ({job[0]}) exceeded its timeout of {timeout:g}s",
                "",
                True,
            )
        except asyncio.CancelledError as exc:
            if self._stopping:
                return  # the engine has put the job back
            # The task cancelled itself: that fails the job like any other exception.
            answer = (False, f"CancelledError: {exc}", traceback.format_exc(), True)
        except BaseException as exc:  # never reaches the loop: the job fails instead
            answer = (False, f"{type(exc).__name__}: {exc}", traceback.format_exc(), True)
        finally:
            self._deadlines.pop(job_id, None)
        if self._queue._metrics is not None:
            self._count(job, answer, time.perf_counter() - started)
        self.lane.finish(job_id, answer)

    def _count(self, job: tuple, answer: tuple, elapsed: float) -> None:
        """Counts the run in the worker's Prometheus metrics, as worker threads do."""
        from taskito.metrics import outcome_of

        metrics = self._queue._metrics
        task_name, queue_name, retry_count, max_retries = job[0], job[3], job[4], job[5]
        try:
            outcome = outcome_of(answer, retry_count, max_retries)
            metrics.processed.labels(queue_name, task_name, outcome).inc()
            metrics.duration.labels(queue_name, task_name).observe(elapsed)
        except Exception:  # metrics never fail a job
            log.debug("could not count async job %s", job[2], exc_info=True)

    async def _cancel_all(self) -> None:
        self._stopping = True
        jobs = list(self._jobs)
        for task in jobs:
            task.cancel()
        if jobs:
            await asyncio.wait(jobs, timeout=_STOP_WAIT)

    def stop(self) -> None:
        """Called once the engine has stopped: every job still running was put back, so
        it is cancelled; then the loop ends."""
        self.lane.close()
        self._done.set()
        self._feed_thread.join()
        self._watch_thread.join()
        if self._loop_thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(_STOP_WAIT + 1)
            except Exception:
                log.warning("async jobs did not stop after cancellation", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(_STOP_WAIT)
        if not self._loop_thread.is_alive():
            self._loop.close()

"""Running workers: ``run_worker`` (threads or prefork children on the Rust engine),
``arun_worker``, ``shutdown``, and running one job in the calling thread (``process_one``,
``execute_job``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from taskito import _settings as settings
from taskito.events import EventType
from taskito.exceptions import JobNotFoundError, TaskitoError
from taskito.facets.base import QueueState
from taskito.flow_control import register_limits
from taskito.result import JobResult
from taskito.worker import prefork as _prefork
from taskito.worker.async_pool import AsyncPool, async_task_names
from taskito.worker.dispatch import make_dispatch
from taskito.worker.signals import _signals_drain

log = logging.getLogger("taskito")

_run_counter = itertools.count(1)


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


class Workers(QueueState):
    """Worker runs of ``Queue``."""

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
        self._check_retry_rules()
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
            # Every worker process delivers the webhooks of the events it fires.
            self._webhook_manager.start_reloading()
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
            if self._webhooks is not None:
                self._webhooks.stop_reloading()
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
        return self._job(job_id)


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

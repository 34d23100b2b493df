"""FastAPI (and Starlette) helpers: ``TaskitoRouter``, an ``APIRouter`` of status endpoints
over a queue, and ``worker_lifespan``, a lifespan that runs a worker beside the app.

    app = FastAPI(lifespan=worker_lifespan(queue))
    app.include_router(TaskitoRouter(queue), prefix="/tasks")

Routes (names for ``include_routes`` / ``exclude_routes`` in brackets): ``GET /stats``
[stats], ``/stats/queues`` [queue-stats], ``/jobs/{id}`` [jobs], ``/jobs/{id}/errors``
[job-errors], ``/jobs/{id}/result?timeout=`` [job-result], ``/jobs/{id}/progress``
[job-progress, server-sent events], ``POST /jobs/{id}/cancel`` [cancel], ``GET
/dead-letters`` [dead-letters], ``POST /dead-letters/{id}/retry`` [retry-dead],
``/health`` [health], ``/readiness`` [readiness], ``/resources`` [resources].
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Callable, Optional

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from taskito.exceptions import JobNotFoundError, TaskCancelledError, TaskitoError
from taskito.task_errors import readable

__all__ = ["TaskitoRouter", "worker_lifespan", "ROUTE_NAMES"]

ROUTE_NAMES = (
    "stats", "queue-stats", "jobs", "job-errors", "job-result", "job-progress", "cancel",
    "dead-letters", "retry-dead", "health", "readiness", "resources",
)  # fmt: skip

_FINISHED = ("complete", "failed", "dead", "cancelled")


def _plain(value: Any) -> Any:
    """A value as JSON can carry it: itself if it encodes, else its repr."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class TaskitoRouter(APIRouter):
    """An ``APIRouter`` of a queue's status and control endpoints."""

    def __init__(
        self,
        queue: Any,
        *,
        include_routes: Sequence[str] | None = None,
        exclude_routes: Sequence[str] | None = None,
        dependencies: Sequence[Any] | None = None,
        sse_poll_interval: float = 0.5,
        result_timeout: float = 1.0,
        default_page_size: int = 20,
        max_page_size: int = 100,
        result_serializer: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dependencies=list(dependencies or []), **kwargs)
        for option, names in (("include_routes", include_routes), ("exclude_routes", exclude_routes)):
            unknown = sorted(set(names or ()) - set(ROUTE_NAMES))
            if unknown:
                raise ValueError(f"{option} names unknown routes {unknown}; known: {', '.join(ROUTE_NAMES)}")
        if not sse_poll_interval > 0:
            raise ValueError(f"sse_poll_interval must be positive, got {sse_poll_interval!r}")
        if not 0 <= result_timeout <= 300:
            raise ValueError(f"result_timeout must be between 0 and 300 seconds, got {result_timeout!r}")
        if not 1 <= default_page_size <= max_page_size:
            raise ValueError(
                f"default_page_size must be between 1 and max_page_size ({max_page_size}), "
                f"got {default_page_size!r}"
            )
        self.queue = queue
        self.sse_poll_interval = float(sse_poll_interval)
        self.result_timeout = float(result_timeout)
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.result_serializer = result_serializer or _plain
        wanted = set(include_routes) if include_routes is not None else set(ROUTE_NAMES)
        wanted -= set(exclude_routes or ())
        for name, method, path, endpoint in self._endpoints():
            if name in wanted:
                self.add_api_route(path, endpoint, methods=[method], name=name)

    # -- helpers ------------------------------------------------------------------------

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.queue.get_job(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} not found")
        try:
            return job.to_dict()  # type: ignore[no-any-return]
        except JobNotFoundError:
            raise HTTPException(status_code=404, detail=f"job {job_id} not found") from None

    def _endpoints(self) -> list[tuple[str, str, str, Callable[..., Any]]]:
        queue = self.queue

        async def stats() -> dict[str, int]:
            return await asyncio.to_thread(queue.stats)  # type: ignore[no-any-return]

        async def queue_stats() -> dict[str, dict[str, int]]:
            return await asyncio.to_thread(queue.stats_all_queues)  # type: ignore[no-any-return]

        async def job(job_id: str) -> dict[str, Any]:
            return await asyncio.to_thread(self._job, job_id)

        async def job_errors(job_id: str) -> list[dict[str, Any]]:
            await asyncio.to_thread(self._job, job_id)
            rows = await asyncio.to_thread(queue.job_errors, job_id)
            # A task's error is stored as JSON (0.22's form): an HTTP reader gets its summary.
            return [{**row, "error": readable(row["error"])} for row in rows]

        async def job_result(
            job_id: str, timeout: float = Query(default=self.result_timeout, ge=0, le=300)
        ) -> dict[str, Any]:
            await asyncio.to_thread(self._job, job_id)
            handle = queue.get_job(job_id)
            try:
                value = await handle.aresult(timeout=timeout)
            except TimeoutError:
                return {"id": job_id, "status": handle.status, "result": None, "error": None}
            except (TaskitoError, TaskCancelledError) as exc:
                return {
                    "id": job_id,
                    "status": handle.status,
                    "result": None,
                    "error": handle.error or str(exc),
                }
            return {
                "id": job_id,
                "status": "complete",
                "result": self.result_serializer(value),
                "error": None,
            }

        async def job_progress(job_id: str, include_results: bool = False) -> StreamingResponse:
            await asyncio.to_thread(self._job, job_id)
            return StreamingResponse(
                self._progress_events(job_id, include_results),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )

        async def cancel(job_id: str) -> dict[str, bool]:
            await asyncio.to_thread(self._job, job_id)
            return {"cancelled": await asyncio.to_thread(queue.cancel_job, job_id)}

        async def dead_letters(
            # Optional[...]: FastAPI evaluates these annotations at run time (Python 3.9 too).
            limit: Optional[int] = Query(default=None, ge=1), offset: int = Query(default=0, ge=0)
        ) -> Any:
            size = min(limit or self.default_page_size, self.max_page_size)
            return await asyncio.to_thread(queue.dead_letters, size, offset)

        async def retry_dead(dead_id: str) -> dict[str, str]:
            try:
                new_id = await asyncio.to_thread(queue.retry_dead, dead_id)
            except (JobNotFoundError, KeyError, ValueError) as exc:
                raise HTTPException(
                    status_code=404, detail=f"dead letter {dead_id} not found: {exc}"
                ) from None
            return {"new_job_id": new_id}

        async def health() -> dict[str, str]:
            return {"status": "ok"}

        async def readiness() -> Any:
            checks: dict[str, Any] = {}
            try:
                await asyncio.to_thread(queue.stats)
                checks["storage"] = {"status": "ok"}
            except Exception as exc:
                checks["storage"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            try:
                live = [w for w in await asyncio.to_thread(queue.workers) if w["status"] == "active"]
                checks["workers"] = {"status": "ok" if live else "degraded", "alive": len(live)}
            except Exception as exc:
                checks["workers"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            ready = checks["storage"]["status"] == "ok"
            body = {"status": "ready" if ready else "not_ready", "checks": checks}
            if not ready:
                from fastapi.responses import JSONResponse

                return JSONResponse(body, status_code=503)
            return body

        async def resources() -> list[dict[str, Any]]:
            # This build has no worker resources (dependency injection); the list is empty.
            return []

        return [
            ("stats", "GET", "/stats", stats),
            ("queue-stats", "GET", "/stats/queues", queue_stats),
            ("jobs", "GET", "/jobs/{job_id}", job),
            ("job-errors", "GET", "/jobs/{job_id}/errors", job_errors),
            ("job-result", "GET", "/jobs/{job_id}/result", job_result),
            ("job-progress", "GET", "/jobs/{job_id}/progress", job_progress),
            ("cancel", "POST", "/jobs/{job_id}/cancel", cancel),
            ("dead-letters", "GET", "/dead-letters", dead_letters),
            ("retry-dead", "POST", "/dead-letters/{dead_id}/retry", retry_dead),
            ("health", "GET", "/health", health),
            ("readiness", "GET", "/readiness", readiness),
            ("resources", "GET", "/resources", resources),
        ]

    async def _progress_events(self, job_id: str, include_results: bool) -> AsyncIterator[bytes]:
        """``data: {json}`` events of the job's status and progress, one per change, until it
        finishes (the last event carries the final status) or disappears."""
        last: dict[str, Any] | None = None
        while True:
            try:
                data = await asyncio.to_thread(self.queue._inner.get_job, job_id)
            except Exception:
                return
            if data is None:
                return
            event: dict[str, Any] = {"status": data["status"], "progress": data["progress"]}
            if include_results and data["status"] == "complete":
                try:
                    value = await self.queue.get_job(job_id).aresult(timeout=0)
                    event["partial_result"] = self.result_serializer(value)
                except Exception:
                    event["partial_result"] = None
            if event != last:
                yield f"data: {json.dumps(event)}\n\n".encode()
                last = event
            if data["status"] in _FINISHED:
                return
            await asyncio.sleep(self.sse_poll_interval)


def worker_lifespan(queue: Any, **worker_options: Any) -> Callable[[Any], Any]:
    """A lifespan for ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)`` that runs
    ``queue.arun_worker(**worker_options)`` while the app serves, and on shutdown stops it:
    no new job is taken, running ones finish (up to the queue's ``drain_timeout``, else they
    are put back as pending), then the server exits."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        worker = asyncio.create_task(queue.arun_worker(**worker_options))
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    return lifespan

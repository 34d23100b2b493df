"""A web app that runs its own taskito worker: FastAPI serves requests, and the worker
runs in the same process, started and stopped by the app's lifespan.

    uvicorn examples.webapp:app --port 8000
    curl -X POST localhost:8000/jobs -H 'content-type: application/json' -d '{"text": "hi"}'
    curl localhost:8000/jobs/<id>

Stopping the server (Ctrl-C or SIGTERM) cancels the worker task: the worker takes no new
job, lets running ones finish (up to the queue's ``drain_timeout``, else puts them back as
pending) and only then does the process exit, so no job is lost.

The database is ``TASKITO_DB_PATH`` (default ``.taskito/taskito.db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from taskito import Queue

queue = Queue(workers=2)


@queue.task()
def shout(text: str, seconds: float = 0.0) -> str:
    """Stands for real work: waits ``seconds``, then upper-cases ``text``."""
    time.sleep(seconds)
    return text.upper()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    worker = asyncio.create_task(queue.arun_worker())
    try:
        yield
    finally:
        # Cancelling arun_worker drains the worker; wait until it has stopped.
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


app = FastAPI(lifespan=lifespan)


class NewJob(BaseModel):
    text: str
    seconds: float = 0.0


@app.post("/jobs", status_code=201)
async def create_job(body: NewJob) -> dict[str, Any]:
    job = shout.delay(body.text, seconds=body.seconds)
    return {"id": job.id, "status": "pending"}


@app.get("/jobs/{job_id}")
async def read_job(job_id: str) -> dict[str, Any]:
    job = await asyncio.to_thread(queue.get_job, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    data = await asyncio.to_thread(job.to_dict)
    out: dict[str, Any] = {"id": job_id, "status": data["status"], "result": None, "error": data["error"]}
    if data["status"] == "complete":
        out["result"] = await job.aresult(timeout=0)
    return out

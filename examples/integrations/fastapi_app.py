"""A FastAPI app with a worker beside it and taskito's status routes under ``/tasks``.

    uvicorn examples.integrations.fastapi_app:app

Run as a script, it starts the app in-process (lifespan included), enqueues a job over HTTP
and reads it back, then shuts down: the worker stops cleanly with the app.
"""

import tempfile

from fastapi import FastAPI

from taskito import Queue
from taskito.contrib.fastapi import TaskitoRouter, worker_lifespan

queue = Queue(db_path=f"{tempfile.mkdtemp()}/tasks.db", workers=2)


@queue.task()
def add(x: int, y: int) -> int:
    return x + y


app = FastAPI(lifespan=worker_lifespan(queue))
app.include_router(TaskitoRouter(queue), prefix="/tasks")


@app.post("/add")
def create(x: int, y: int) -> dict:
    return {"job_id": add.delay(x, y).id}


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        job_id = client.post("/add", params={"x": 2, "y": 3}).json()["job_id"]
        print(client.get(f"/tasks/jobs/{job_id}/result", params={"timeout": 10}).json())
        print(client.get("/tasks/stats").json())

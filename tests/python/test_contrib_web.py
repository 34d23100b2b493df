"""FastAPI and Flask helpers over HTTP: the frameworks' test clients, and a real server
(uvicorn, werkzeug) on 127.0.0.1 with a worker running beside the app."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from typing import Any

import flask
import httpx
import pytest
from conftest import RunningWorker
from fastapi import FastAPI

from taskito import Queue, current_job

with warnings.catch_warnings():
    # Starlette's test client asks for the httpx2 fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from taskito.contrib.fastapi import ROUTE_NAMES, TaskitoRouter, worker_lifespan
from taskito.contrib.flask import Taskito


def tasks_of(queue: Queue) -> dict[str, Any]:
    @queue.task()
    def add(x: int, y: int) -> int:
        return x + y

    @queue.task(max_retries=0)
    def fail() -> None:
        raise ValueError("bad")

    @queue.task()
    def stepped(n: int) -> str:
        for i in range(n):
            current_job.update_progress(int(100 * (i + 1) / n))
            time.sleep(0.05)
        return "done"

    return {"add": add, "fail": fail, "stepped": stepped}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


# -- FastAPI -----------------------------------------------------------------------------


def test_fastapi_router_routes(tmp_path):
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=2, scheduler_poll_interval_ms=10)
    t = tasks_of(queue)
    app = FastAPI()
    app.include_router(TaskitoRouter(queue), prefix="/tasks")
    client = TestClient(app)
    added, failed = t["add"].delay(2, 3), t["fail"].delay()
    assert client.get(f"/tasks/jobs/{added.id}").json()["status"] == "pending"
    assert client.get("/tasks/jobs/nope").status_code == 404
    pending = client.get(f"/tasks/jobs/{added.id}/result", params={"timeout": 0}).json()
    assert pending == {"id": added.id, "status": "pending", "result": None, "error": None}
    assert client.get(f"/tasks/jobs/{added.id}/result", params={"timeout": 301}).status_code == 422
    assert client.get("/tasks/stats").json()["pending"] == 2
    assert client.get("/tasks/stats/queues").json()["default"]["pending"] == 2
    w = RunningWorker(queue).start()
    done = client.get(f"/tasks/jobs/{added.id}/result", params={"timeout": 10}).json()
    assert done == {"id": added.id, "status": "complete", "result": 5, "error": None}
    broken = client.get(f"/tasks/jobs/{failed.id}/result", params={"timeout": 10}).json()
    assert broken["status"] == "dead" and "bad" in broken["error"]
    assert client.get(f"/tasks/jobs/{failed.id}/errors").json()[0]["error"].startswith("ValueError")
    readiness = client.get("/tasks/readiness").json()
    assert readiness["status"] == "ready" and readiness["checks"]["workers"]["alive"] >= 1
    w.stop()
    dead = client.get("/tasks/dead-letters").json()
    assert [d["task_name"] for d in dead] == [t["fail"].name]
    retried = client.post(f"/tasks/dead-letters/{dead[0]['id']}/retry").json()
    assert queue.get_job(retried["new_job_id"]).status == "pending"
    assert client.post(f"/tasks/jobs/{retried['new_job_id']}/cancel").json() == {"cancelled": True}
    assert client.get("/tasks/health").json() == {"status": "ok"}
    assert client.get("/tasks/resources").json() == []
    queue.close()


def test_fastapi_router_dependencies_guard_every_route(tmp_path):
    from fastapi import Depends, Header, HTTPException

    def token(x_token: str = Header(default="")) -> None:
        if x_token != "secret":
            raise HTTPException(status_code=401, detail="bad token")

    queue = Queue(db_path=str(tmp_path / "q.db"))
    app = FastAPI()
    app.include_router(TaskitoRouter(queue, dependencies=[Depends(token)]))
    client = TestClient(app)
    assert client.get("/stats").status_code == 401
    assert client.post("/jobs/x/cancel").status_code == 401
    assert client.get("/stats", headers={"x-token": "secret"}).status_code == 200
    queue.close()


def test_fastapi_route_selection_and_bad_options(tmp_path):
    queue = Queue(db_path=str(tmp_path / "q.db"))
    router = TaskitoRouter(queue, include_routes=["health", "jobs"])
    assert sorted(r.name for r in router.routes) == ["health", "jobs"]
    router = TaskitoRouter(queue, exclude_routes=["cancel"])
    assert sorted(r.name for r in router.routes) == sorted(set(ROUTE_NAMES) - {"cancel"})
    with pytest.raises(ValueError, match="unknown routes"):
        TaskitoRouter(queue, include_routes=["stats", "everything"])
    with pytest.raises(ValueError, match="result_timeout"):
        TaskitoRouter(queue, result_timeout=500)
    queue.close()


def test_fastapi_lifespan_and_progress_stream_on_a_real_server(tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=2, scheduler_poll_interval_ms=10)
    t = tasks_of(queue)
    app = FastAPI(lifespan=worker_lifespan(queue))
    app.include_router(TaskitoRouter(queue, sse_poll_interval=0.02))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    job = t["stepped"].delay(4)
    with httpx.stream("GET", f"{base}/jobs/{job.id}/progress", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse("".join(response.iter_text()))
    assert events[-1]["status"] == "complete"
    progress = [e["progress"] for e in events if e["progress"] is not None]
    assert progress == sorted(progress) and progress[-1] == 100
    assert httpx.get(f"{base}/jobs/nope/progress").status_code == 404
    # The worker ran beside the app; shutting the server down stops it.
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()
    assert not queue._running.locked()
    queue.close()


def test_fastapi_lifespan_drains_on_shutdown(tmp_path):
    queue = Queue(db_path=str(tmp_path / "q.db"), workers=1, scheduler_poll_interval_ms=10)
    t = tasks_of(queue)
    app = FastAPI(lifespan=worker_lifespan(queue))
    with TestClient(app):
        job = t["add"].delay(1, 1)
        assert job.result(timeout=20) == 2
    assert not queue._running.locked()
    queue.close()


# -- Flask -------------------------------------------------------------------------------


def flask_app(tmp_path) -> tuple[Any, Taskito]:
    app = flask.Flask(__name__)
    app.config.update(TASKITO_DB_PATH=str(tmp_path / "f.db"), TASKITO_WORKERS=2, TASKITO_DEFAULT_RETRY=0)
    ext = Taskito(app)
    app.register_blueprint(ext.blueprint(poll_interval=0.02), url_prefix="/tasks")
    return app, ext


def test_flask_extension_config_cli_and_routes(tmp_path):
    app, ext = flask_app(tmp_path)
    assert app.extensions["taskito"] is ext
    assert ext.queue.db_path.endswith("f.db") and ext.queue.default_retry == 0
    assert app.config["TASKITO_DRAIN_TIMEOUT"] == 30
    t = tasks_of(ext.queue)
    job = t["add"].delay(20, 22)
    runner = app.test_cli_runner()
    info = runner.invoke(args=["taskito", "info", "--format", "json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["stats"]["pending"] == 1
    table = runner.invoke(args=["taskito", "info"])
    assert "default" in table.output
    client = app.test_client()
    assert client.get(f"/tasks/jobs/{job.id}").get_json()["status"] == "pending"
    assert client.get("/tasks/jobs/nope").status_code == 404
    assert client.get(f"/tasks/jobs/{job.id}/result?timeout=abc").status_code == 400
    ext.start_worker()
    assert client.get(f"/tasks/jobs/{job.id}/result?timeout=10").get_json()["result"] == 42
    ext.stop_worker()
    assert not ext.queue._running.locked()
    ext.queue.close()


def test_flask_cli_worker_runs_jobs(tmp_path):
    app, ext = flask_app(tmp_path)
    t = tasks_of(ext.queue)
    job = t["add"].delay(1, 2)
    other = t["add"].apply_async((3, 4), queue="other")
    runner = app.test_cli_runner()
    done = threading.Event()

    def stop_when_done() -> None:
        job.result(timeout=20)
        ext.queue.shutdown()
        done.set()

    threading.Thread(target=stop_when_done, daemon=True).start()
    result = runner.invoke(args=["taskito", "worker", "--queues", "default"])
    assert result.exit_code == 0, result.output
    assert done.wait(5)
    assert job.result(timeout=1) == 3
    assert other.status == "pending"  # not one of the queues served
    ext.queue.close()


def test_flask_progress_stream_on_a_real_server(tmp_path):
    from werkzeug.serving import make_server

    app, ext = flask_app(tmp_path)
    t = tasks_of(ext.queue)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ext.start_worker()
    try:
        job = t["stepped"].delay(3)
        base = f"http://127.0.0.1:{server.server_port}"
        with httpx.stream("GET", f"{base}/tasks/jobs/{job.id}/progress", timeout=30) as response:
            events = sse("".join(response.iter_text()))
        assert events[-1]["status"] == "complete" and events[-1]["progress"] == 100
        assert httpx.get(f"{base}/tasks/jobs/{job.id}/result").json()["result"] == "done"
    finally:
        ext.stop_worker()
        server.shutdown()
        thread.join(10)
    ext.queue.close()


def test_flask_queue_before_init_app():
    ext = Taskito()
    with pytest.raises(RuntimeError, match="init_app"):
        _ = ext.queue

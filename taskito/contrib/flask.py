"""Flask extension: ``Taskito(app)`` builds the queue from the app's ``TASKITO_*`` config
and adds ``flask taskito worker`` / ``flask taskito info``.

Config keys (defaults): ``TASKITO_DB_PATH`` (".taskito/taskito.db"), ``TASKITO_BACKEND``
("sqlite"), ``TASKITO_DB_URL``, ``TASKITO_WORKERS`` (0), ``TASKITO_SCHEMA`` ("taskito"),
``TASKITO_DEFAULT_RETRY`` (3), ``TASKITO_DEFAULT_TIMEOUT`` (300), ``TASKITO_DEFAULT_PRIORITY``
(0), ``TASKITO_RESULT_TTL``, ``TASKITO_DRAIN_TIMEOUT`` (30).

Beyond 0.22: ``ext.blueprint()`` serves a job's status, result and a progress stream
(server-sent events); ``ext.start_worker()`` / ``ext.stop_worker()`` run a worker on a
thread beside the app, e.g. for a single-process deployment.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from flask.cli import AppGroup

from taskito.app import Queue
from taskito.exceptions import TaskitoError

__all__ = ["Taskito"]

_DEFAULTS: dict[str, Any] = {
    "TASKITO_DB_PATH": ".taskito/taskito.db",
    "TASKITO_BACKEND": "sqlite",
    "TASKITO_DB_URL": None,
    "TASKITO_WORKERS": 0,
    "TASKITO_SCHEMA": "taskito",
    "TASKITO_DEFAULT_RETRY": 3,
    "TASKITO_DEFAULT_TIMEOUT": 300,
    "TASKITO_DEFAULT_PRIORITY": 0,
    "TASKITO_RESULT_TTL": None,
    "TASKITO_DRAIN_TIMEOUT": 30,
}
_FINISHED = ("complete", "failed", "dead", "cancelled")


def queue_from_config(config: Any) -> Queue:
    """A ``Queue`` built from ``TASKITO_*`` keys of a Flask config (missing keys: defaults)."""
    get = lambda key: config.get(key, _DEFAULTS[key])  # noqa: E731
    return Queue(
        db_path=get("TASKITO_DB_PATH"),
        workers=get("TASKITO_WORKERS"),
        backend=get("TASKITO_BACKEND"),
        db_url=get("TASKITO_DB_URL"),
        schema=get("TASKITO_SCHEMA"),
        default_retry=get("TASKITO_DEFAULT_RETRY"),
        default_timeout=get("TASKITO_DEFAULT_TIMEOUT"),
        default_priority=get("TASKITO_DEFAULT_PRIORITY"),
        result_ttl=get("TASKITO_RESULT_TTL"),
        drain_timeout=get("TASKITO_DRAIN_TIMEOUT"),
    )


class Taskito:
    """The extension: ``Taskito(app)`` or ``ext = Taskito(); ext.init_app(app)``."""

    def __init__(self, app: Flask | None = None, cli_group: str | None = "taskito") -> None:
        self.cli_group = cli_group
        self._queue: Queue | None = None
        self._worker: threading.Thread | None = None
        if app is not None:
            self.init_app(app)

    @property
    def queue(self) -> Queue:
        """The queue (built by ``init_app``; tasks may be declared on it before that only
        through ``Taskito(app)``)."""
        if self._queue is None:
            raise RuntimeError("Taskito.queue is set by init_app(app); call it first")
        return self._queue

    def init_app(self, app: Flask) -> None:
        for key, value in _DEFAULTS.items():
            app.config.setdefault(key, value)
        if self._queue is None:
            self._queue = queue_from_config(app.config)
        app.extensions["taskito"] = self
        if self.cli_group:
            app.cli.add_command(self._commands())

    # -- CLI ------------------------------------------------------------------------------

    def _commands(self) -> AppGroup:
        group = AppGroup(self.cli_group, help="Run and inspect the taskito queue.")
        ext = self

        @group.command("worker")
        @click.option("--queues", default=None, help="comma-separated queues to serve (default: all)")
        def worker(queues: str | None) -> None:
            """Run a worker until SIGINT/SIGTERM."""
            names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
            queue = ext.queue
            click.echo(f"[taskito] Starting worker (database {queue.db_path}), queues: {queues or 'all'}")
            n = queue.run_worker(queues=names)
            click.echo(f"[taskito] Processed {n} job(s).")

        @group.command("info")
        @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
        def info(fmt: str) -> None:
            """Job counts per queue and status."""
            per_queue = ext.queue.stats_all_queues()
            if fmt == "json":
                click.echo(json.dumps({"stats": ext.queue.stats(), "queues": per_queue}, sort_keys=True))
                return
            statuses = ("pending", "running", "completed", "failed", "dead", "cancelled")
            click.echo(f"{'queue':<20}" + "".join(f"{s:>11}" for s in statuses))
            for name in sorted(per_queue):
                click.echo(f"{name:<20}" + "".join(f"{per_queue[name][s]:>11}" for s in statuses))

        return group

    # -- a worker beside the app ----------------------------------------------------------

    def start_worker(self, **worker_options: Any) -> threading.Thread:
        """Runs ``queue.run_worker(**worker_options)`` on a daemon thread; returns it."""
        if self._worker is not None and self._worker.is_alive():
            raise RuntimeError("a worker started by this extension is already running")
        thread = threading.Thread(
            target=self.queue.run_worker, kwargs=worker_options, name="taskito-flask-worker", daemon=True
        )
        thread.start()
        self._worker = thread
        return thread

    def stop_worker(self, timeout: float | None = None) -> None:
        """Stops the worker of ``start_worker``: running jobs finish (up to the queue's
        ``drain_timeout``), then the thread exits."""
        thread = self._worker
        if thread is None:
            return
        deadline = time.monotonic() + (timeout if timeout is not None else self.queue.drain_timeout + 10)
        # Asked until the thread ends: a request made while the worker was still starting
        # would otherwise be lost.
        while thread.is_alive() and time.monotonic() < deadline:
            self.queue.shutdown()
            thread.join(0.1)
        self._worker = None

    # -- status endpoints -----------------------------------------------------------------

    def blueprint(self, name: str = "taskito", poll_interval: float = 0.5) -> Blueprint:
        """A blueprint of ``GET /jobs/<id>``, ``/jobs/<id>/result?timeout=`` and
        ``/jobs/<id>/progress`` (server-sent events until the job finishes)."""
        bp = Blueprint(name, __name__)
        ext = self

        def found(job_id: str) -> dict[str, Any]:
            job = ext.queue.get_job(job_id)
            if job is None:
                abort(404, description=f"job {job_id} not found")
            return job.to_dict()  # type: ignore[no-any-return]

        @bp.get("/jobs/<job_id>")
        def job(job_id: str) -> Any:
            return jsonify(found(job_id))

        @bp.get("/jobs/<job_id>/result")
        def job_result(job_id: str) -> Any:
            found(job_id)
            try:
                timeout = float(request.args.get("timeout", "1"))
            except ValueError:
                abort(400, description="timeout must be a number of seconds")
            if not 0 <= timeout <= 300:
                abort(400, description="timeout must be between 0 and 300 seconds")
            handle = ext.queue.get_job(job_id)
            try:
                value = handle.result(timeout=timeout)
            except TimeoutError:
                return jsonify(id=job_id, status=handle.status, result=None, error=None)
            except TaskitoError as exc:
                return jsonify(id=job_id, status=handle.status, result=None, error=handle.error or str(exc))
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                value = repr(value)
            return jsonify(id=job_id, status="complete", result=value, error=None)

        @bp.get("/jobs/<job_id>/progress")
        def job_progress(job_id: str) -> Response:
            found(job_id)
            queue = ext.queue

            def events() -> Iterator[str]:
                last = None
                while True:
                    data = queue._inner.get_job(job_id)
                    if data is None:
                        return
                    event = {"status": data["status"], "progress": data["progress"]}
                    if event != last:
                        yield f"data: {json.dumps(event)}\n\n"
                        last = event
                    if data["status"] in _FINISHED:
                        return
                    time.sleep(poll_interval)

            return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

        return bp


def get_queue() -> Queue:
    """The queue of the current Flask app's extension."""
    return current_app.extensions["taskito"].queue  # type: ignore[no-any-return]

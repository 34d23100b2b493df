"""The parent's half of the prefork pool: where children find the app, and the command
that starts them (``taskito/worker/prefork_child.py`` is the child). A child imports the app the
way ``taskito worker --app`` names it, or, for a worker started from a script, the module
that holds this ``Queue`` (a script run as ``__main__`` is run again in the child under
another name, as ``multiprocessing`` does, so its ``if __name__ == "__main__":`` block
does not run there)."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable

from taskito.events import EventType
from taskito.exceptions import TaskitoError
from taskito.worker.dispatch import emit_failure_events

if TYPE_CHECKING:
    from taskito.worker.host import EventSink

# True while a child imports the app: a `run_worker` call then is an unguarded script.
CHILD_LOADING = False

_MAIN_NAMES = ("__main__", "__mp_main__")


def _holders(queue: object) -> list[tuple[str, str]]:
    found = []
    for name, module in list(sys.modules.items()):
        try:
            items = list(vars(module).items())
        except Exception:  # not a module with a namespace (a stub object, a lazy proxy)
            continue
        for attr, value in items:
            if value is queue:
                found.append((name, attr))
    return found


def locate_app(queue: object) -> list[str]:
    """Child arguments that load this queue: ``--app m:a``, ``--main-module m --attr a``
    or ``--main-path file --attr a``."""
    holders = _holders(queue)
    for name, attr in holders:
        if name not in _MAIN_NAMES:
            return ["--app", f"{name}:{attr}"]
    for name, attr in holders:
        main = sys.modules[name]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name not in _MAIN_NAMES:
            return ["--main-module", spec.name, "--attr", attr]
        path = getattr(main, "__file__", None)
        if path:
            return ["--main-path", path, "--attr", attr]
    raise TaskitoError(
        'pool="prefork" runs tasks in child processes, which must import this Queue, but it is '
        "not a module-level name of any file-backed module (a Queue made inside a function or "
        'in `python -c` cannot be found): define it at module level, or pass app="module:attribute"'
    )


def event_relay(queue: EventSink) -> Callable[..., None]:
    """The callable the engine gives the events of prefork jobs, on the worker thread that
    ran the job: the events a child raised (JSON texts ``[name, payload]``), or, for a job
    whose child died or whose outcome the engine replaced (a timeout), the failure the
    engine stores. Either way they go to this ``Queue``'s event thread, as a worker
    thread's own events do."""

    def relay(
        job_id: str,
        task_name: str,
        queue_name: str,
        retry_count: int,
        max_retries: int,
        events: list[str] | None,
        error: str | None,
        retryable: bool,
    ) -> None:
        if queue._dispatcher is None:
            return
        if events is not None:
            for text in events:
                name, payload = json.loads(text)
                queue._emit(EventType(name), payload)
            return
        info = {"job_id": job_id, "task_name": task_name, "queue": queue_name}
        emit_failure_events(queue, info, error or "", False, retryable, retry_count, max_retries)

    return relay


def child_spec(
    queue: EventSink, app: str | None, max_tasks_per_child: int | None, observe: Callable[..., None] | None
) -> tuple[Any, ...]:
    """``(argv, env, max_tasks_per_child, observe, relay)`` as the engine's
    ``run_worker(prefork=...)`` takes it; ``observe`` is told each job's outcome in this
    process (the worker's metrics), ``relay`` fires the jobs' events here."""
    if app is not None:
        if not isinstance(app, str) or ":" not in app:
            raise ValueError(f"app must be 'module:attribute', got {app!r}")
        where = ["--app", app]
    else:
        where = locate_app(queue)
    env = {"TASKITO_PREFORK_SYS_PATH": json.dumps(sys.path)}
    logger = logging.getLogger("taskito")
    if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
        env["TASKITO_PREFORK_LOG_LEVEL"] = str(logger.getEffectiveLevel())
    argv = [sys.executable, "-m", "taskito.worker.prefork_child", *where]
    return (argv, list(env.items()), max_tasks_per_child, observe, event_relay(queue))

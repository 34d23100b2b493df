"""How a Django task runs as a taskito job, and how a job reads back as a Django
``TaskResult``.

Each run writes two kinds of job log lines that ``get_result`` reads from any process:
``django.started`` (the worker id, the start time) and ``django.error`` (the exception's
class path and traceback). They are read back as untrusted input: only well-formed values
of the expected types are used.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import datetime
from datetime import timezone as dt_timezone
from inspect import iscoroutinefunction
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from taskito.context import current_job

log = logging.getLogger("taskito")

METADATA_KEY = "django"
STARTED = "django.started"
FAILED = "django.error"
_DEFERRED_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_TRACEBACK = 64 * 1024

_STATUS = {
    "pending": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "complete": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "dead": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


def is_deferred_id(result_id: str) -> bool:
    """Whether ``result_id`` has the shape of an id given to an enqueue deferred to commit."""
    return bool(_DEFERRED_ID.match(result_id))


def _when(ms: Any) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
        return None
    value = datetime.fromtimestamp(ms / 1000, tz=dt_timezone.utc)
    return value if settings.USE_TZ else timezone.make_naive(value)


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if settings.USE_TZ and timezone.is_naive(parsed):
        return None
    if not settings.USE_TZ and timezone.is_aware(parsed):
        return timezone.make_naive(parsed)
    return parsed


def new_result(
    backend: Any, task: Any, result_id: str, args: list[Any], kwargs: dict[str, Any], enqueued: Any
) -> TaskResult:
    """The ``TaskResult`` of a job just enqueued."""
    return TaskResult(
        task=task,
        id=result_id,
        status=TaskResultStatus.READY,
        enqueued_at=enqueued,
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=args,
        kwargs=kwargs,
        backend=backend.alias,
        errors=[],
        worker_ids=[],
    )


def _task_of(backend: Any, path: str, row: dict[str, Any]) -> Any:
    """The Django task a job runs, found by the module path stored as its task name: only
    a ``django.tasks.Task`` of this backend counts, so a tampered name imports nothing
    callable."""
    try:
        found = import_string(path)
    except (ImportError, AttributeError, ValueError):
        return None
    if not isinstance(found, Task) or found.backend != backend.alias:
        return None
    return found


def _attempts(job_id: str, queue: Any) -> tuple[list[tuple[str, datetime | None]], list[TaskError]]:
    """The runs (worker id, start time) and errors recorded in the job's log lines."""
    runs: list[tuple[str, datetime | None]] = []
    errors: list[TaskError] = []
    for line in queue._inner.task_logs(job_id):
        message = line.get("message")
        if message not in (STARTED, FAILED):
            continue
        try:
            extra = json.loads(line.get("extra") or "{}")
        except (TypeError, ValueError):
            continue
        if not isinstance(extra, dict):
            continue
        if message == STARTED:
            worker = extra.get("worker_id")
            if isinstance(worker, str) and 0 < len(worker) <= 256:
                runs.append((worker, _iso(extra.get("at"))))
        else:
            path, text = extra.get("exception_class_path"), extra.get("traceback")
            if isinstance(path, str) and isinstance(text, str) and len(path) <= 512:
                errors.append(TaskError(exception_class_path=path, traceback=text[:_MAX_TRACEBACK]))
    return runs, errors


def result_from_row(backend: Any, row: dict[str, Any]) -> TaskResult | None:
    """The ``TaskResult`` of a stored job, or None if it is not a task of ``backend``."""
    try:
        meta = json.loads(row.get("metadata") or "null")
    except (TypeError, ValueError):
        return None
    info = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(info, dict) or info.get("backend") != backend.alias:
        return None
    args, kwargs = info.get("args"), info.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    task = _task_of(backend, row["task_name"], row)
    if task is None:
        return None
    queue = backend.queue
    job_id = row["id"]
    runs, errors = _attempts(job_id, queue)
    status = _STATUS.get(row["status"], TaskResultStatus.READY)
    if status == TaskResultStatus.FAILED and not errors:
        # Failed before or outside the function (timeout, cancel, unreadable arguments).
        text = row.get("error") or row["status"]
        errors.append(TaskError(exception_class_path="taskito.exceptions.TaskitoError", traceback=str(text)))
    run_after = (
        _when(row.get("scheduled_at")) if row.get("scheduled_at", 0) > row.get("created_at", 0) + 1 else None
    )
    try:
        task = (
            task.using(priority=row.get("priority"), queue_name=row.get("queue"), run_after=run_after)
            if run_after is not None
            else task.using(priority=row.get("priority"), queue_name=row.get("queue"))
        )
    except Exception:
        pass  # the stored options no longer validate: report the task as declared
    finished = (
        _when(row.get("completed_at"))
        if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        else None
    )
    result = TaskResult(
        task=task,
        id=row.get("django_result_id") or job_id,
        status=status,
        enqueued_at=_when(row.get("created_at")),
        started_at=runs[0][1] if runs else _when(row.get("started_at")),
        finished_at=finished,
        last_attempted_at=runs[-1][1] if runs else _when(row.get("started_at")),
        args=args,
        kwargs=kwargs,
        backend=backend.alias,
        errors=errors,
        worker_ids=[worker for worker, _ in runs],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        found = queue._inner.get_outcome(job_id)
        value = queue._load_result(job_id, found[1] if found else None)
        object.__setattr__(result, "_return_value", value)
    return result


# -- the worker side ----------------------------------------------------------------------


def register(backend: Any, task: Any) -> None:
    """Registers the taskito task that runs ``task`` on ``backend``'s queue (once)."""
    queue = backend.queue
    name = task.module_path
    existing = queue._tasks.get(name)
    if existing is not None and getattr(existing.fn, "_django_task", None) is task.func:
        return
    runner = _async_runner(backend, name) if iscoroutinefunction(task.func) else _runner(backend, name)
    runner._django_task = task.func  # type: ignore[attr-defined]
    queue.task(name=name)(runner)


def _started(backend: Any, name: str) -> tuple[Any, TaskResult]:
    """Records the run's start and returns the task and its ``TaskResult`` (RUNNING)."""
    job_id, worker_id = current_job.id, current_job.worker_id
    now = timezone.now()
    current_job.log(STARTED, extra={"worker_id": worker_id, "at": now.isoformat()})
    row = backend.queue._inner.get_job(job_id)
    result = result_from_row(backend, row) if row is not None else None
    if result is None:
        raise RuntimeError(f"job {job_id} is not a Django task of backend {backend.alias!r}")
    object.__setattr__(result, "status", TaskResultStatus.RUNNING)
    object.__setattr__(result, "finished_at", None)
    return result.task, result


def _failed(result: TaskResult, exc: BaseException) -> None:
    kind = type(exc)
    path = f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(exc))
    current_job.log(FAILED, extra={"exception_class_path": path, "traceback": text[:_MAX_TRACEBACK]})
    result.errors.append(TaskError(exception_class_path=path, traceback=text))
    object.__setattr__(result, "status", TaskResultStatus.FAILED)
    object.__setattr__(result, "finished_at", timezone.now())


def _succeeded(result: TaskResult, value: Any) -> Any:
    value = normalize_json(value)
    object.__setattr__(result, "_return_value", value)
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", timezone.now())
    return value


def _report(signal: Any, backend: Any, result: TaskResult) -> None:
    for receiver, response in signal.send_robust(type(backend), task_result=result):
        if isinstance(response, Exception):
            log.error("a %s receiver %r raised: %r", signal, receiver, response)


def _runner(backend: Any, name: str) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            task, result = _started(backend, name)
            _report(task_started, backend, result)
            try:
                if task.takes_context:
                    value = task.func(TaskContext(task_result=result), *args, **kwargs)
                else:
                    value = task.func(*args, **kwargs)
                value = _succeeded(result, value)
            except BaseException as exc:
                _failed(result, exc)
                _report(task_finished, backend, result)
                raise
            _report(task_finished, backend, result)
            return value
        finally:
            close_old_connections()

    run.__name__ = run.__qualname__ = name
    return run


def _async_runner(backend: Any, name: str) -> Any:
    async def run(*args: Any, **kwargs: Any) -> Any:
        task, result = _started(backend, name)
        await _areport(task_started, backend, result)
        try:
            if task.takes_context:
                value = await task.func(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = await task.func(*args, **kwargs)
            value = _succeeded(result, value)
        except BaseException as exc:
            _failed(result, exc)
            await _areport(task_finished, backend, result)
            raise
        await _areport(task_finished, backend, result)
        return value

    run.__name__ = run.__qualname__ = name
    return run


async def _areport(signal: Any, backend: Any, result: TaskResult) -> None:
    for receiver, response in await signal.asend_robust(type(backend), task_result=result):
        if isinstance(response, Exception):
            log.error("a %s receiver %r raised: %r", signal, receiver, response)

"""``TaskitoBackend``: a ``django.tasks`` backend whose tasks run on taskito workers
(Django >= 6.0).

    TASKS = {
        "default": {
            "BACKEND": "taskito.contrib.django.TaskitoBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"db_path": "tasks.db"},  # Queue(...) arguments; none: get_queue()
        }
    }

Each Django task becomes a taskito task named by its module path, registered when its
module is imported (the worker finds them in each app's ``tasks`` module). Results are read
from the queue's database, so ``get_result`` works from any process. An enqueue inside
``transaction.atomic()`` of the ``"database"`` option's alias (default ``"default"``) is
stored when that transaction commits, and never if it rolls back.
"""

from __future__ import annotations

import inspect
import threading
import uuid
from typing import Any

from django.core import checks
from django.db import transaction
from django.tasks import TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone

from taskito.app import Queue
from taskito.contrib.django import _runs
from taskito.contrib.django.settings import get_queue

__all__ = ["TaskitoBackend"]

# OPTIONS keys that are the backend's own, not Queue arguments.
_OWN_OPTIONS = {"database": "default"}

_lock = threading.Lock()
# Backend alias -> its queue: one per process, however many threads ask for the backend.
_queues: dict[str, Queue] = {}


def _queue_arguments() -> set[str]:
    return {name for name in inspect.signature(Queue.__init__).parameters if name != "self"}


class TaskitoBackend(BaseTaskBackend):
    """Runs ``django.tasks`` tasks on taskito workers."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        self.database = options.pop("database", _OWN_OPTIONS["database"])
        self.queue_options = options

    # -- the queue --------------------------------------------------------------------

    @property
    def queue(self) -> Queue:
        """This backend's queue (``get_queue()`` when OPTIONS gives no Queue arguments)."""
        found = _queues.get(self.alias)
        if found is None:
            with _lock:
                found = _queues.get(self.alias)
                if found is None:
                    found = Queue(**self.queue_options) if self.queue_options else get_queue()
                    _queues[self.alias] = found
        return found

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors: list[checks.CheckMessage] = []
        known = _queue_arguments() - {"middleware"}
        unknown = sorted(set(self.queue_options) - known)
        if unknown:
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]['OPTIONS'] has unknown option(s) {unknown}",
                    hint=f"OPTIONS takes Queue arguments ({', '.join(sorted(known))}) and 'database'",
                    obj=self,
                    id="taskito.E001",
                )
            )
        if not isinstance(self.database, str):
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]['OPTIONS']['database'] must be a database alias, "
                    f"got {self.database!r}",
                    obj=self,
                    id="taskito.E002",
                )
            )
        for name in sorted(self.queues):
            if not isinstance(name, str) or not name or len(name) > 200:
                errors.append(
                    checks.Error(
                        f"TASKS[{self.alias!r}]['QUEUES'] has an invalid queue name {name!r}",
                        obj=self,
                        id="taskito.E003",
                    )
                )
        if not unknown:
            try:
                _ = self.queue
            except (ValueError, TypeError) as exc:
                errors.append(
                    checks.Error(
                        f"TASKS[{self.alias!r}]['OPTIONS'] is invalid: {exc}", obj=self, id="taskito.E004"
                    )
                )
        return errors

    # -- enqueue ----------------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        _runs.register(self, task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        args, kwargs = list(args), dict(kwargs)
        now = timezone.now()
        connection = transaction.get_connection(self.database)
        if connection.in_atomic_block:
            # Stored when the transaction commits: until then no worker can see it, and a
            # rollback drops it. The id is ours until then; get_result finds the job by it.
            result_id = uuid.uuid4().hex
            result = _runs.new_result(self, task, result_id, args, kwargs, None)

            def store() -> None:
                self._store(task, args, kwargs, result_id)
                object.__setattr__(result, "enqueued_at", timezone.now())
                task_enqueued.send(type(self), task_result=result)

            transaction.on_commit(store, using=self.database)
            return result
        job_id = self._store(task, args, kwargs, None)
        result = _runs.new_result(self, task, job_id, args, kwargs, now)
        task_enqueued.send(type(self), task_result=result)
        return result

    def _store(self, task: Any, args: list[Any], kwargs: dict[str, Any], result_id: str | None) -> str:
        delay = None
        if task.run_after is not None:
            run_after = task.run_after
            if timezone.is_naive(run_after):
                run_after = timezone.make_aware(run_after)
            delay = max(0.0, (run_after - timezone.now()).total_seconds())
        metadata = {_runs.METADATA_KEY: {"backend": self.alias, "args": args, "kwargs": kwargs}}
        if result_id is not None:
            metadata[_runs.METADATA_KEY]["result_id"] = result_id
        job = self.queue.enqueue(
            task.module_path,
            args=tuple(args),
            kwargs=kwargs,
            priority=task.priority,
            delay=delay,
            queue=task.queue_name,
            metadata=metadata,
        )
        return job.id

    # -- results ----------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        if not isinstance(result_id, str) or not result_id or len(result_id) > 200:
            raise TaskResultDoesNotExist(result_id)
        row = self.queue._inner.get_job(result_id)
        if row is None and _runs.is_deferred_id(result_id):
            jobs = self.queue.list_jobs_filtered(metadata_like=f'"result_id": "{result_id}"', limit=2)
            row = jobs[0].to_dict() if len(jobs) == 1 else None
            if row is not None:
                row = dict(row, django_result_id=result_id)
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        found = _runs.result_from_row(self, row)
        if found is None:
            raise TaskResultDoesNotExist(result_id)
        return found

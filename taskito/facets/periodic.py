"""Periodic schedules of ``Queue``: ``@queue.periodic(cron)`` and the calls that list,
pause, resume and delete stored schedules (see ``taskito.periodic``)."""

from __future__ import annotations

from typing import Any, Callable

from taskito import _settings as settings
from taskito._taskito import QueueCore
from taskito.exceptions import JobNotFoundError
from taskito.facets.base import QueueState
from taskito.periodic import PeriodicInfo, _Schedule
from taskito.task import TaskWrapper


class PeriodicSchedules(QueueState):
    """The periodic half of ``Queue``."""

    def periodic(
        self,
        cron: str,
        name: str | None = None,
        args: tuple = (),
        kwargs: dict | None = None,
        queue: str = "default",
        timezone: str | None = None,
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Registers a function as a task and runs it on the ``cron`` schedule (6 fields,
        seconds first; 5 fields mean second 0) in the IANA zone ``timezone`` (default UTC).
        ``name`` (default: the task's name) identifies the schedule."""
        if not isinstance(cron, str):
            raise ValueError(f"cron must be a string, got {cron!r}")
        if timezone is not None and not isinstance(timezone, str):
            raise ValueError(f"timezone must be an IANA name string, got {timezone!r}")
        zone = QueueCore.check_cron(cron, timezone)
        settings.check_queue_name("queue", queue)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        call_args = tuple(args)
        call_kwargs = dict(kwargs or {})

        def register(fn: Callable[..., Any]) -> TaskWrapper:
            wrapper = fn if isinstance(fn, TaskWrapper) else self.task(queue=queue)(fn)
            sched_name = name or wrapper.name
            # Fails now, not when a worker starts, if the arguments cannot be stored.
            self._plan_for(wrapper.name).dump_call(wrapper.name, call_args, call_kwargs)
            self._periodic[sched_name] = _Schedule(
                sched_name, wrapper.name, cron, zone, call_args, call_kwargs, queue
            )
            return wrapper

        return register

    def _register_periodic(self) -> None:
        """Stores this process's schedules (called as a worker starts)."""
        if not self._periodic:
            return
        rows = []
        for s in self._periodic.values():
            opts = self._options(s.task_name, None, None, s.queue, None, None)
            rows.append(
                (
                    s.name,
                    s.task_name,
                    s.cron,
                    s.timezone,
                    opts["queue"],
                    self._plan_for(s.task_name).dump_call(s.task_name, s.args, s.kwargs),
                    opts["priority"],
                    opts["max_retries"],
                    opts["retry_backoff"],
                    opts["timeout"],
                )
            )
        self._inner.register_periodic(rows)

    def list_periodic(self) -> list[PeriodicInfo]:
        """Every schedule stored in the database, by name."""
        return [PeriodicInfo(**row) for row in self._inner.list_periodic()]

    def pause_periodic(self, name: str) -> bool:
        """Stops firing the schedule ``name`` until resumed; False if there is no such
        schedule."""
        return _found(self._inner.set_periodic_enabled, name, False)

    def resume_periodic(self, name: str) -> bool:
        """Fires ``name`` again from its next due time (times missed while paused are not
        caught up); False if there is no such schedule."""
        return _found(self._inner.set_periodic_enabled, name, True)

    def delete_periodic(self, name: str) -> bool:
        """Removes the schedule ``name`` from the database (a worker that starts with the
        decorator stores it again); False if there was no such schedule."""
        self._periodic.pop(name, None)
        return _found(self._inner.delete_periodic, name)


def _found(call: Callable[..., Any], *args: Any) -> bool:
    """True if ``call`` found the schedule it names: the engine raises for an unknown one."""
    try:
        call(*args)
    except JobNotFoundError:
        return False
    return True

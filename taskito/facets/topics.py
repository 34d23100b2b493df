"""Topics: ``publish`` one call to every task subscribed to a topic.

Subscriptions live in the process, like task registrations: the process that publishes must
have run the ``subscribe`` calls (usually at import, next to the tasks). A publish stores one
job per subscribed task, each with that task's own options, in one transaction.
"""

from __future__ import annotations

from typing import Any

from taskito.facets.base import QueueState, job_options, run_options
from taskito.result import JobResult


def _topic(topic: Any) -> str:
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty string, got {topic!r}")
    return topic


def _task_name(task: Any) -> str:
    name = getattr(task, "name", task)
    if not isinstance(name, str) or not name:
        raise ValueError(f"task must be a task (from @queue.task) or a task name, got {task!r}")
    return name


class Topics(QueueState):
    """``subscribe``, ``unsubscribe``, ``subscribers`` and ``publish`` for ``Queue``."""

    def subscribe(self, topic: str, task: Any = None) -> Any:
        """Subscribes a task (a ``TaskWrapper`` or a task name) to ``topic``: each
        ``publish(topic, ...)`` then enqueues one job of it. Returns the task, so it also
        works as a decorator above ``@queue.task()``. Subscribing twice changes nothing."""
        topic = _topic(topic)

        def register(t: Any) -> Any:
            name = _task_name(t)
            names = self._subscriptions.setdefault(topic, [])
            if name not in names:
                names.append(name)
            return t

        return register(task) if task is not None else register

    def unsubscribe(self, topic: str, task: Any) -> bool:
        """Removes a subscription; False if there was none."""
        names = self._subscriptions.get(_topic(topic), [])
        name = _task_name(task)
        if name not in names:
            return False
        names.remove(name)
        return True

    def subscribers(self, topic: str) -> list[str]:
        """Names of the tasks subscribed to ``topic``, in subscription order."""
        return list(self._subscriptions.get(_topic(topic), []))

    def publish(
        self,
        topic: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        priority: int | None = None,
        delay: float | None = None,
        metadata: Any = None,
        expires: float | None = None,
        notes: dict[str, Any] | None = None,
        result_ttl: float | None = None,
    ) -> list[JobResult]:
        """Enqueues ``task(*args, **kwargs)`` for every task subscribed to ``topic``, in one
        transaction; returns their jobs in subscription order (empty without subscribers).
        Each job takes its task's queue, retries and timeout; the options given here apply
        to all of them, and ``on_enqueue`` middleware runs once per job."""
        names = self._subscriptions.get(_topic(topic), [])
        if self._test_results is not None:
            return [self._run_inline(name, args, kwargs or {}) for name in names]  # type: ignore[misc]
        specs = []
        given = job_options(priority, delay, metadata=metadata)
        for name in names:
            options = given
            chain = self._enqueue_chain(name)
            if chain:
                options = self._on_enqueue(chain, name, args, kwargs or {}, given)
                if options["unique_key"] is not None:
                    raise ValueError("on_enqueue may not set unique_key in publish")
            run = run_options(options)
            specs.append(
                self._job_spec(
                    name, args, kwargs, metadata=options["metadata"], notes=notes, expires=expires,
                    result_ttl=result_ttl, **run,
                )
            )  # fmt: skip
        return self._enqueue_specs(specs) if specs else []

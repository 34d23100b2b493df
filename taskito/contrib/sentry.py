"""Sentry error reporting for jobs (``pip install taskito[sentry]``).

Two ways in:

- ``SentryMiddleware`` (as 0.22): add it to ``Queue(middleware=[...])``; each run gets its
  own scope tagged with the job, every failed attempt is captured, each retry leaves a
  breadcrumb. It never calls ``sentry_sdk.init`` and does nothing if Sentry is not set up.
- ``TaskitoIntegration``: pass it to ``sentry_sdk.init(integrations=[...])`` and every
  queue's jobs are reported, no middleware to add. ``report="final_failure"`` reports only a
  job that will not run again; ``monitor_periodic=True`` reports each run of a periodic
  schedule as a Sentry Crons check-in (in progress, then ok or error) with its cron
  expression.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations import Integration

from taskito.contrib._filtering import FilteredMiddleware
from taskito.exceptions import TaskCancelledError
from taskito.task import TaskWrapper

__all__ = ["SentryMiddleware", "TaskitoIntegration"]

_REPORT_CHOICES = ("every_failure", "final_failure")


def _is_active() -> bool:
    client = sentry_sdk.get_client()
    return client.is_active()


class SentryMiddleware(FilteredMiddleware):
    """Reports the jobs' failures to Sentry with the job as tags and context."""

    def __init__(
        self,
        *,
        tag_prefix: str = "taskito",
        transaction_name_fn: Callable[[Any], str] | None = None,
        task_filter: Callable[[str], bool] | None = None,
        extra_tags_fn: Callable[[Any], dict[str, Any]] | None = None,
        predicate: Callable[[Any], Any] | None = None,
        report: str = "every_failure",
    ) -> None:
        super().__init__(task_filter=task_filter, predicate=predicate)
        if not isinstance(tag_prefix, str) or not tag_prefix:
            raise ValueError(f"tag_prefix must be a non-empty string, got {tag_prefix!r}")
        if report not in _REPORT_CHOICES:
            raise ValueError(f"report must be one of 'every_failure', 'final_failure', got {report!r}")
        for option, value in (("transaction_name_fn", transaction_name_fn), ("extra_tags_fn", extra_tags_fn)):
            if value is not None and not callable(value):
                raise ValueError(f"{option} must be callable, got {value!r}")
        self.tag_prefix = tag_prefix
        self.transaction_name_fn = transaction_name_fn
        self.extra_tags_fn = extra_tags_fn
        self.report = report
        # Job id -> (the scope's context manager, the scope).
        self._scopes: dict[str, tuple[Any, Any]] = {}

    def before(self, ctx: Any) -> None:
        if not _is_active() or not self.applies(ctx.task_name, ctx):
            return
        manager = sentry_sdk.isolation_scope()
        scope = manager.__enter__()
        p = self.tag_prefix
        tags = {
            f"{p}.task_name": ctx.task_name,
            f"{p}.job_id": ctx.id,
            f"{p}.queue": ctx.queue_name,
            f"{p}.retry_count": ctx.retry_count,
            f"{p}.worker_id": ctx.worker_id,
        }
        if self.extra_tags_fn is not None:
            try:
                tags.update(self.extra_tags_fn(ctx) or {})
            except Exception:
                pass
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.set_context(
            "taskito",
            {
                "job_id": ctx.id,
                "task_name": ctx.task_name,
                "queue": ctx.queue_name,
                "attempt": ctx.retry_count + 1,
                "retry_count": ctx.retry_count,
                "worker_id": ctx.worker_id,
            },
        )
        name = f"{p}:{ctx.task_name}"
        if self.transaction_name_fn is not None:
            try:
                name = str(self.transaction_name_fn(ctx))
            except Exception:
                pass
        scope.set_transaction_name(name)
        self._scopes[ctx.id] = (manager, scope)

    def after(self, ctx: Any, result: Any, error: BaseException | None) -> None:
        held = self._scopes.get(ctx.id)
        if held is None:
            return
        if error is None:
            self._close(ctx.id)
        elif self.report == "every_failure" and not isinstance(error, TaskCancelledError):
            self._capture(held[1], error, ctx, final=False)
        # A failed run's scope closes in the hook that tells how it ended.

    def on_retry(self, ctx: Any, error: BaseException, retry_count: int) -> None:
        held = self._scopes.get(ctx.id)
        if held is not None:
            held[1].add_breadcrumb(
                category=self.tag_prefix,
                level="warning",
                message=f"Retrying {ctx.task_name} (attempt {retry_count}): {error}",
            )
        self._close(ctx.id)

    def on_dead_letter(self, ctx: Any, error: BaseException) -> None:
        held = self._scopes.get(ctx.id)
        if held is not None and self.report == "final_failure":
            self._capture(held[1], error, ctx, final=True)
        self._close(ctx.id)

    def on_cancel(self, ctx: Any) -> None:
        self._close(ctx.id)

    def _capture(self, scope: Any, error: BaseException, ctx: Any, final: bool) -> None:
        scope.set_tag(f"{self.tag_prefix}.final_failure", final)
        scope.capture_exception(error)

    def _close(self, job_id: str) -> None:
        held = self._scopes.pop(job_id, None)
        if held is not None:
            held[0].__exit__(None, None, None)


class _CronMonitor(FilteredMiddleware):
    """Check-ins of runs of periodic schedules (one per queue: it reads the queue's
    schedules to know which task is periodic, with which cron expression)."""

    def __init__(self, queue: Any) -> None:
        super().__init__()
        self.queue = queue
        self._checkins: dict[str, tuple[str, str, float]] = {}

    def _schedule(self, task_name: str) -> Any:
        for schedule in getattr(self.queue, "_periodic", {}).values():
            if schedule.task_name == task_name:
                return schedule
        return None

    def before(self, ctx: Any) -> None:
        if not _is_active():
            return
        schedule = self._schedule(ctx.task_name)
        if schedule is None:
            return
        config = monitor_config(schedule.cron, schedule.timezone)
        slug = schedule.name.replace(".", "-").replace("_", "-").lower()
        check_in_id = capture_checkin(monitor_slug=slug, status="in_progress", monitor_config=config)
        self._checkins[ctx.id] = (slug, check_in_id, time.monotonic())

    def after(self, ctx: Any, result: Any, error: BaseException | None) -> None:
        held = self._checkins.pop(ctx.id, None)
        if held is None:
            return
        slug, check_in_id, started = held
        capture_checkin(
            monitor_slug=slug,
            check_in_id=check_in_id,
            status="ok" if error is None else "error",
            duration=time.monotonic() - started,
        )


def monitor_config(cron: str, timezone: str | None) -> dict[str, Any] | None:
    """The Sentry monitor settings of a taskito cron expression. Sentry's crontab has five
    fields; taskito's six-field form (seconds first) maps when its seconds field is ``0``,
    otherwise the schedule is left to Sentry to learn from the check-ins."""
    fields = cron.split()
    if len(fields) == 6 and fields[0] == "0":
        fields = fields[1:]
    if len(fields) != 5:
        return None
    config: dict[str, Any] = {"schedule": {"type": "crontab", "value": " ".join(fields)}}
    if timezone:
        config["timezone"] = timezone
    return config


# The middleware the integration adds to each queue, built once per queue.
_lock = threading.Lock()
_added: dict[int, tuple[Any, ...]] = {}
_settings: dict[str, Any] = {}


def _integration_chain(queue: Any) -> tuple[Any, ...]:
    found = _added.get(id(queue))
    if found is not None and found[0] is queue:
        return found[1:]
    with _lock:
        found = _added.get(id(queue))
        if found is None or found[0] is not queue:
            chain: list[Any] = [SentryMiddleware(report=_settings["report"])]
            if _settings["monitor_periodic"]:
                chain.append(_CronMonitor(queue))
            found = (queue, *chain)
            _added[id(queue)] = found
    return found[1:]


class TaskitoIntegration(Integration):
    """``sentry_sdk.init(integrations=[TaskitoIntegration()])``: reports every queue's job
    failures, tagged with the job (no middleware to add)."""

    identifier = "taskito"

    def __init__(self, report: str = "every_failure", monitor_periodic: bool = False) -> None:
        if report not in _REPORT_CHOICES:
            raise ValueError(f"report must be one of 'every_failure', 'final_failure', got {report!r}")
        if not isinstance(monitor_periodic, bool):
            raise ValueError(f"monitor_periodic must be True or False, got {monitor_periodic!r}")
        self.report = report
        self.monitor_periodic = monitor_periodic
        _settings.update(report=report, monitor_periodic=monitor_periodic)
        _added.clear()

    @staticmethod
    def setup_once() -> None:
        original = TaskWrapper._middleware_chain
        if getattr(original, "_taskito_sentry", False):
            return

        def chain_with_sentry(self: TaskWrapper) -> tuple[Any, ...]:
            base = original(self)
            if not _settings or sentry_sdk.get_client().get_integration(TaskitoIntegration) is None:
                return base
            return base + _integration_chain(self._queue)

        chain_with_sentry._taskito_sentry = True  # type: ignore[attr-defined]
        TaskWrapper._middleware_chain = chain_with_sentry  # type: ignore[method-assign]

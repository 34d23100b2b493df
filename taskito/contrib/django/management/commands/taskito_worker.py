"""``manage.py taskito_worker``: runs a worker of the project's queue, with the options of
``taskito worker`` (``--app`` aside: the queue comes from the settings)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskito import _settings
from taskito.contrib.django.settings import get_queue


class Command(BaseCommand):
    help = "Run a taskito worker for this project until SIGINT/SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queues", help="comma-separated queues to serve (default: all)")
        parser.add_argument("--workers", type=int, help="worker threads, 0 = CPU count")
        parser.add_argument(
            "--drain-timeout", type=float, help="seconds to wait for running jobs on shutdown"
        )
        parser.add_argument("--worker-id", help="this worker's id (default <hostname>-<pid>)")
        parser.add_argument("--run-once", action="store_true", help="process what is ready now, then exit")
        parser.add_argument("--max-jobs", type=int, help="exit after processing this many jobs")
        parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
        parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
        parser.add_argument(
            "--backend",
            help="serve the queue of this TASKS alias (a TaskitoBackend with its own OPTIONS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queue = self._queue(options["backend"])
        try:
            queues = _settings.check_queues(options["queues"]) if options["queues"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["metrics_port"] is not None:
            from taskito import metrics

            metrics.serve(queue, options["metrics_port"], options["metrics_host"])
        self.stdout.write(f"[taskito] Starting worker (database {queue.db_path})")
        self.stdout.write(f"[taskito] Registered tasks: {len(queue.tasks)}")
        for name in sorted(queue.tasks):
            self.stdout.write(f"[taskito]   - {name}")
        self.stdout.flush()
        try:
            n = queue.run_worker(
                queues=queues,
                workers=options["workers"],
                worker_id=options["worker_id"],
                run_once=options["run_once"],
                max_jobs=options["max_jobs"],
                drain_timeout=options["drain_timeout"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"[taskito] Processed {n} job(s).")
        self.stdout.write("[taskito] Worker stopped.")

    def _queue(self, alias: str | None) -> Any:
        if alias is None:
            return get_queue()
        from django.tasks import task_backends

        from taskito.contrib.django.backend import TaskitoBackend

        try:
            backend = task_backends[alias]
        except Exception as exc:
            raise CommandError(f"no TASKS backend {alias!r}: {exc}") from None
        if not isinstance(backend, TaskitoBackend):
            raise CommandError(f"TASKS[{alias!r}] is not a TaskitoBackend")
        return backend.queue

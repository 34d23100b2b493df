"""``manage.py taskito_info [--watch]``: job counts per queue and status, and live workers."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from taskito.contrib.django.settings import get_queue, setting

_STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")


class Command(BaseCommand):
    help = "Show the taskito queue's job counts and workers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--watch", action="store_true", help="refresh every TASKITO_WATCH_INTERVAL seconds until Ctrl-C"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queue = get_queue()
        while True:
            self._show(queue)
            if not options["watch"]:
                return
            try:
                time.sleep(float(setting("TASKITO_WATCH_INTERVAL")))
            except KeyboardInterrupt:
                return

    def _show(self, queue: Any) -> None:
        info = queue.info()
        self.stdout.write(f"{'queue':<20}" + "".join(f"{s:>11}" for s in _STATUSES))
        for name in sorted(info["queues"]):
            counts = info["queues"][name]
            self.stdout.write(f"{name:<20}" + "".join(f"{counts[s]:>11}" for s in _STATUSES))
        totals = info["stats"]
        self.stdout.write(f"{'total':<20}" + "".join(f"{totals[s]:>11}" for s in _STATUSES))
        self.stdout.write(f"workers alive: {len(info['workers'])}")
        self.stdout.flush()

"""``manage.py taskito_dashboard [--host --port --auth]``: serves the taskito dashboard of
the project's queue (``taskito[dashboard]``)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskito.contrib.django.settings import get_queue, setting


class Command(BaseCommand):
    help = "Serve the taskito web dashboard for this project's queue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=None, help="address (default TASKITO_DASHBOARD_HOST)")
        parser.add_argument("--port", type=int, default=None, help="port (default TASKITO_DASHBOARD_PORT)")
        parser.add_argument(
            "--auth",
            action="store_true",
            default=None,
            help="ask for the password in TASKITO_DASHBOARD_PASSWORD (default TASKITO_DASHBOARD_AUTH)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from taskito.dashboard import serve
        except ImportError as exc:
            raise CommandError(f"the dashboard needs taskito[dashboard]: {exc}") from None
        host = options["host"] or setting("TASKITO_DASHBOARD_HOST")
        port = options["port"] if options["port"] is not None else setting("TASKITO_DASHBOARD_PORT")
        auth = options["auth"] if options["auth"] is not None else setting("TASKITO_DASHBOARD_AUTH")
        password = os.environ.get("TASKITO_DASHBOARD_PASSWORD") if auth else None
        if auth and not password:
            raise CommandError(
                "--auth needs the password in the TASKITO_DASHBOARD_PASSWORD environment variable"
            )
        serve(get_queue(), host=host, port=port, password=password)

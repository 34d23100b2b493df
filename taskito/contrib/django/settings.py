"""The queue of a Django project, built once from its ``TASKITO_*`` settings.

Settings read by ``get_queue()``: ``TASKITO_DB_PATH``, ``TASKITO_WORKERS``,
``TASKITO_DEFAULT_RETRY``, ``TASKITO_DEFAULT_TIMEOUT``, ``TASKITO_DEFAULT_PRIORITY``,
``TASKITO_RESULT_TTL``, ``TASKITO_BACKEND``, ``TASKITO_DB_URL``, ``TASKITO_SCHEMA``,
``TASKITO_DRAIN_TIMEOUT`` (unset: the ``Queue`` defaults, then its environment variables).
The others have these defaults: ``TASKITO_ADMIN_PER_PAGE=50``, ``TASKITO_ADMIN_TITLE="Taskito"``,
``TASKITO_ADMIN_HEADER="Taskito Admin"``, ``TASKITO_WATCH_INTERVAL=2``,
``TASKITO_DASHBOARD_HOST="127.0.0.1"``, ``TASKITO_DASHBOARD_PORT=8080``,
``TASKITO_DASHBOARD_AUTH=False``, ``TASKITO_AUTODISCOVER_MODULE="tasks"``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings as django_settings

from taskito.app import Queue

__all__ = ["get_queue", "setting", "DEFAULTS", "QUEUE_SETTINGS"]

DEFAULTS: dict[str, Any] = {
    "TASKITO_ADMIN_PER_PAGE": 50,
    "TASKITO_ADMIN_TITLE": "Taskito",
    "TASKITO_ADMIN_HEADER": "Taskito Admin",
    "TASKITO_WATCH_INTERVAL": 2,
    "TASKITO_DASHBOARD_HOST": "127.0.0.1",
    "TASKITO_DASHBOARD_PORT": 8080,
    "TASKITO_DASHBOARD_AUTH": False,
    "TASKITO_AUTODISCOVER_MODULE": "tasks",
}

# Setting -> the Queue argument it fills.
QUEUE_SETTINGS: dict[str, str] = {
    "TASKITO_DB_PATH": "db_path",
    "TASKITO_WORKERS": "workers",
    "TASKITO_DEFAULT_RETRY": "default_retry",
    "TASKITO_DEFAULT_TIMEOUT": "default_timeout",
    "TASKITO_DEFAULT_PRIORITY": "default_priority",
    "TASKITO_RESULT_TTL": "result_ttl",
    "TASKITO_BACKEND": "backend",
    "TASKITO_DB_URL": "db_url",
    "TASKITO_SCHEMA": "schema",
    "TASKITO_DRAIN_TIMEOUT": "drain_timeout",
}

_lock = threading.Lock()
_queue: Queue | None = None


def setting(name: str) -> Any:
    """A ``TASKITO_*`` setting, or its default."""
    return getattr(django_settings, name, DEFAULTS.get(name))


def queue_options() -> dict[str, Any]:
    """The ``Queue`` arguments the project's settings give."""
    return {
        arg: getattr(django_settings, name)
        for name, arg in QUEUE_SETTINGS.items()
        if getattr(django_settings, name, None) is not None
    }


def get_queue() -> Queue:
    """The project's queue: one ``Queue`` per process, built on first use."""
    global _queue
    if _queue is None:
        with _lock:
            if _queue is None:
                _queue = Queue(**queue_options())
    return _queue


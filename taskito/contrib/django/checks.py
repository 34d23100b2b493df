"""System checks of the ``TASKITO_*`` settings (ids ``taskito.E1xx``); ``TaskitoBackend``
checks its own ``TASKS`` entry (``taskito.E00x``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

_INTS = ("TASKITO_ADMIN_PER_PAGE", "TASKITO_DASHBOARD_PORT", "TASKITO_WORKERS", "TASKITO_DEFAULT_RETRY")
_NUMBERS = (
    "TASKITO_WATCH_INTERVAL",
    "TASKITO_DEFAULT_TIMEOUT",
    "TASKITO_DRAIN_TIMEOUT",
    "TASKITO_RESULT_TTL",
)
_STRINGS = (
    "TASKITO_ADMIN_TITLE",
    "TASKITO_ADMIN_HEADER",
    "TASKITO_DASHBOARD_HOST",
    "TASKITO_AUTODISCOVER_MODULE",
)


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name in _INTS:
        value = getattr(settings, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            errors.append(
                checks.Error(f"{name} must be a whole number >= 0, got {value!r}", id="taskito.E101")
            )
    for name in _NUMBERS:
        value = getattr(settings, name, None)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            errors.append(
                checks.Error(f"{name} must be a number of seconds >= 0, got {value!r}", id="taskito.E102")
            )
    for name in _STRINGS:
        value = getattr(settings, name, None)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(
                checks.Error(f"{name} must be a non-empty string, got {value!r}", id="taskito.E103")
            )
    backend = getattr(settings, "TASKITO_BACKEND", None)
    if backend is not None and backend not in ("sqlite", "postgres", "postgresql"):
        errors.append(
            checks.Error(
                f"TASKITO_BACKEND must be 'sqlite' or 'postgres', got {backend!r}", id="taskito.E104"
            )
        )
    return errors

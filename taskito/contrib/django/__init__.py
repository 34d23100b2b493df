"""Django integration (``pip install taskito[django]``, Django >= 5.2).

- ``INSTALLED_APPS += ["taskito.contrib.django"]``: the queue from the ``TASKITO_*``
  settings (``settings.get_queue()``), tasks found in each app's ``tasks`` module, the
  ``taskito_worker``, ``taskito_info`` and ``taskito_dashboard`` commands and admin pages
  (``register_taskito_admin``, ``TaskitoAdminSite`` in ``taskito.contrib.django.admin``).
- ``TaskitoBackend`` (Django >= 6.0): a backend of ``django.tasks``, so tasks declared with
  ``from django.tasks import task`` run on taskito workers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TaskitoBackend"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the app package must load before Django's app registry is ready.
    if name == "TaskitoBackend":
        from taskito.contrib.django.backend import TaskitoBackend

        return TaskitoBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The Django app: finds the project's tasks and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class TaskitoConfig(AppConfig):
    name = "taskito.contrib.django"
    label = "taskito"
    verbose_name = "Taskito"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from taskito.contrib.django import checks  # noqa: F401  (registers the checks)
        from taskito.contrib.django.settings import setting

        # Each app's tasks module, so a worker knows every task the project declares.
        autodiscover_modules(setting("TASKITO_AUTODISCOVER_MODULE"))

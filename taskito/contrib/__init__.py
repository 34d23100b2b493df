"""Integrations with the frameworks and tools around a task queue, each in its own module
and each importing its library only when used: ``django``, ``fastapi``, ``flask``, ``otel``,
``sentry``, ``prometheus``."""

"""Pausing queues. A pause is stored in the database, so it holds for every worker
process on it: the claim skips paused queues, their jobs stay ``pending`` and nothing of
theirs starts until ``resume``. Jobs already running finish normally."""

from __future__ import annotations

from typing import Any

from taskito import _settings as settings


class Pause:
    """``pause``, ``resume`` and ``paused_queues`` of ``Queue``."""

    _inner: Any

    def pause(self, name: str) -> bool:
        """Stops every worker from starting jobs of queue ``name``; True if it was not
        paused already. A queue with no jobs yet can be paused too."""
        return self._inner.pause_queue(settings.check_queue_name("queue", name))

    def resume(self, name: str) -> bool:
        """Lets workers start jobs of queue ``name`` again; True if it was paused."""
        return self._inner.resume_queue(settings.check_queue_name("queue", name))

    def paused_queues(self) -> list[str]:
        """Names of the paused queues, sorted."""
        return self._inner.paused_queues()

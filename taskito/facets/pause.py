"""Pausing queues. A pause is stored in the database, so it holds for every worker
process on it: the claim skips paused queues, their jobs stay ``pending`` and nothing of
theirs starts until ``resume``. Jobs already running finish normally."""

from __future__ import annotations

from taskito import _settings as settings
from taskito.events import EventType
from taskito.facets.base import QueueState


class Pause(QueueState):
    """``pause``, ``resume`` and ``paused_queues`` of ``Queue``."""

    def pause(self, name: str) -> bool:
        """Stops every worker from starting jobs of queue ``name``; True if it was not
        paused already. A queue with no jobs yet can be paused too."""
        changed = self._inner.pause_queue(settings.check_queue_name("queue", name))
        if changed:
            self._emit(EventType.QUEUE_PAUSED, {"queue": name})
        return changed

    def resume(self, name: str) -> bool:
        """Lets workers start jobs of queue ``name`` again; True if it was paused."""
        changed = self._inner.resume_queue(settings.check_queue_name("queue", name))
        if changed:
            self._emit(EventType.QUEUE_RESUMED, {"queue": name})
        return changed

    def paused_queues(self) -> list[str]:
        """Names of the paused queues, sorted."""
        return self._inner.paused_queues()

"""Circuit breakers of ``Queue``: ``circuit_breakers()`` and ``acircuit_breakers()``
(see ``taskito.resilience.breaker``)."""

from __future__ import annotations

import asyncio
from typing import Any

from taskito.facets.base import QueueState


class Resilience(QueueState):
    """The state of every registered task's circuit breaker, as every worker sees it."""

    def circuit_breakers(self) -> list[dict[str, Any]]:
        """One dict per registered task that has a breaker: ``task_name``, ``state``
        (``"closed"``, ``"open"`` or ``"half_open"``), ``failure_count``,
        ``last_failure_at`` and ``opened_at`` (epoch ms or None), ``threshold``,
        ``window_ms`` and ``cooldown_ms``."""
        return [
            task._breaker.info(self._inner)
            for _, task in sorted(list(self._tasks.items()))
            if task._breaker is not None
        ]

    async def acircuit_breakers(self) -> list[dict[str, Any]]:
        """``circuit_breakers()`` without blocking the event loop."""
        return await asyncio.to_thread(self.circuit_breakers)

    def _check_retry_rules(self) -> None:
        """Checks what 0.22 checks only when a worker starts (the retry budgets)."""
        # A copy: a worker starting in another thread may meet tasks still being registered.
        for task in list(self._tasks.values()):
            if task._retry_rules is not None:
                task._retry_rules.check()

"""Two-step signal handling for a worker run in the main thread."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskito.worker.host import Stoppable

log = logging.getLogger("taskito")


class _signals_drain:
    """In the main thread: the first SIGINT/SIGTERM drains the worker, the second raises
    KeyboardInterrupt (the engine then puts running jobs back and returns at once). The
    previous handlers are restored on exit. Elsewhere: does nothing."""

    def __init__(self, queue: Stoppable) -> None:
        self.queue = queue
        self.previous: dict[int, Any] = {}
        self.received = 0

    def _handle(self, signum: int, frame: Any) -> None:
        self.received += 1
        if self.received == 1:
            log.warning("received %s: finishing running jobs, then stopping", signal.Signals(signum).name)
            self.queue.shutdown()
            return
        log.warning("received %s again: stopping now", signal.Signals(signum).name)
        raise KeyboardInterrupt

    def __enter__(self) -> _signals_drain:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

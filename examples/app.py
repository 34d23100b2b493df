"""An example taskito app: a few tasks of different kinds on the default database
(``.taskito/taskito.db``, or ``TASKITO_DB_PATH``).

Run a worker for it with ``taskito worker --app examples.app:queue``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from taskito import Queue, current_job

queue = Queue()


@queue.task()
def add(a: int, b: int) -> int:
    return a + b


@queue.task()
def checksum(text: str, rounds: int = 1000) -> str:
    """A little CPU work: iterated SHA-256."""
    digest = text.encode()
    for i in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if i % 250 == 0:
            current_job.update_progress(int(100 * i / rounds))
    return digest.hex()


@queue.task(queue="emails", max_retries=2, retry_backoff=0.1)
def send_welcome(address: str) -> str:
    """Fails on its first attempt, as a flaky mail server would, then succeeds."""
    if current_job.retry_count == 0:
        raise ConnectionError(f"mail server busy, will retry {address}")
    return f"sent to {address}"


@queue.task()
async def fetch(delay: float) -> float:
    """An async task: awaited on the worker thread's own event loop."""
    start = time.perf_counter()
    await asyncio.sleep(delay)
    return time.perf_counter() - start

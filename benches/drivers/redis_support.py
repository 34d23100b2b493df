"""What the Redis-backed drivers (Celery, RQ) share: the server address the harness
started, and the workloads they take part in."""

from __future__ import annotations

import os

# The harness starts a redis-server on loopback and passes its URL.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6390/0")


def flush() -> None:
    """Each run starts on an empty database, as the SQLite systems do on a fresh file."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


class RedisAdapterBase:
    """The adapter methods the round-trip and idle workloads do not use."""

    has_batch = False

    def __init__(self, opts):
        self.opts = opts

    def _na(self, *_args, **_kwargs):
        raise NotImplementedError(f"{self.name}: only the cross-process round trip and idle CPU are measured")

    enqueue_one = enqueue_batch = fill = start_worker = stop_worker = _na

    def worker_alive(self):
        return True

    def completed(self):
        return None

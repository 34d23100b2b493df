"""PostgreSQL: a lock held by someone else never freezes a worker. Every session of ours
gives up on a lock after ``lock_timeout``; the failed claim or completion is tried again,
and once the lock is gone the worker finishes everything, failing nothing."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator

import pg
import pytest

from taskito import Queue

pytestmark = pytest.mark.skipif(
    pg.server_url() is None, reason="no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)"
)


@pytest.fixture
def url() -> Iterator[str]:
    with pg.fresh_database() as u:
        yield u


def test_a_table_lock_held_elsewhere_stalls_the_worker_but_loses_and_fails_nothing(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    queue = Queue(db_url=url, workers=2, scheduler_poll_interval_ms=20)
    done: list[int] = []

    @queue.task(max_retries=0)
    def work(i: int) -> int:
        time.sleep(0.05)
        done.append(i)
        return i

    jobs = [work.delay(i) for i in range(40)]
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(done) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(done) >= 5
        # Another session takes the jobs table for 6 s, three times the lock timeout:
        # claims and completions in that window time out and are tried again.
        holder = subprocess.Popen(
            [
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c",
                "BEGIN; LOCK TABLE taskito.jobs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, holder_err = holder.communicate(timeout=30)  # reads and closes the pipe
        assert holder.returncode == 0, holder_err
        results = [j.result(timeout=60) for j in jobs]
        assert results == list(range(40))
        assert sorted(done) == list(range(40)), "every job ran exactly once"
        stats = queue.stats()
        assert stats["failed"] == 0 and stats["dead"] == 0 and stats["completed"] == 40, stats
        assert any("timed out waiting for the server" in r.getMessage() for r in caplog.records), (
            "the worker's statements gave up on the lock instead of waiting it out"
        )
    finally:
        queue.shutdown()
        worker.join(30)
        queue.close()

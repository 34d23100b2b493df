"""Enqueue throughput through the application's connection (psycopg 3, one job per
transaction and batches of 100) beside the normal path, on one PostgreSQL database.

    TASKITO_TEST_PG_URL=postgresql://... python benches/transactional_enqueue.py [--jobs N]

Prints jobs per second for each and the ratio to the normal path.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg

from taskito import Queue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ["TASKITO_TEST_PG_URL"]
    queue = Queue(db_url=url, schema=f"bench_{uuid.uuid4().hex[:8]}")

    @queue.task()
    def noop(i: int) -> None:
        pass

    noop.delay(0)  # connections open, statements prepared
    n = args.jobs
    figures: dict[str, float] = {}

    start = time.perf_counter()
    for i in range(n):
        noop.delay(i)
    figures["normal path, one job per call"] = n / (time.perf_counter() - start)

    with psycopg.connect(url) as conn:
        noop.apply_async((0,), connection=conn)
        conn.commit()
        start = time.perf_counter()
        for i in range(n):
            with queue.using(conn):
                noop.delay(i)
            conn.commit()
        figures["application's connection, one job per transaction"] = n / (time.perf_counter() - start)

        start = time.perf_counter()
        with queue.using(conn):
            for i in range(n):
                noop.delay(i)
        conn.commit()
        figures["application's connection, all in one transaction"] = n / (time.perf_counter() - start)

    start = time.perf_counter()
    for b in range(0, n, 100):
        queue.enqueue_many(noop.name, [(i,) for i in range(b, b + 100)])
    figures["normal path, enqueue_many of 100"] = n / (time.perf_counter() - start)

    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for b in range(0, n, 100):
            queue.enqueue_many(noop.name, [(i,) for i in range(b, b + 100)], connection=conn)
            conn.commit()
        figures["application's connection, enqueue_many of 100"] = n / (time.perf_counter() - start)
        conn.execute(f"DROP SCHEMA {queue._store_settings.schema} CASCADE")
        conn.commit()
    queue.close()

    base = figures["normal path, one job per call"]
    for name, rate in figures.items():
        print(f"{name:55s} {rate:10.0f} jobs/s  ({rate / base:.2f}x)")


if __name__ == "__main__":
    main()

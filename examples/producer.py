"""Feeds the example app: enqueues a batch of jobs, from a process that is not a worker.

python examples/producer.py [--jobs N] [--wait]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples.app import add, checksum, fetch, queue, send_welcome  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100, help="how many add() jobs (default 100)")
    parser.add_argument("--wait", action="store_true", help="wait for the results and print them")
    args = parser.parse_args()

    start = time.perf_counter()
    jobs = queue.enqueue_many(add.name, [(i, i) for i in range(args.jobs)])
    jobs.append(checksum.delay("taskito", rounds=5000))
    jobs.append(send_welcome.delay("ada@example.com"))
    jobs.append(fetch.delay(0.05))
    took = time.perf_counter() - start
    print(f"enqueued {len(jobs)} jobs in {took * 1000:.1f} ms into {queue.db_path}")
    if args.wait:
        results = [job.result(timeout=60) for job in jobs]
        print(f"all {len(results)} done; add(41, 41) = {results[41]}; welcome: {results[-2]}")


if __name__ == "__main__":
    main()

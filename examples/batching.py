"""Producer-side batching: many ``.delay(item)`` calls stored as one job.

Run it: python examples/batching.py
"""

import os
import tempfile

from taskito import BatchItemResult, Queue
from taskito.batching import BatchConfig


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        queue = Queue(db_path=os.path.join(tmp, "tasks.db"))

        # Up to 50 rows per INSERT, or whatever arrived within 200 ms.
        @queue.task(batch=BatchConfig(max_size=50, max_wait_ms=200))
        def store_rows(rows: list[dict]) -> int:
            return len(rows)

        # One outcome per item: each caller reads its own.
        @queue.task(batch=BatchConfig(max_size=3, per_item_results=True))
        def geocode(addresses: list[str]) -> list[BatchItemResult]:
            return [
                BatchItemResult.success(i, f"{len(a)},{a.count(' ')}")
                if a
                else BatchItemResult.failure(i, "empty address")
                for i, a in enumerate(addresses)
            ]

        for n in range(120):
            store_rows.delay({"n": n})
        handles = [geocode.delay(a) for a in ("1 Main St", "22 High Rd", "9 Elm Ave")]
        queue.close()  # flushes the 20 rows still buffered

        print("jobs stored:", queue.stats()["pending"])  # 3 row batches + 1 geocode batch
        while queue.process_one():
            pass
        print("first item:", handles[0].result(timeout=10))
        print("failures:", handles[0].partial_failures(timeout=10))
        queue.close()


if __name__ == "__main__":
    main()

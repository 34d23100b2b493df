"""Page load times of the dashboard over a big database.

Fills a database with N jobs (``enqueue_many`` in batches of 10,000 over three queues and
three tasks), gives them a realistic mix of statuses with sqlite3 (most complete over the
last hour, some dead with a dead letter, a few failed, the rest pending), then serves the
dashboard with uvicorn and times each page over HTTP (median and max of 5 loads).

    python benches/dashboard_load.py            # 1,000,000 jobs
    python benches/dashboard_load.py --quick    # 100,000 jobs
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "python")]

import httpx  # noqa: E402
from dashboard_support import LiveServer  # noqa: E402

from taskito import Queue  # noqa: E402
from taskito.dashboard import create_app  # noqa: E402


def fill(queue: Queue, n: int) -> None:
    start = time.perf_counter()
    names = [("emails", "shop.send"), ("payments", "shop.charge"), ("reports", "shop.report")]
    for batch in range(0, n, 10_000):
        q, task = names[(batch // 10_000) % 3]
        queue.enqueue_many(task, [(i,) for i in range(batch, min(n, batch + 10_000))], queue=q)
    print(f"enqueued {n:,} jobs in {time.perf_counter() - start:.1f}s")
    start = time.perf_counter()
    now = int(time.time() * 1000)
    db = sqlite3.connect(queue.db_path)
    with db:
        # 90% complete (finished over the last hour), 1% dead, 0.1% failed, the rest pending.
        db.execute(
            "UPDATE jobs SET status = 2, started_at = ?1 - (seq % 3600000), "
            "completed_at = ?1 - (seq % 3600000) WHERE seq % 10 != 0",
            (now,),
        )
        db.execute(
            "UPDATE jobs SET status = 4, completed_at = ?1, error = 'ValueError: no' WHERE seq % 100 = 5",
            (now,),
        )
        db.execute(
            "UPDATE jobs SET status = 3, completed_at = ?1, error = 'TypeError: no' WHERE seq % 1000 = 7",
            (now,),
        )
        db.execute(
            "INSERT INTO dead_letters (id, original_job_id, task_name, queue, payload, priority, "
            "max_retries, retry_backoff, timeout_ms, metadata, error, retry_count, failed_at) "
            "SELECT 'dl-' || id, id, task_name, queue, payload, priority, max_retries, retry_backoff, "
            "timeout_ms, metadata, error, max_retries, completed_at FROM jobs WHERE status = 4"
        )
    db.close()
    print(f"statuses set in {time.perf_counter() - start:.1f}s")


def timed(client: httpx.Client, path: str, runs: int = 5) -> tuple[float, float]:
    """(median, max) in ms. Loads are 1.1 s apart, so the dashboard's one-second cache of
    the overview never answers: every load pays for its counts."""
    times = []
    for _ in range(runs):
        time.sleep(1.1)
        start = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return statistics.median(times) * 1000, max(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 jobs")
    parser.add_argument("--db", help="reuse or create this database file")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.jobs
    path = args.db or os.path.join(tempfile.mkdtemp(), "big.db")
    queue = Queue(db_path=path)
    if queue.stats()["pending"] + queue.stats()["completed"] == 0:
        fill(queue, n)
    total = sum(queue.stats().values())
    print(f"database {path}: {total:,} jobs, {len(queue.dead_letters(limit=100000)):,} dead letters")
    with LiveServer(create_app(queue)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        second = client.get("/jobs").text.split('id="next-page"')[0].rsplit('href="', 1)[-1].split('"')[0]
        assert second.startswith("/jobs?after=")
        deep = "/jobs?after=" + format(total // 2, "x")
        for path in [
            "/",
            "/api/overview",
            "/jobs",
            second.replace("&amp;", "&"),
            deep,
            "/jobs?status=complete",
            "/jobs?status=pending",
            "/jobs?status=dead",
            "/jobs?status=failed",
            "/jobs?queue=reports",
            "/jobs?status=failed&queue=reports",
            "/jobs?task=shop.report",
            "/dead",
            "/metrics",
        ]:
            median, worst = timed(client, path)
            print(f"{median:8.1f} ms median {worst:8.1f} ms max  GET {path}")


if __name__ == "__main__":
    main()

"""Many processes on one file: producers and workers in separate processes write the same
database at once; writers wait and retry, so no "database is locked" reaches anyone, and every
job completes exactly once. Also the two durability levels."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from faultkit import Lab, wait_for

from taskito import Queue


def test_four_producers_and_two_workers_share_one_file(tmp_path: Path) -> None:
    producers, per_producer = 4, 500
    lab = Lab(tmp_path)
    try:
        # Six processes create the database file at once: opening and migrating must wait
        # for each other too.
        workers = [lab.worker(threads=2) for _ in range(2)]
        outs = [tmp_path / f"produced-{i}.json" for i in range(producers)]
        start_at = time.time() + 3.0  # every process imported and connected by then
        prods = [lab.producer(per_producer, 0.0, out, start_at=start_at) for out in outs]
        queue = lab.queue()
        for p in prods:
            assert p.wait(180) == 0, lab.all_output()
        produced = [json.loads(out.read_text()) for out in outs]
        errors = [e for p in produced for e in p["errors"]]
        ids = [i for p in produced for i in p["ids"]]
        assert errors == []
        assert len(ids) == len(set(ids)) == producers * per_producer
        span = max(p["ended"] for p in produced) - min(p["started"] for p in produced)
        overlap = min(p["ended"] for p in produced) - max(p["started"] for p in produced)
        print(
            f"\n[figure] {len(ids) / span:.0f} enqueues/s from {producers} producer processes "
            f"(2 workers draining; each took {max(p['elapsed'] for p in produced):.2f} s at most, "
            f"all four ran together for {max(overlap, 0):.2f} s)"
        )

        def drained() -> bool:
            s = queue.stats()
            return s["completed"] == len(ids) and s["pending"] == 0 and s["running"] == 0

        wait_for(drained, timeout=180, interval=0.2, what=f"all jobs complete: {queue.stats()}")
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(30) == 0
    finally:
        lab.stop_all()

    with sqlite3.connect(lab.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
    assert set(stored) == set(ids) and set(stored.values()) == {2}
    runs = lab.runs()
    starts = Counter(r.job_id for r in runs if r.kind == "S")
    ends = Counter(r.job_id for r in runs if r.kind == "E")
    # No worker died here, so every job ran exactly once.
    assert starts == ends == Counter(ids)
    output = lab.all_output()
    assert "locked" not in output.lower()
    assert "Traceback" not in output


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_both_durability_levels_work(tmp_path: Path, durability: str) -> None:
    queue = Queue(
        db_path=str(tmp_path / "q.db"), workers=2, durability=durability, scheduler_poll_interval_ms=10
    )
    assert queue.durability == durability

    @queue.task()
    def double(x: int) -> int:
        return 2 * x

    jobs = [double.delay(i) for i in range(20)] + queue.enqueue_many(
        double.name, [(i,) for i in range(20, 40)]
    )
    thread = threading.Thread(target=queue.run_worker, daemon=True)
    thread.start()
    try:
        assert [j.result(timeout=60) for j in jobs] == [2 * i for i in range(40)]
    finally:
        queue.shutdown()
        thread.join(60)
    assert not thread.is_alive()
    # A second Queue on the same file sees everything that was committed.
    again = Queue(db_path=str(tmp_path / "q.db"), durability=durability)
    assert again.stats()["completed"] == 40


@pytest.mark.parametrize("bad", ["fast", "FULL", "", None, 1])
def test_bad_durability_is_refused_before_touching_the_disk(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "sub" / "q.db"
    start = time.monotonic()
    with pytest.raises(ValueError, match="durability"):
        Queue(db_path=str(path), durability=bad)  # type: ignore[arg-type]
    assert time.monotonic() - start < 10
    assert not path.exists() and not path.parent.exists()


BATCH_PRODUCER = """
import sys
from faultapp import queue

size = int(sys.argv[1])
while True:
    queue.enqueue_many("work", [(i,) for i in range(size)])
"""


def test_a_producer_killed_mid_batch_leaves_whole_batches_only(tmp_path: Path) -> None:
    size = 500
    lab = Lab(tmp_path)
    (tmp_path / "batches.py").write_text(BATCH_PRODUCER)
    try:
        queue = lab.queue()
        for round_ in range(6):
            before = sum(queue.stats().values())
            proc = lab.script("batches.py", str(size))
            wait_for(
                lambda b=before: sum(queue.stats().values()) > b,
                timeout=60,
                what="the producer to commit a batch",
            )
            time.sleep(0.05 * round_)  # land the kill at different points of a batch
            proc.kill()
            proc.wait(30)
            total = sum(queue.stats().values())
            assert total % size == 0, total  # a batch is one transaction: all of it or none
    finally:
        lab.stop_all()
    with sqlite3.connect(lab.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert Queue(db_path=str(lab.db)).stats()["pending"] == total
    assert "locked" not in lab.all_output().lower()

"""Threads written off after a timeout are bounded: past the pool size a worker starts no
more of them, claims nothing and says it is unhealthy (log and registry), and it recovers by
itself when a stuck thread comes back.

Runs in its own interpreter: threads stuck in ``time.sleep`` must not hold up this process,
so the scenario leaves through ``os._exit`` and reports what it saw as JSON."""

from __future__ import annotations

from pathlib import Path

from test_faults_hang import run_scenario


def test_stuck_threads_are_bounded_and_the_worker_recovers(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        """
        import logging
        from taskito import _taskito

        queue = Queue(db_path=sys.argv[1], workers=1, scheduler_poll_interval_ms=10,
                      heartbeat_interval=0.2, stale_after=5)
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append((record.levelname, record.getMessage()))

        logging.getLogger("taskito").addHandler(Keep())
        logging.getLogger("taskito").setLevel(logging.INFO)

        @queue.task(name="hang", timeout=0.5, max_retries=0)
        def hang(seconds):
            log("S")
            time.sleep(seconds)  # in C: the timeout cannot stop it

        @queue.task(name="quick")
        def quick():
            return "done"

        h1 = hang.delay(6.0)
        h2 = hang.delay(6.0)
        q = quick.delay()
        worker = threading.Thread(target=queue.run_worker, daemon=True)
        worker.start()
        wait(lambda: h1.status == "dead" and h2.status == "dead", 30, "both hung jobs to fail")
        t_dead = time.time()
        # Two threads stuck, pool of one: the second was not replaced.
        wait(lambda: queue.workers()[0]["status"] == "unhealthy", 10, "the unhealthy status")
        seen = {
            "status": queue.workers()[0]["status"],
            "quick_while_unhealthy": q.status,
            "stuck": _taskito.written_off_threads(),
        }
        time.sleep(1.0)
        seen["quick_still"] = q.status
        seen["quick"] = q.result(timeout=30)
        first_start = float(runs()[0][3])
        seen["quick_done_vs_first_return"] = q.to_dict()["completed_at"] / 1000 - (first_start + 6.0)
        wait(lambda: queue.workers()[0]["status"] == "active", 10, "active again")
        seen["status_after"] = queue.workers()[0]["status"]
        seen["records"] = records
        report(seen)
        """,
        workers=1,
    )
    assert data["status"] == "unhealthy"
    assert data["stuck"] == 2
    assert data["quick_while_unhealthy"] == "pending" and data["quick_still"] == "pending"
    assert data["quick"] == "done"
    # It ran only once the first stuck thread came back (6 s after it started).
    assert data["quick_done_vs_first_return"] > -0.2, data
    assert data["status_after"] == "active"
    errors = [m for level, m in data["records"] if level == "ERROR"]
    assert any("stuck" in m and "limit 1" in m for m in errors), data["records"]

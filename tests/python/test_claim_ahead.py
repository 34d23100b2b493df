"""Jobs a worker claimed ahead of its busy threads but has not started: they read pending
(status, listings, counts), can be cancelled and then never run, and a worker process that
dies with them claimed does not count them against the crash-loop limit."""

from __future__ import annotations

import itertools
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import RunningWorker
from faultkit import Lab, wait_for

BEHIND = 5

APP = """
import os, time
from taskito import Queue

queue = Queue(db_path={db!r}, workers=1, scheduler_poll_interval_ms=10)

@queue.task(name="quick")
def quick(n):
    with open({ran!r}, "a") as f:
        f.write(f"{{n}}\\n")
    return n

@queue.task(name="hold")
def hold(release):
    while not os.path.exists(release):
        time.sleep(0.01)
    return "released"
"""

_names = itertools.count(1)


@pytest.fixture
def app(tmp_path: Path, db_path: str) -> Iterator[ModuleType]:
    """An app module of one worker thread, importable by prefork children too."""
    name = f"claim_ahead_app_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(APP.format(db=db_path, ran=str(tmp_path / "ran.txt")))
    sys.path.insert(0, str(tmp_path))
    module = __import__(name)
    yield module
    module.queue.close()
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


@pytest.mark.parametrize("pool", ["thread", "prefork"])
def test_jobs_claimed_behind_a_long_job_read_pending_and_can_be_cancelled(
    app: ModuleType, tmp_path: Path, pool: str
) -> None:
    if pool == "prefork" and not sys.platform.startswith("linux"):
        pytest.skip("the prefork pool needs Linux")
    queue = app.queue
    release = tmp_path / "release"
    worker = RunningWorker(queue, pool=pool).start()
    try:
        # Short runs teach the worker that claiming ahead of its one thread pays off.
        warm = [queue.enqueue("quick", args=(-1 - i,)) for i in range(20)]
        assert [job.result(timeout=60) for job in warm] == [-1 - i for i in range(20)]
        long_job = queue.enqueue("hold", args=(str(release),))
        wait_for(lambda: long_job.refresh().status == "running", timeout=30, what="the long job")
        behind = [queue.enqueue("quick", args=(i,)) for i in range(BEHIND)]
        worker_id = wait_for(lambda: [w["worker_id"] for w in queue.workers()], 10)[0]
        ids = {j.id for j in behind}
        # Claimed by the worker process (its id matches the jobs it holds) behind the long job:
        # the first at least (how many it claims ahead depends on how fast jobs ran here).
        victim = behind[0]
        wait_for(
            lambda: victim.id in {j.id for j in queue.list_jobs(worker_id=worker_id, limit=1000)},
            timeout=30,
            what="the jobs behind to be claimed",
        )
        assert [j.refresh().status for j in behind] == ["pending"] * BEHIND
        assert ids <= {j.id for j in queue.list_jobs(status="pending")}
        assert [j.id for j in queue.list_jobs(status="running")] == [long_job.id]
        assert ids <= {j.id for j in queue.list_jobs_after(status="pending", limit=50).items}
        assert [j.id for j in queue.list_jobs_after(status="running", limit=50).items] == [long_job.id]
        stats = queue.stats()
        assert (stats["pending"], stats["running"]) == (BEHIND, 1)

        # Cancelled once its claim is past its first moments (0.2 s), when no worker can
        # be taking it unseen.
        wait_for(lambda: queue.cancel_job(victim.id), timeout=10, what="the cancel")
        assert victim.refresh().status == "cancelled"
        assert queue.cancel_job(victim.id) is False
        # The long job has started: cancel_job leaves it alone.
        assert queue.cancel_job(long_job.id) is False

        release.touch()
        assert long_job.result(timeout=30) == "released"
        others = [(i, job) for i, job in enumerate(behind) if job is not victim]
        assert [job.result(timeout=30) for _, job in others] == [i for i, _ in others]
    finally:
        release.touch()
        worker.stop()
    assert victim.refresh().status == "cancelled"
    ran = [int(line) for line in (tmp_path / "ran.txt").read_text().split()]
    assert sorted(n for n in ran if n >= 0) == [1, 2, 3, 4]
    stats = queue.stats()
    counts = (stats["cancelled"], stats["completed"], stats["pending"], stats["running"])
    assert counts == (1, 20 + 1 + BEHIND - 1, 0, 0)


KILLS = 6  # one more than the crash-loop limit (MAX_RECOVERIES = 5)
INNOCENT = 3


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_crash_loop_dead_letters_its_job_not_the_jobs_claimed_behind_it(
    tmp_path: Path, db_path: str
) -> None:
    """A worker process is killed (kill -9) while one job runs, again and again: each time
    with other jobs claimed ahead behind it. The running job is dead-lettered by the limit;
    the jobs that never started there are put back uncounted and end complete."""
    lab = Lab(tmp_path, hb=0.3, stale=30.0, db=db_path, FAULT_RETRIES="0")
    try:
        queue = lab.queue()
        poison = queue.enqueue("work", args=(0,), kwargs={"seconds": 300.0})
        innocent = [queue.enqueue("work", args=(i,)) for i in range(1, INNOCENT + 1)]
        ids = {j.id for j in innocent}
        first = innocent[0]

        def notes(job_id: str, text: str) -> int:
            return sum(text in e["error"] for e in queue.job_errors(job_id))

        for kill in range(KILLS):
            # Quick jobs first (higher priority): their short runs make the worker claim
            # ahead of its one thread, so the innocent jobs are claimed behind the poison.
            for _ in range(10):
                queue.enqueue("work", args=(-1,), priority=10)
            proc = lab.worker(threads=1, worker_id="w-loop")
            # The restart put back what the killed run held (every job: one transaction).
            wait_for(lambda k=kill: notes(poison.id, "stopped heartbeating") == k, 60, what="recovery")
            wait_for(lambda: poison.refresh().status == "running", 60, what="the poison to run")
            # The first at least (how many it claims ahead depends on how fast jobs ran).
            wait_for(
                lambda: first.id in {j.id for j in queue.list_jobs(worker_id="w-loop", limit=1000)},
                timeout=60,
                what="an innocent job to be claimed behind the poison",
            )
            # (One not claimed ahead may have run already, before the restart put the poison back.)
            assert first.refresh().status == "pending"
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

        lab.worker(threads=1, worker_id="w-loop")
        assert [j.result(timeout=60)[0] for j in innocent] == list(range(1, INNOCENT + 1))
        wait_for(lambda: poison.refresh().status == "dead", 60, what="the poison dead-lettered")
        assert notes(poison.id, "stopped heartbeating") == KILLS
        assert "lost its worker 6 times" in queue.job_errors(poison.id)[-1]["error"]
        assert [d["original_job_id"] for d in queue.dead_letters()] == [poison.id]
        for job in innocent:
            assert job.refresh().status == "complete"
            assert notes(job.id, "before the job started") <= KILLS
        # Claimed behind the poison by every killed process, never counted.
        assert notes(first.id, "before the job started") == KILLS
        # The poison ran once per worker process; no innocent job ran before the last one.
        runs = lab.runs()
        assert sum(r.kind == "S" and r.job_id == poison.id for r in runs) == KILLS
        assert sorted(r.job_id for r in runs if r.kind == "S" and r.job_id in ids) == sorted(ids)
    finally:
        lab.stop_all()


POISON = '''

@queue.task(name="die_at_once", max_retries=0)
def die_at_once():
    """Kills its own process at once: before any start of it could be recorded lazily."""
    fd = os.open(os.environ["FAULT_LOG"] + ".deaths", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"x")
    os.kill(os.getpid(), 9)


@queue.task(name="die_at_once_async", max_retries=0)
async def die_at_once_async():
    die_at_once()
'''


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("task", ["die_at_once", "die_at_once_async"])
def test_a_job_that_kills_its_process_at_once_still_reaches_the_crash_loop_limit(
    tmp_path: Path, db_path: str, task: str
) -> None:
    """Its first death may come before its start is recorded (it then goes back uncounted);
    every later run records its start first, so the limit still ends the loop."""
    lab = Lab(tmp_path, hb=0.3, stale=30.0, db=db_path)
    (tmp_path / "faultapp.py").write_text((tmp_path / "faultapp.py").read_text() + POISON)
    deaths = Path(str(lab.log) + ".deaths")
    try:
        queue = lab.queue()
        job = queue.enqueue(task)
        for _ in range(KILLS + 2):
            proc = lab.worker(threads=1, worker_id="w-poison")
            # A restart under the same id puts back at once what the dead run held.
            wait_for(lambda p=proc: p.poll() is not None or job.refresh().status == "dead", 60)
            if job.refresh().status == "dead":
                break
        else:
            pytest.fail("the job was never dead-lettered")
        errors = [e["error"] for e in queue.job_errors(job.id)]
        uncounted = [e for e in errors if "before the job started" in e]
        counted = [e for e in errors if "before the job started" not in e]
        print(f"\n[figure] {task}: {len(errors)} deaths, {len(uncounted)} before a start was recorded")
        assert len(uncounted) <= 1
        assert len(counted) == KILLS
        assert "lost its worker 6 times" in counted[-1]
        assert len(deaths.read_text()) == len(errors)
        assert [d["original_job_id"] for d in queue.dead_letters()] == [job.id]
    finally:
        lab.stop_all()

"""Every duration or count a user passes, at the edges: NaN, infinities, -1, 0, 2**63, 1e300 and
True. Each cell is either refused with a ValueError naming the option (and the stored jobs are
exactly as before) or honoured, checked by what a user would see.

| option               | nan inf -inf -1  0   2**63 1e300 True |
| timeout (task, job)  |  R   R   R   R   R    H     H    R   | huge: never times out
| default_timeout      |  R   R   R   R   R    H     H    R   |
| delay                |  R   R   R   R   H    R     R    R   | past the year 9999: refused
| retry_backoff        |  R   R   R   R   H    H     H    R   | each wait capped at 300 s
| drain_timeout        |  R   R   R   R   H    H     H    R   | huge: waits as long as jobs run
| result(timeout)      |  R   R   R   R   H    H     H    R   | huge: waits, no panic
| result(poll_interval)|  R   R   R   R   H    H     H    R   |
| purge_*(older_than)  |  R   R   R   R   H    H     H    R   | huge: deletes nothing
| result_ttl           |  R   R   R   R   H    H     H    R   | huge: keeps results
| heartbeat_interval   |  R   R   R   R   R    R     R    R   | at most one day
| stale_after          |  R   R   R   R   R    H     H    R   | huge: never presumed dead
| workers              |  R   R   R   R   H    R     R    R   | 0 = CPU count; at most 4096
| max_jobs             |  R   R   R   R   R    R     R    R   | 1 .. 2**63-1
| default_retry, max_retries | R R R  R   H    R     R    R   | 0 .. 2**63-1
| priority, default_priority | R R R  H   H    R     R    R   | signed 64-bit
| scheduler_poll_interval_ms | R R R  R   R    R     R    R   | 1 .. 3,600,000
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from taskito import MaxRetriesExceededError, Queue

VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "-1": -1,
    "0": 0,
    "2**63": 2**63,
    "1e300": 1e300,
    "True": True,
}
HUGE = ("2**63", "1e300")


def new_queue(path: str, **kw: Any) -> Queue:
    return Queue(db_path=path, **{"workers": 2, "scheduler_poll_interval_ms": 10, **kw})


def stored(q: Queue) -> list[dict]:
    """Every stored job and dead letter as the API shows them. (Read through the queue: a
    second SQLite library in this process would break the engine's file locks.)"""
    return [j.to_dict() for j in q.list_jobs(limit=1000)] + q.dead_letters(limit=1000)


def register(q: Queue) -> dict[str, Any]:
    """The tasks the checks use."""

    @q.task(name="nap")
    def nap(seconds: float = 0.0) -> str:
        time.sleep(seconds)
        return "rested"

    @q.task(name="boom", max_retries=0)
    def boom() -> None:
        raise RuntimeError("boom")

    flaky_runs: list[int] = []

    @q.task(name="flaky", max_retries=1)
    def flaky() -> str:
        flaky_runs.append(1)
        if len(flaky_runs) == 1:
            raise RuntimeError("first run fails")
        return "second run"

    return {"nap": nap, "boom": boom, "flaky": flaky, "flaky_runs": flaky_runs}


# -- where each option is passed ------------------------------------------------------------


def _q(option: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        return new_queue(q.db_path, **{option: v})

    return apply


def _task(option: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        @q.task(name=f"edge_{option}", **{option: v})
        def edge() -> str:
            return "ran"

        return edge

    return apply


def _job(option: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        # Every enqueue path takes the option, and each must refuse it.
        kw = {option: v}
        paths = {
            "apply_async": lambda: q.tasks["nap"].apply_async(**kw),
            "enqueue": lambda: q.enqueue("nap", **kw),
            "enqueue_many": lambda: q.enqueue_many("nap", [(), ()], **kw),
        }
        errors = {}
        for name, call in paths.items():
            try:
                call()
            except ValueError as exc:
                errors[name] = exc
        if errors and len(errors) < len(paths):
            raise AssertionError(f"only {sorted(errors)} refused {option}={v!r}")
        for exc in errors.values():
            assert option in str(exc), exc
        if errors:
            raise next(iter(errors.values()))

    return apply


def _run_worker(option: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        return q.run_worker(run_once=True, **{option: v})

    return apply


def _result(option: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        return q.list_jobs(limit=1)[0].result(**{option: v})

    return apply


def _purge(method: str) -> Callable[[Queue, Any], Any]:
    def apply(q: Queue, v: Any) -> Any:
        return getattr(q, method)(older_than=v)

    return apply


# -- what "honoured" means, per option ------------------------------------------------------


def honour_timeout(q: Queue, v: Any, where: str) -> None:
    if where == "task":

        @q.task(name="edge_sleepy", timeout=v)
        def sleepy() -> str:
            time.sleep(0.3)
            return "ran"

        job = sleepy.delay()
    else:
        job = q.tasks["nap"].apply_async(args=(0.3,), timeout=v)
    q.run_worker(run_once=True)
    assert job.status == "complete", job.error  # a huge timeout used to wrap to 0
    assert job.to_dict()["timeout"] > 1e9  # saturated, not wrapped


def honour_default_timeout(q: Queue, v: Any) -> None:
    q2 = new_queue(q.db_path, default_timeout=v)
    register(q2)
    job = q2.tasks["nap"].delay(0.3)
    q2.run_worker(run_once=True)
    assert job.status == "complete", job.error
    assert job.to_dict()["timeout"] > 1e9


def honour_delay(q: Queue, v: Any) -> None:  # 0 only
    job = q.tasks["nap"].apply_async(delay=v)
    assert job.to_dict()["scheduled_at"] <= time.time() * 1000 + 5
    q.run_worker(run_once=True)
    assert job.status == "complete"


def honour_retry_backoff(q: Queue, v: Any) -> None:
    @q.task(name="edge_backoff", max_retries=1, retry_backoff=v)
    def fails() -> None:
        raise RuntimeError("again")

    job = fails.delay()
    before = time.time() * 1000
    assert q.process_one()
    row = job.to_dict()
    assert row["status"] == "pending" and row["retry_count"] == 1
    # The wait before a retry is at most min(backoff * 2**(k-1), 300) seconds.
    assert row["scheduled_at"] <= before + 300_000 + 5_000
    if v == 0:
        assert q.process_one()
        with pytest.raises(MaxRetriesExceededError):
            job.result(timeout=5)


def honour_drain_timeout(q: Queue, v: Any, where: str) -> None:
    job = q.tasks["nap"].delay()
    if where == "queue":
        q2 = new_queue(q.db_path, drain_timeout=v)
        register(q2)
        assert q2.run_worker(run_once=True) == 1
    else:
        assert q.run_worker(run_once=True, drain_timeout=v) == 1
    assert job.status == "complete"


def honour_result_timeout(q: Queue, v: Any) -> None:
    job = q.tasks["nap"].delay()
    if v == 0:
        with pytest.raises(TimeoutError):
            job.result(timeout=v)
        return
    # The worker starts only after the wait has begun: the huge timeout really waits.
    later = threading.Timer(0.3, lambda: q.run_worker(run_once=True))
    later.start()
    try:
        assert job.result(timeout=v) == "rested"  # used to raise PanicException
    finally:
        later.join()


def honour_poll_interval(q: Queue, v: Any) -> None:
    job = q.tasks["nap"].delay()
    q.run_worker(run_once=True)
    assert job.result(timeout=5, poll_interval=v) == "rested"


def honour_purge(q: Queue, v: Any, method: str) -> None:
    if method == "purge_dead":
        q.tasks["boom"].delay()
        q.run_worker(run_once=True)
        assert len(q.dead_letters()) == 1
    else:
        q.tasks["nap"].delay()
        q.run_worker(run_once=True)
    time.sleep(0.01)
    deleted = getattr(q, method)(older_than=v)
    if v == 0:
        assert deleted == 1
    else:
        assert deleted == 0  # an age past any clock used to delete everything


def honour_result_ttl(q: Queue, v: Any) -> None:
    q2 = new_queue(q.db_path, result_ttl=v)
    register(q2)
    job = q2.tasks["nap"].delay()
    assert q2.run_worker(run_once=True) == 1
    if v != 0:
        assert job.result(timeout=5) == "rested"


def honour_stale_after(q: Queue, v: Any) -> None:
    q2 = new_queue(q.db_path, stale_after=v)
    register(q2)
    job = q2.tasks["nap"].delay()
    assert q2.run_worker(run_once=True) == 1
    assert job.status == "complete"


def honour_workers(q: Queue, v: Any, where: str) -> None:  # 0 only: the CPU count
    job = q.tasks["nap"].delay()
    if where == "queue":
        q2 = Queue(db_path=q.db_path, workers=v)
        register(q2)
        assert q2.run_worker(run_once=True) == 1
    else:
        assert q.run_worker(run_once=True, workers=v) == 1
    assert job.status == "complete"


def honour_retries(q: Queue, v: Any, where: str) -> None:  # 0 only: no retry
    if where == "queue":
        q = new_queue(q.db_path, default_retry=v)
        register(q)

        @q.task(name="edge_noretry")
        def fails() -> None:
            raise RuntimeError("once")

        job = fails.delay()
    elif where == "task":

        @q.task(name="edge_task_retries", max_retries=v)
        def fails_too() -> None:
            raise RuntimeError("once")

        job = fails_too.delay()
    else:
        job = q.tasks["boom"].apply_async(max_retries=v)
    q.run_worker(run_once=True)
    assert job.status == "dead" and len(job.errors) == 1


def honour_priority(q: Queue, v: Any, where: str) -> None:
    if where == "queue":
        q = new_queue(q.db_path, default_priority=v)
        register(q)
        job = q.enqueue("nap")
    elif where == "task":
        job = _task("priority")(q, v).delay()
    else:
        job = q.tasks["nap"].apply_async(priority=v)
    assert job.to_dict()["priority"] == v


# -- the table --------------------------------------------------------------------------------

ORDER = list(VALUES)
# site: (option named in the error, how to apply, refusals as a string over ORDER, honour check)
SITES: dict[str, tuple[str, Callable, str, Callable | None]] = {
    "task.timeout": ("timeout", _task("timeout"), "RRRRR..R", lambda q, v: honour_timeout(q, v, "task")),
    "job.timeout": ("timeout", _job("timeout"), "RRRRR..R", lambda q, v: honour_timeout(q, v, "job")),
    "Queue.default_timeout": ("default_timeout", _q("default_timeout"), "RRRRR..R", honour_default_timeout),
    "job.delay": ("delay", _job("delay"), "RRRR.RRR", honour_delay),
    "task.retry_backoff": ("retry_backoff", _task("retry_backoff"), "RRRR...R", honour_retry_backoff),
    "Queue.drain_timeout": (
        "drain_timeout",
        _q("drain_timeout"),
        "RRRR...R",
        lambda q, v: honour_drain_timeout(q, v, "queue"),
    ),
    "run_worker.drain_timeout": (
        "drain_timeout",
        _run_worker("drain_timeout"),
        "RRRR...R",
        lambda q, v: honour_drain_timeout(q, v, "run_worker"),
    ),
    "result.timeout": ("timeout", _result("timeout"), "RRRR...R", honour_result_timeout),
    "result.poll_interval": ("poll_interval", _result("poll_interval"), "RRRR...R", honour_poll_interval),
    "purge_dead.older_than": (
        "older_than",
        _purge("purge_dead"),
        "RRRR...R",
        lambda q, v: honour_purge(q, v, "purge_dead"),
    ),
    "purge_finished.older_than": (
        "older_than",
        _purge("purge_finished"),
        "RRRR...R",
        lambda q, v: honour_purge(q, v, "purge_finished"),
    ),
    "Queue.result_ttl": ("result_ttl", _q("result_ttl"), "RRRR...R", honour_result_ttl),
    "Queue.heartbeat_interval": ("heartbeat_interval", _q("heartbeat_interval"), "RRRRRRRR", None),
    "Queue.stale_after": ("stale_after", _q("stale_after"), "RRRRR..R", honour_stale_after),
    "Queue.workers": ("workers", _q("workers"), "RRRR.RRR", lambda q, v: honour_workers(q, v, "queue")),
    "run_worker.workers": (
        "workers",
        _run_worker("workers"),
        "RRRR.RRR",
        lambda q, v: honour_workers(q, v, "run_worker"),
    ),
    "run_worker.max_jobs": ("max_jobs", _run_worker("max_jobs"), "RRRRRRRR", None),
    "Queue.default_retry": (
        "default_retry",
        _q("default_retry"),
        "RRRR.RRR",
        lambda q, v: honour_retries(q, v, "queue"),
    ),
    "task.max_retries": (
        "max_retries",
        _task("max_retries"),
        "RRRR.RRR",
        lambda q, v: honour_retries(q, v, "task"),
    ),
    "job.max_retries": (
        "max_retries",
        _job("max_retries"),
        "RRRR.RRR",
        lambda q, v: honour_retries(q, v, "job"),
    ),
    "Queue.default_priority": (
        "default_priority",
        _q("default_priority"),
        "RRR..RRR",
        lambda q, v: honour_priority(q, v, "queue"),
    ),
    "task.priority": ("priority", _task("priority"), "RRR..RRR", lambda q, v: honour_priority(q, v, "task")),
    "job.priority": ("priority", _job("priority"), "RRR..RRR", lambda q, v: honour_priority(q, v, "job")),
    "Queue.scheduler_poll_interval_ms": (
        "scheduler_poll_interval_ms",
        _q("scheduler_poll_interval_ms"),
        "RRRRRRRR",
        None,
    ),
}

CASES = [
    pytest.param(site, label, code == "R", id=f"{site}={label}")
    for site, (_, _, codes, _) in SITES.items()
    for label, code in zip(ORDER, codes)
]


@pytest.mark.parametrize("site, label, refused", CASES)
def test_edge_value(tmp_path: Path, site: str, label: str, refused: bool) -> None:
    option, apply, _, honour = SITES[site]
    value = VALUES[label]
    q = new_queue(str(tmp_path / "q.db"))
    register(q)
    # Jobs already stored, which a refused call must leave exactly as they are.
    q.enqueue_many("nap", [(0.0,), (0.0,)], delay=3600)
    before = stored(q)
    if refused:
        with pytest.raises(ValueError, match=option) as info:
            apply(q, value)
        assert type(info.value).__name__ != "PanicException"
        assert stored(q) == before
        if site.startswith("task."):
            assert f"edge_{option}" not in q.tasks
        return
    assert honour is not None
    honour(q, value)


def test_every_cell_of_the_table_is_decided() -> None:
    for site, (_, _, codes, honour) in SITES.items():
        assert len(codes) == len(ORDER), site
        assert set(codes) <= {"R", "."}, site
        assert (honour is None) == ("." not in codes), site


def test_refused_queue_options_touch_nothing_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "q.db"
    for option in ("default_timeout", "drain_timeout", "heartbeat_interval", "workers", "result_ttl"):
        with pytest.raises(ValueError, match=option):
            Queue(db_path=str(path), **{option: math.nan})
    assert not path.parent.exists()


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_integers_past_float_range_are_handled(tmp_path: Path, value: int) -> None:
    q = new_queue(str(tmp_path / "q.db"))
    register(q)
    if value > 0:
        job = q.tasks["nap"].apply_async(timeout=value)
        q.run_worker(run_once=True)
        assert job.result(timeout=value) == "rested"
        assert q.purge_finished(older_than=value) == 0
        with pytest.raises(ValueError, match="delay"):
            q.tasks["nap"].apply_async(delay=value)
    else:
        with pytest.raises(ValueError, match="timeout"):
            q.tasks["nap"].apply_async(timeout=value)
    with pytest.raises(ValueError, match="priority"):
        q.tasks["nap"].apply_async(priority=value)


def test_delay_up_to_the_year_9999_is_kept(tmp_path: Path) -> None:
    q = new_queue(str(tmp_path / "q.db"))
    register(q)
    far = 7000 * 365 * 86400  # about the year 9000
    job = q.tasks["nap"].apply_async(delay=far)
    assert job.to_dict()["scheduled_at"] > (time.time() + far - 60) * 1000
    with pytest.raises(ValueError, match="delay.*9999"):
        q.tasks["nap"].apply_async(delay=8500 * 365 * 86400)
    assert q.stats()["pending"] == 1


@pytest.mark.parametrize(
    "call, option",
    [
        (lambda core: core.wait("x", 1e300, 0.05), None),
        (lambda core: core.wait("x", math.nan, 0.05), "timeout"),
        (lambda core: core.purge_dead(1e300), None),
        (lambda core: core.purge_finished(-1.0), "older_than"),
        (lambda core: core.enqueue("t", [b"\x80\x05N."], "default", 0, 1e300, 0, 1.0, 1.0), "delay"),
        (
            lambda core: core.enqueue("t", [b"\x80\x05N."], "default", 0, 0.0, 0, math.nan, 1.0),
            "retry_backoff",
        ),
        (lambda core: core.enqueue("t", [b"\x80\x05N."], "default", 0, 0.0, 0, 1.0, math.inf), "timeout"),
    ],
)
def test_the_engine_refuses_or_saturates_without_panicking(
    tmp_path: Path, call: Callable, option: str | None
) -> None:
    """The compiled half checks again for callers that bypass the Python checks."""
    q = new_queue(str(tmp_path / "q.db"))
    if option is None:
        call(q._inner)
    else:
        with pytest.raises(ValueError, match=option):
            call(q._inner)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, 2**63, 1e300, -1, 101])
def test_progress_out_of_range_is_refused_naming_it(tmp_path: Path, value: Any) -> None:
    q = new_queue(str(tmp_path / "q.db"))
    seen: list[str] = []

    @q.task()
    def report() -> None:
        from taskito import current_job

        try:
            current_job.update_progress(value)
        except ValueError as exc:
            seen.append(str(exc))

    report.delay()
    q.run_worker(run_once=True)
    assert len(seen) == 1 and "progress" in seen[0]


def test_aresult_takes_the_same_edges_as_result(tmp_path: Path) -> None:
    import asyncio

    q = new_queue(str(tmp_path / "q.db"))
    register(q)
    job = q.tasks["nap"].delay()
    for option in ("timeout", "poll_interval", "max_poll_interval"):
        for bad in (math.nan, math.inf, -1, True):
            with pytest.raises(ValueError, match=option):
                asyncio.run(job.aresult(**{option: bad}))
    with pytest.raises(TimeoutError):
        asyncio.run(job.aresult(timeout=0))
    later = threading.Timer(0.3, lambda: q.run_worker(run_once=True))
    later.start()
    try:
        for huge in (2**63, 1e300, None):
            assert asyncio.run(job.aresult(timeout=huge, poll_interval=1e300)) == "rested"
    finally:
        later.join()

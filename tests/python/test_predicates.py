"""Predicates: the model, text form and recipes, and the gate at enqueue and at dispatch."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import RunningWorker
from faultkit import wait_for

from taskito import EventType, PredicateAction, PredicateRejectedError, Queue, TaskitoError, TaskMiddleware
from taskito.predicates import (
    AndPredicate,
    Cancel,
    Defer,
    NotPredicate,
    OrPredicate,
    Predicate,
    PredicateContext,
    PredicateMetrics,
    PredicateRegistry,
    PredicateValidationError,
    after,
    before,
    coerce_predicate,
    default_registry,
    env_feature_flag_provider,
    env_var_truthy,
    evaluate_predicate,
    feature_flag,
    format_predicate,
    in_time_window,
    in_timezone,
    is_business_hours,
    is_weekend,
    parse,
    payload_matches,
    queue_paused,
    register_feature_flag_provider,
    register_predicate,
)


class At(PredicateContext):
    """A context whose clock is fixed."""

    def __init__(self, when: datetime, **kw: Any) -> None:
        super().__init__(task_name=kw.pop("task_name", "t"), queue=kw.pop("queue", "default"), **kw)
        self._when = when

    def now(self) -> datetime:
        return self._when


def ctx(**kw: Any) -> PredicateContext:
    return PredicateContext(task_name=kw.pop("task_name", "t"), queue=kw.pop("queue", "default"), **kw)


class Const(Predicate):
    def __init__(self, answer: Any, log: list[str] | None = None, tag: str = "") -> None:
        self.answer, self.log, self.tag = answer, log, tag

    def evaluate(self, ctx: PredicateContext) -> Any:
        if self.log is not None:
            self.log.append(self.tag)
        return self.answer


# -- the model -------------------------------------------------------------------------


def test_outcomes_are_frozen_and_checked() -> None:
    assert Defer(5).seconds == 5 and Cancel().reason == ""
    with pytest.raises(ValueError):
        Defer(-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Defer(1).seconds = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Cancel("x").reason = "y"  # type: ignore[misc]
    assert PredicateAction("cancel") is PredicateAction.CANCEL
    assert issubclass(PredicateValidationError, ValueError) and not issubclass(
        PredicateValidationError, TaskitoError
    )
    assert issubclass(PredicateRejectedError, TaskitoError)


def test_and_stops_at_first_non_true() -> None:
    seen: list[str] = []
    p = Const(True, seen, "a") & Const(Defer(3), seen, "b") & Const(True, seen, "c")
    assert isinstance(p, AndPredicate)
    assert p.evaluate(ctx()) == Defer(3) and seen == ["a", "b"]
    seen.clear()
    assert (Const(False, seen, "a") & Const(True, seen, "b")).evaluate(ctx()) is False and seen == ["a"]


def test_or_stops_at_true_and_stronger_denial_wins() -> None:
    seen: list[str] = []
    assert isinstance(Const(True) | Const(False), OrPredicate)
    assert (Const(True, seen, "a") | Const(Cancel(), seen, "b")).evaluate(ctx()) is True and seen == ["a"]
    assert (Const(False) | Const(Defer(2))).evaluate(ctx()) == Defer(2)
    assert (Const(Defer(2)) | Const(Cancel("no"))).evaluate(ctx()) == Cancel("no")
    assert (Const(Cancel("first")) | Const(False)).evaluate(ctx()) == Cancel("first")
    assert (Const(False) | Const(False)).evaluate(ctx()) is False


def test_not_flips_bools_and_passes_denials_through() -> None:
    assert isinstance(~Const(True), NotPredicate)
    assert (~Const(True)).evaluate(ctx()) is False and (~Const(False)).evaluate(ctx()) is True
    assert (~Const(Defer(4))).evaluate(ctx()) == Defer(4)
    assert (~Const(Cancel("c"))).evaluate(ctx()) == Cancel("c")


def test_coroutines_are_awaited_even_inside_a_running_loop() -> None:
    async def later(c: PredicateContext) -> Any:
        await asyncio.sleep(0)
        return Defer(1.5)

    p = coerce_predicate(later) & Const(True)
    assert evaluate_predicate(p, ctx()) == Defer(1.5)

    async def inside() -> Any:
        return evaluate_predicate(p, ctx())

    assert asyncio.run(inside()) == Defer(1.5)


def test_evaluate_counts_outcomes_and_errors() -> None:
    m = PredicateMetrics()

    def boom(c: PredicateContext) -> bool:
        raise RuntimeError("flaky flag service")

    for p in (Const(True), Const(False), Const(Defer(1)), Const(Cancel()), boom):
        evaluate_predicate(p, ctx(), metrics=m)
    assert evaluate_predicate(boom, ctx()) is False
    assert m.snapshot() == {"allowed": 1, "denied": 2, "deferred": 1, "cancelled": 1, "errors": 1}
    m.reset()
    assert set(m.snapshot().values()) == {0}
    with pytest.raises(TypeError):
        coerce_predicate(42)


# -- serialization and the text form -----------------------------------------------------


def test_to_dict_and_from_dict_round_trip() -> None:
    p = (is_business_hours(8, 18, tz="Europe/Paris") & ~queue_paused()) | feature_flag("beta")
    d = p.to_dict()
    assert (
        d["op"] == "or"
        and d["args"][0]["op"] == "and"
        and d["args"][0]["args"][1]
        == {
            "op": "not",
            "arg": {"op": "queue_paused", "queue": None},
        }
    )
    assert d["args"][1] == {"op": "feature_flag", "flag": "beta", "provider": None}
    assert Predicate.from_dict(d).to_dict() == d


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        [],
        {},
        {"op": "no_such_op"},
        {"op": 3},
        {"op": "and", "args": [{"op": "is_weekend"}]},
        {"op": "not"},
        {"op": "is_weekend", "colour": "red"},
        {"op": "is_business_hours", "start_hour": 18, "end_hour": 9},
    ],
)
def test_from_dict_refuses_bad_input(bad: Any) -> None:
    with pytest.raises(PredicateValidationError):
        Predicate.from_dict(bad)


def test_from_dict_bounds_nesting() -> None:
    d: dict[str, Any] = {"op": "is_weekend"}
    for _ in range(500):
        d = {"op": "not", "arg": d}
    with pytest.raises(PredicateValidationError, match="deeper"):
        Predicate.from_dict(d)


def test_callable_has_no_serialized_form() -> None:
    with pytest.raises(PredicateValidationError):
        coerce_predicate(lambda c: True).to_dict()


def test_parse_and_format() -> None:
    a = parse(
        "is_business_hours(start_hour=8, tz=\"Europe/Paris\") and not queue_paused() "
        "or env_var_truthy(name='GO')"
    )
    b = parse(
        '(is_business_hours(start_hour=8, tz="Europe/Paris") & !queue_paused()) | env_var_truthy(name="GO")'
    )
    assert a.to_dict() == b.to_dict()
    text = format_predicate(a)
    assert "end_hour" not in text and "weekdays_only" not in text  # defaults left out
    assert parse(text).to_dict() == a.to_dict()
    right = parse('is_weekend() & (env_var_truthy(name="A") & env_var_truthy(name="B"))')
    assert parse(format_predicate(right)).to_dict() == right.to_dict()
    listed = parse('payload_matches(path="kwargs.ids", expected=[1, 2.5, "x", true, null])')
    assert listed.to_dict()["expected"] == [1, 2.5, "x", True, None]
    assert parse(format_predicate(listed)).to_dict() == listed.to_dict()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "is_weekend(",
        "is_weekend() &",
        "nope()",
        "is_weekend(colour=1)",
        "is_weekend() is_weekend()",
        "is_weekend(tz=)",
        "@",
    ],
)
def test_parse_refuses_bad_text(text: str) -> None:
    with pytest.raises(PredicateValidationError):
        parse(text)


# -- recipes -------------------------------------------------------------------------------

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)  # a Monday
SATURDAY_10 = datetime(2026, 3, 7, 10, 0, tzinfo=timezone.utc)


def test_business_hours_defers_until_opening() -> None:
    p = is_business_hours()
    assert p.evaluate(At(MONDAY_10)) is True
    assert p.evaluate(At(MONDAY_10.replace(hour=7))) == Defer(2 * 3600)
    # Saturday 10:00 -> Monday 09:00.
    assert p.evaluate(At(SATURDAY_10)) == Defer((2 * 24 - 1) * 3600)
    assert is_business_hours(weekdays_only=False).evaluate(At(SATURDAY_10)) is True
    paris = is_business_hours(tz="Europe/Paris")  # UTC+1 in March
    assert paris.evaluate(At(MONDAY_10.replace(hour=16, minute=30))) == Defer(15.5 * 3600)
    for bad in ((25, 26), (17, 9), ("9", 17)):
        with pytest.raises(PredicateValidationError):
            is_business_hours(*bad)  # type: ignore[arg-type]
    with pytest.raises(PredicateValidationError):
        is_business_hours(tz="Mars/Olympus")


def test_time_recipes() -> None:
    assert is_weekend().evaluate(At(SATURDAY_10)) is True and is_weekend().evaluate(At(MONDAY_10)) is False
    w = in_time_window("09:30", "10:30")
    assert w.evaluate(At(MONDAY_10)) is True
    assert w.evaluate(At(MONDAY_10.replace(hour=10, minute=30))) == Defer(23 * 3600)
    assert in_time_window("22:00", "02:00").evaluate(At(MONDAY_10.replace(hour=1))) is True
    with pytest.raises(PredicateValidationError):
        in_time_window("9:30", "10:00")
    t = MONDAY_10 + timedelta(minutes=5)
    assert after(t).evaluate(At(MONDAY_10)) == Defer(300)
    assert after(t.isoformat()).evaluate(At(t)) is True
    assert before(t).evaluate(At(MONDAY_10)) is True and before(t).evaluate(At(t)) is False
    with pytest.raises(PredicateValidationError):
        after("yesterday")
    assert in_timezone("Asia/Tokyo").evaluate(ctx()) is True
    with pytest.raises(PredicateValidationError):
        in_timezone("Nowhere/Land")


def test_payload_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    c = ctx(args=("a", {"deep": 1}), kwargs={"tenant": "acme", "meta": {"tier": "gold"}})
    assert payload_matches("kwargs.tenant", "acme").evaluate(c) is True
    assert payload_matches("kwargs.meta.tier", "gold").evaluate(c) is True
    assert payload_matches("args.0", "a").evaluate(c) is True
    assert payload_matches("args.1.deep", 1).evaluate(c) is True
    assert payload_matches("args.5", "a").evaluate(c) is False
    assert payload_matches("kwargs.nope", None).evaluate(c) is False
    with pytest.raises(PredicateValidationError):
        payload_matches("tenant", "acme")
    for value, expected in (("YES", True), ("on", True), ("0", False), ("nah", False)):
        monkeypatch.setenv("TASKITO_TEST_GO", value)
        assert env_var_truthy("TASKITO_TEST_GO").evaluate(c) is expected
    monkeypatch.setenv("FF_NEW_CHECKOUT", "true")
    assert feature_flag("new-checkout").evaluate(c) is True
    assert feature_flag("other").evaluate(c) is False
    assert env_feature_flag_provider("X_").is_enabled("new-checkout", c) is False

    class Tenants:
        def is_enabled(self, name: str, ctx: PredicateContext) -> bool:
            return ctx.kwargs.get("tenant") == "acme"

    register_feature_flag_provider("tenants", Tenants())
    assert feature_flag("x", provider="tenants").evaluate(c) is True
    assert feature_flag("x", provider="tenants").to_dict() == {
        "op": "feature_flag",
        "flag": "x",
        "provider": "tenants",
    }
    with pytest.raises(PredicateValidationError):
        feature_flag("x", provider="unregistered")


def test_registry_rules() -> None:
    reg = PredicateRegistry()

    class Odd(Predicate):
        def __init__(self, n: int = 1) -> None:
            self.n = n

        def evaluate(self, ctx: PredicateContext) -> bool:
            return self.n % 2 == 1

        def to_dict(self) -> dict[str, Any]:
            return {"op": self.OP, "n": self.n}

        @classmethod
        def _from_kwargs(cls, kwargs: dict[str, Any]) -> Predicate:
            return cls(**kwargs)

    reg.register("odd", Odd)
    assert Odd.OP == "odd" and reg.lookup("odd") is Odd and reg.names() == ["odd"]
    assert Predicate.from_dict({"op": "odd", "n": 3}, registry=reg).evaluate(ctx()) is True
    with pytest.raises(PredicateValidationError):
        reg.register("odd", type("Other", (Odd,), {"OP": "odd"}))  # taken
    with pytest.raises(PredicateValidationError):
        reg.register("even", Odd)  # its OP says odd
    with pytest.raises(PredicateValidationError):
        reg.register("thing", dict)  # type: ignore[arg-type]
    assert "is_business_hours" in default_registry().names()


# -- the gate on a queue ------------------------------------------------------------------


def test_task_options_are_checked(queue: Queue) -> None:
    with pytest.raises(ValueError, match="on_false must be one of 'defer', 'cancel', got 'reject'"):
        queue.task(predicate=Const(True), on_false="reject")(lambda: None)
    with pytest.raises(ValueError):
        queue.task(predicate=Const(True), default_defer_seconds=-1)(lambda: None)
    with pytest.raises(TypeError):
        queue.task(predicate=5)(lambda: None)


def test_enqueue_defer_adds_to_delay_and_cancel_rejects(queue: Queue) -> None:
    events: list[tuple[EventType, dict[str, Any]]] = []
    for e in (EventType.PREDICATE_DEFERRED, EventType.PREDICATE_REJECTED):
        queue.on_event(e, lambda t, p: events.append((t, p)))
    seen: list[PredicateContext] = []

    def gate(c: PredicateContext) -> Any:
        seen.append(c)
        if c.job_id is None and c.kwargs.get("mode") == "later":
            return Defer(100)
        if c.kwargs.get("mode") == "never":
            return Cancel("tenant suspended")
        return True

    @queue.task(predicate=gate, predicate_extras={"region": "eu"})
    def work(mode: str = "now") -> str:
        return mode

    before_ms = time.time() * 1000
    job = work.apply_async(kwargs={"mode": "later"}, delay=50)
    row = queue._inner.get_job(job.id)
    assert row["scheduled_at"] >= before_ms + 150_000 - 1000
    c = seen[-1]
    assert (c.task_name, c.queue, c.job_id, c.extras, c.kwargs) == (
        work.name,
        "default",
        None,
        {"region": "eu"},
        {"mode": "later"},
    )
    assert c.payload_size > 0 and c.created_at is not None
    with pytest.raises(PredicateRejectedError) as info:
        work.delay(mode="never")
    assert (info.value.task_name, info.value.reason) == (work.name, "tenant suspended")
    # Nothing stored, through every path: enqueue_many (one Cancel aborts the batch), notes path.
    count = queue.stats()["pending"]
    with pytest.raises(PredicateRejectedError):
        queue.enqueue_many(work.name, [()] * 3, kwargs_list=[{}, {"mode": "never"}, {}])
    with pytest.raises(PredicateRejectedError):
        queue.enqueue(work.name, kwargs={"mode": "never"}, notes={"a": 1})
    assert queue.stats()["pending"] == count
    # Each Defer applies to its own job in a batch.
    jobs = queue.enqueue_many(work.name, [(), ()], kwargs_list=[{"mode": "later"}, {}])
    times = [queue._inner.get_job(j.id)["scheduled_at"] for j in jobs]
    assert times[0] - times[1] > 90_000
    assert queue._flush_events()
    kinds = [t for t, _ in events]
    assert EventType.PREDICATE_DEFERRED in kinds and EventType.PREDICATE_REJECTED in kinds
    rejected = next(p for t, p in events if t is EventType.PREDICATE_REJECTED)
    assert rejected == {
        "task_name": work.name,
        "queue": "default",
        "phase": "enqueue",
        "reason": "tenant suspended",
    }
    assert queue.predicate_stats()["cancelled"] >= 3 and queue.predicate_stats()["deferred"] >= 2


def test_false_applies_on_false(queue: Queue) -> None:
    @queue.task(predicate=Const(False), on_false="cancel")
    def cancelled() -> None:
        pass

    @queue.task(predicate=Const(False), default_defer_seconds=30)
    def deferred() -> None:
        pass

    with pytest.raises(PredicateRejectedError):
        cancelled.delay()
    job = deferred.delay()
    assert queue._inner.get_job(job.id)["scheduled_at"] > time.time() * 1000 + 25_000


def test_dispatch_cancel_and_defer_in_a_worker(queue: Queue) -> None:
    flags = {"open": True}
    ran: list[str] = []
    events: list[tuple[EventType, dict[str, Any]]] = []
    queue.on_event(EventType.PREDICATE_CANCELLED, lambda t, p: events.append((t, p)))
    queue.on_event(EventType.PREDICATE_DEFERRED, lambda t, p: events.append((t, p)))

    def at_dispatch_only(answer: Any) -> Any:
        def gate(c: PredicateContext) -> Any:
            return True if c.job_id is None or flags["open"] else answer

        return gate

    @queue.task(predicate=at_dispatch_only(Cancel("closed")))
    def stopped(x: int) -> None:
        ran.append(f"stopped {x}")

    @queue.task(predicate=at_dispatch_only(Defer(60)))
    def later(x: int) -> None:
        ran.append(f"later {x}")

    @queue.task(predicate=at_dispatch_only(False), on_false="cancel")
    def falsy(x: int) -> None:
        ran.append(f"falsy {x}")

    flags["open"] = False
    a, b, c = stopped.delay(1), later.delay(2), falsy.delay(3)
    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: all(j.status == "cancelled" for j in (a, b, c)), 15, what="cancelled jobs")
    finally:
        w.stop()
    assert ran == []
    assert "closed" in (a.error or "")
    copies = [j for j in queue.list_jobs(status="pending") if j.id != b.id]
    (copy,) = [j for j in copies if j.to_dict()["task_name"] == later.name]
    assert queue._inner.get_job(copy.id)["scheduled_at"] > time.time() * 1000 + 50_000
    assert copy.id in (b.error or "")
    assert queue._flush_events()
    cancelled = [p for t, p in events if t is EventType.PREDICATE_CANCELLED]
    assert {p["task_name"] for p in cancelled} == {stopped.name, falsy.name}
    assert all(p["phase"] == "dispatch" for p in cancelled)
    deferred = [p for t, p in events if t is EventType.PREDICATE_DEFERRED]
    assert deferred[0]["job_id"] == b.id and deferred[0]["defer_seconds"] == 60
    # Open again: the copy runs once it is due.
    flags["open"] = True
    queue.execute_job(copy.id)
    assert copy.status == "complete" and ran == ["later 2"]


def test_dispatch_sees_the_stored_job(queue: Queue) -> None:
    seen: list[PredicateContext] = []

    def record(c: PredicateContext) -> bool:
        seen.append(c)
        return True

    @queue.task(predicate=record, queue="mail", priority=4)
    def send(to: str) -> str:
        return to

    job = send.delay("a@example.com")
    queue.run_worker(run_once=True)
    assert job.result(timeout=5) == "a@example.com"
    d = seen[-1]
    assert (d.job_id, d.queue, d.priority, d.retry_count, d.args) == (
        job.id,
        "mail",
        4,
        0,
        ("a@example.com",),
    )
    assert d.created_at is not None and d.scheduled_at is not None and d.payload_size > 0
    assert d.queue_size() == 0 and d.queue_paused() is False and d.stats()["pending"] == 0


def test_inspection_and_queue_registration(queue: Queue) -> None:
    # Replaces the class registered by this test's run on the other backend.
    @queue.register_predicate("tenant_is", replace=True)
    class TenantIs(Predicate):
        def __init__(self, tenant: str) -> None:
            self.tenant = tenant

        def evaluate(self, ctx: PredicateContext) -> bool:
            return ctx.kwargs.get("tenant") == self.tenant

        def to_dict(self) -> dict[str, Any]:
            return {"op": self.OP, "tenant": self.tenant}

        @classmethod
        def _from_kwargs(cls, kwargs: dict[str, Any]) -> Predicate:
            return cls(**kwargs)

    assert TenantIs.OP == "tenant_is"
    p = parse('tenant_is(tenant="acme") & !is_weekend()')

    @queue.task(predicate=p, on_false="cancel")
    def gated(tenant: str) -> None:
        pass

    @queue.task(predicate=lambda c: True)
    def plain() -> None:
        pass

    @queue.task()
    def free() -> None:
        pass

    listed = queue.list_predicates()
    assert set(listed) == {gated.name, plain.name}
    assert listed[plain.name] is None and listed[gated.name] == p.to_dict()
    assert queue.predicate_for(gated) == p.to_dict() == queue.predicate_for(gated.name)
    assert queue.predicate_for(free) is None
    with pytest.raises(PredicateRejectedError):
        gated.delay(tenant="other")
    register_predicate("tenant_is", TenantIs)  # the same class again is fine
    with pytest.raises(PredicateValidationError):
        register_predicate("tenant_is", type("Impostor", (Predicate,), {}))


def test_middleware_predicate_skips_only_that_middleware(queue: Queue) -> None:
    calls: list[tuple[str, str]] = []

    class Audit(TaskMiddleware):
        def __init__(self, tag: str, **kw: Any) -> None:
            super().__init__(**kw)
            self.tag = tag

        def on_enqueue(self, task_name: str, args: tuple, kwargs: dict, options: dict) -> None:
            calls.append((self.tag, f"enqueue {task_name.rsplit('.', 1)[-1]}"))

        def before(self, ctx: Any) -> None:
            calls.append((self.tag, f"before {ctx.task_name.rsplit('.', 1)[-1]}"))

    class Filtered(Audit):
        def task_filter(self, name: str) -> bool:
            return name.endswith("billing")

    only_billing = Audit("pred", predicate=lambda c: c.task_name.endswith("billing"))
    wins = Filtered("wins", predicate=lambda c: c.task_name.endswith("report"))
    queue._middleware = (only_billing, Audit("all"), Filtered("filter"), wins)

    @queue.task(name="app.billing")
    def billing() -> None:
        pass

    @queue.task(name="app.report")
    def report() -> None:
        pass

    billing.delay()
    report.delay()
    queue.run_worker(run_once=True)
    tags = {}
    for tag, what in calls:
        tags.setdefault(tag, set()).add(what)
    assert tags["pred"] == {"enqueue billing", "before billing"}
    assert tags["all"] == {"enqueue billing", "before billing", "enqueue report", "before report"}
    assert tags["filter"] == {"enqueue billing", "before billing"}
    assert tags["wins"] == {"enqueue report", "before report"}


def test_env_gate_end_to_end(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKITO_TEST_OPEN", raising=False)

    @queue.task(predicate=env_var_truthy("TASKITO_TEST_OPEN"), on_false="cancel")
    def guarded() -> int:
        return 1

    with pytest.raises(PredicateRejectedError):
        guarded.delay()
    monkeypatch.setenv("TASKITO_TEST_OPEN", "1")
    job = guarded.delay()
    queue.run_worker(run_once=True)
    assert job.result(timeout=5) == 1


def test_docs_example_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    example = root / "examples" / "predicates.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rejected: tenant suspended" in done.stdout and "invoice sent to acme" in done.stdout
    assert example.read_text().strip() in (root / "docs/guides/predicates.md").read_text()


GATED_APP = """
import os
from taskito import Queue
from taskito.predicates import Cancel, Defer

queue = Queue(db_path=os.environ["GATED_DB"], scheduler_poll_interval_ms=20, workers=2)

def at_dispatch(ctx):
    if ctx.job_id is None:
        return True
    n = ctx.args[0]
    if n % 3 == 1:
        return Cancel(f"odd one {n}")
    # A deferred copy is due after it was created: that one runs.
    if n % 3 == 2 and ctx.scheduled_at <= ctx.created_at:
        return Defer(0.2)
    return True

@queue.task(name="gated", predicate=at_dispatch)
def gated(n):
    with open(os.environ["GATED_LOG"], "a") as f:
        f.write(f"{n} {os.getpid()}\\n")
    return n
"""


def test_dispatch_gate_across_worker_processes(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "gatedapp.py").write_text(GATED_APP)
    log = tmp_path / "ran.txt"
    env = {
        **os.environ,
        "GATED_DB": str(tmp_path / "q.db"),
        "GATED_LOG": str(log),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    q = Queue(db_path=str(tmp_path / "q.db"))
    jobs = [q.enqueue("gated", (n,)) for n in range(30)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "taskito", "worker", "--app", "gatedapp:queue"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        wait_for(lambda: all(j.status in ("complete", "cancelled") for j in jobs), 60, what="every original")
        wait_for(lambda: len(_ran(log)) == 20, 30, what="the allowed jobs and the deferred copies")
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    ran = sorted(n for n, _ in _ran(log))
    # Each allowed job and each deferred job's copy ran exactly once; no cancelled one ran.
    assert ran == sorted(n for n in range(30) if n % 3 != 1)
    for n, j in enumerate(jobs):
        if n % 3 == 1:
            assert j.status == "cancelled" and f"odd one {n}" in (j.error or "")
        elif n % 3 == 2:
            assert j.status == "cancelled" and "re-enqueued as job" in (j.error or "")
        else:
            assert j.status == "complete"
    assert q.stats()["pending"] == 0 and q.stats()["completed"] == 20


def _ran(log: Any) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in log.read_text().splitlines())]

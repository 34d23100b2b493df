"""``TaskMiddleware``: every hook, its order relative to the hooks, per-task chains, edits
at enqueue, and middleware that raises."""

from __future__ import annotations

import logging

import pytest

from taskito import Queue, TaskMiddleware, current_job


class Recorder(TaskMiddleware):
    def __init__(self, name: str, calls: list) -> None:
        self.name = name
        self.calls = calls

    def on_enqueue(self, task_name, args, kwargs, options):
        self.calls.append((self.name, "on_enqueue", task_name, args))

    def before(self, ctx):
        self.calls.append((self.name, "before", ctx.task_name, ctx.id == current_job.id))

    def after(self, ctx, result, error):
        self.calls.append((self.name, "after", result, type(error).__name__ if error else None))

    def on_retry(self, ctx, error, retry_count):
        self.calls.append((self.name, "on_retry", type(error).__name__, retry_count))

    def on_dead_letter(self, ctx, error):
        self.calls.append((self.name, "on_dead_letter", type(error).__name__))

    def on_timeout(self, ctx):
        self.calls.append((self.name, "on_timeout"))

    def on_cancel(self, ctx):
        self.calls.append((self.name, "on_cancel"))


def test_order_of_middleware_and_hooks(db_path: str) -> None:
    calls: list = []
    q = Queue(db_path=db_path, middleware=[Recorder("g1", calls), Recorder("g2", calls)])

    @q.before_task
    def before_task(task_name, args, kwargs):
        calls.append(("hook", "before_task"))

    @q.on_success
    def on_success(task_name, args, kwargs, result):
        calls.append(("hook", "on_success"))

    @q.after_task
    def after_task(task_name, args, kwargs, result, error):
        calls.append(("hook", "after_task"))

    @q.task(name="add", middleware=[Recorder("t1", calls)])
    def add(a, b):
        calls.append(("task", a + b))
        return a + b

    add.delay(1, 2)
    assert calls == [
        ("g1", "on_enqueue", "add", (1, 2)),
        ("g2", "on_enqueue", "add", (1, 2)),
        ("t1", "on_enqueue", "add", (1, 2)),
    ]
    calls.clear()
    q.run_worker(run_once=True, workers=1)
    assert calls == [
        ("g1", "before", "add", True),
        ("g2", "before", "add", True),
        ("t1", "before", "add", True),
        ("hook", "before_task"),
        ("task", 3),
        ("hook", "on_success"),
        ("hook", "after_task"),
        ("g1", "after", 3, None),
        ("g2", "after", 3, None),
        ("t1", "after", 3, None),
    ]


def test_retry_and_dead_letter_hooks(db_path: str) -> None:
    calls: list = []
    q = Queue(db_path=db_path, middleware=[Recorder("m", calls)])

    @q.task(name="flaky", max_retries=1, retry_backoff=0)
    def flaky():
        raise ValueError("no")

    job = flaky.delay()
    q.run_worker(run_once=True, workers=1)
    q.run_worker(run_once=True, workers=1)
    assert job.status == "dead"
    hooks = [c[1:] for c in calls if c[1] in ("after", "on_retry", "on_dead_letter")]
    assert hooks == [
        ("after", None, "ValueError"),
        ("on_retry", "ValueError", 1),
        ("after", None, "ValueError"),
        ("on_dead_letter", "ValueError"),
    ]


def test_timeout_hook(db_path: str) -> None:
    calls: list = []
    q = Queue(db_path=db_path, middleware=[Recorder("m", calls)])

    @q.task(name="sleepy", timeout=0.3, max_retries=0)
    def sleepy():
        total = 0
        for i in range(10**9):  # pure Python: the timeout interrupts it at a bytecode
            total += i
        return total

    job = sleepy.delay()
    q.run_worker(run_once=True, workers=1)
    assert job.status == "dead"
    names = [c[1] for c in calls]
    assert "on_timeout" in names and names.index("on_timeout") < names.index("on_dead_letter")


def test_on_enqueue_edits_apply(db_path: str) -> None:
    class Router(TaskMiddleware):
        def on_enqueue(self, task_name, args, kwargs, options):
            options["queue"] = "urgent" if kwargs.get("vip") else "bulk"
            options["priority"] = 9 if kwargs.get("vip") else 1
            options["metadata"] = {"routed": True}

    q = Queue(db_path=db_path, middleware=[Router()])

    @q.task(name="send")
    def send(to, vip=False):
        return to

    a = send.delay("ann", vip=True)
    b = send.delay("bob")
    da, db = a.to_dict(), b.to_dict()
    assert (da["queue"], da["priority"], da["metadata"]) == ("urgent", 9, '{"routed": true}')
    assert (db["queue"], db["priority"]) == ("bulk", 1)
    many = q.enqueue_many("send", [("c",), ("d",)], kwargs_list=[{"vip": True}, {}])
    assert [j.to_dict()["queue"] for j in many] == ["urgent", "bulk"]


def test_bad_edit_at_enqueue_is_refused_and_nothing_stored(db_path: str) -> None:
    class Broken(TaskMiddleware):
        def on_enqueue(self, task_name, args, kwargs, options):
            options["priority"] = "high"

    q = Queue(db_path=db_path, middleware=[Broken()])

    @q.task(name="t")
    def t():
        return 1

    with pytest.raises(ValueError, match="priority"):
        t.delay()
    assert q.stats()["pending"] == 0


def test_middleware_that_raises_is_logged_and_harmless(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list = []

    class Exploding(TaskMiddleware):
        def on_enqueue(self, task_name, args, kwargs, options):
            raise RuntimeError("enqueue boom")

        def before(self, ctx):
            raise RuntimeError("before boom")

        def after(self, ctx, result, error):
            calls.append("after of a failed before must not run")

    q = Queue(db_path=db_path, middleware=[Exploding(), Recorder("ok", calls)])

    @q.task(name="fine")
    def fine():
        return "fine"

    caplog.set_level(logging.ERROR, logger="taskito")
    job = fine.delay()
    q.run_worker(run_once=True, workers=1)
    assert job.result(timeout=5) == "fine"
    assert "after of a failed before must not run" not in calls
    assert ("ok", "after", "fine", None) in calls
    text = caplog.text
    assert "enqueue boom" in text and "before boom" in text


def test_non_middleware_is_refused(db_path: str) -> None:
    with pytest.raises(ValueError, match="middleware"):
        Queue(db_path=db_path, middleware=[object()])  # type: ignore[list-item]
    q = Queue(db_path=db_path)
    with pytest.raises(ValueError, match="middleware"):
        q.task(name="x", middleware=["nope"])  # type: ignore[list-item]

"""Enqueueing and inspecting jobs through the public API, without running a worker."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

import taskito
from taskito import JobResult, Queue


def test_task_wrapper_runs_inline_and_has_a_name(queue: Queue) -> None:
    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert add.name == f"{__name__}.test_task_wrapper_runs_inline_and_has_a_name.<locals>.add"
    assert queue.stats()["pending"] == 0, "an inline call stores nothing"


def test_task_decorator_without_parentheses_and_custom_name(queue: Queue) -> None:
    @queue.task
    def plain() -> str:
        return "x"

    @queue.task(name="emails.send")
    def send() -> None:
        return None

    @queue.task("emails.resend", max_retries=1)  # the name positionally, as 0.22 takes it
    def resend() -> None:
        return None

    assert plain() == "x"
    assert send.name == "emails.send"
    assert "emails.send" in queue.tasks
    assert resend.name == "emails.resend" and resend.max_retries == 1
    with pytest.raises(ValueError, match="twice"):
        queue.task("a", name="b")
    with pytest.raises(ValueError, match="function or a task name"):
        queue.task(42)  # type: ignore[arg-type]


def test_duplicate_task_name_is_an_error(queue: Queue) -> None:
    @queue.task(name="dup")
    def one() -> None:
        return None

    with pytest.raises(ValueError, match="name="):

        @queue.task(name="dup")
        def two() -> None:
            return None


def test_delay_stores_a_pending_job(queue: Queue) -> None:
    @queue.task()
    def work(x: int) -> int:
        return x

    job = work.delay(7)
    assert isinstance(job, JobResult)
    assert isinstance(job.id, str) and len(job.id) == 36
    assert job.status == "pending"
    d = job.to_dict()
    for key in (
        "id queue task_name status priority retry_count max_retries created_at scheduled_at "
        "started_at completed_at error progress worker_id"
    ).split():
        assert key in d
    assert d["task_name"] == work.name
    assert d["queue"] == "default"
    assert d["max_retries"] == 3
    assert d["retry_count"] == 0
    assert abs(d["created_at"] - time.time() * 1000) < 60_000, "times are epoch milliseconds"
    assert d["started_at"] is None and d["completed_at"] is None


def test_status_is_fresh_on_every_access(queue: Queue) -> None:
    @queue.task()
    def work() -> None:
        return None

    job = work.delay()
    assert job.status == "pending"
    assert queue.cancel_job(job.id) is True
    assert job.status == "cancelled", "status must be re-read, not cached"


def test_apply_async_options(queue: Queue) -> None:
    @queue.task(queue="emails", priority=3, max_retries=5, timeout=9)
    def send(to: str, subject: str = "") -> None:
        return None

    default = send.delay("a@b")
    d = default.to_dict()
    assert (d["queue"], d["priority"], d["max_retries"], d["timeout"]) == ("emails", 3, 5, 9.0)

    job = send.apply_async(
        args=("c@d",),
        kwargs={"subject": "hi"},
        priority=9,
        delay=60,
        queue="urgent",
        max_retries=0,
        timeout=2,
        unique_key=None,
        metadata="m",
    )
    d = job.to_dict()
    assert (d["queue"], d["priority"], d["max_retries"], d["timeout"]) == ("urgent", 9, 0, 2.0)
    assert d["metadata"] == "m"
    assert d["scheduled_at"] - d["created_at"] >= 59_000


def test_queue_level_defaults_are_honoured(db_path: str) -> None:
    q = Queue(db_path=db_path, default_retry=7, default_timeout=11, default_priority=4)

    @q.task()
    def work() -> None:
        return None

    d = work.delay().to_dict()
    assert (d["max_retries"], d["timeout"], d["priority"]) == (7, 11.0, 4)


def test_enqueue_by_name_and_enqueue_many(queue: Queue) -> None:
    job = queue.enqueue("other.service.task", args=(1,), kwargs={"k": 2}, queue="remote")
    assert job.to_dict()["task_name"] == "other.service.task"
    jobs = queue.enqueue_many("bulk.task", [(i,) for i in range(50)], [{"n": i} for i in range(50)])
    assert len(jobs) == 50 and len({j.id for j in jobs}) == 50
    assert queue.stats()["pending"] == 51
    assert queue.stats_all_queues()["default"]["pending"] == 50
    assert queue.stats_all_queues()["remote"]["pending"] == 1
    assert queue.enqueue_many("bulk.task", []) == []
    with pytest.raises(ValueError, match="kwargs_list"):
        queue.enqueue_many("bulk.task", [(1,)], [{}, {}])


def test_enqueue_many_is_one_transaction(queue: Queue) -> None:
    class Bad:
        def __reduce__(self):  # type: ignore[override]
            raise TypeError("nope")

    with pytest.raises(taskito.SerializationError, match="bulk.task"):
        queue.enqueue_many("bulk.task", [(1,), (Bad(),)])
    assert queue.stats()["pending"] == 0, "nothing of a failed batch is stored"


def test_unpicklable_argument_raises_at_enqueue_and_stores_nothing(queue: Queue) -> None:
    @queue.task()
    def work(x: object) -> None:
        return None

    with pytest.raises(taskito.SerializationError) as info:
        work.delay(threading.Lock())  # lambdas are carried (by cloudpickle); a lock cannot be
    assert work.name in str(info.value)
    assert isinstance(info.value, taskito.TaskitoError)
    assert queue.stats()["pending"] == 0


def test_stats_always_has_all_six_keys(queue: Queue) -> None:
    assert queue.stats() == {
        "pending": 0,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
    }


def test_get_job_and_list_jobs(queue: Queue) -> None:
    @queue.task()
    def a() -> None:
        return None

    @queue.task(queue="q2")
    def b() -> None:
        return None

    ja = [a.delay() for _ in range(3)]
    jb = b.delay()
    assert queue.get_job(jb.id) == jb
    assert queue.get_job("no-such-id") is None
    assert [j.id for j in queue.list_jobs()] == [j.id for j in ja] + [jb.id]
    assert [j.id for j in queue.list_jobs(queue="q2")] == [jb.id]
    assert [j.id for j in queue.list_jobs(task_name=a.name, limit=2)] == [ja[0].id, ja[1].id]
    assert [j.id for j in queue.list_jobs(task_name=a.name, limit=2, offset=2)] == [ja[2].id]
    queue.cancel_job(ja[1].id)
    assert [j.id for j in queue.list_jobs(status="cancelled")] == [ja[1].id]
    assert queue.list_jobs(status="complete") == queue.list_jobs(status="completed") == []
    with pytest.raises(ValueError, match="status"):
        queue.list_jobs(status="bogus")


def test_cancel_only_pending_jobs(queue: Queue) -> None:
    job = queue.enqueue("t")
    assert queue.cancel_job(job.id) is True
    assert queue.cancel_job(job.id) is False
    assert queue.cancel_job("missing") is False
    with pytest.raises(taskito.TaskCancelledError, match=job.id):
        job.result(timeout=1)


def test_result_times_out_with_builtin_timeout_error(queue: Queue) -> None:
    job = queue.enqueue("never.runs")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=job.id):
        job.result(timeout=0.3)
    assert time.monotonic() - start < 10


def test_unique_key_deduplicates_live_jobs(queue: Queue) -> None:
    first = queue.enqueue("t", unique_key="report-42")
    again = queue.enqueue("t", unique_key="report-42")
    assert again.id == first.id
    assert queue.stats()["pending"] == 1
    queue.cancel_job(first.id)
    fresh = queue.enqueue("t", unique_key="report-42")
    assert fresh.id != first.id, "a finished job does not block its key"


def test_exception_hierarchy() -> None:
    for cls in (
        taskito.TaskFailedError,
        taskito.MaxRetriesExceededError,
        taskito.TaskCancelledError,
        taskito.SerializationError,
        taskito.DatabaseError,
        taskito.TaskTimeoutError,
    ):
        assert issubclass(cls, taskito.TaskitoError)
        assert cls.__module__ == "taskito.exceptions"
        assert pickle.loads(pickle.dumps(cls("x"))).args == ("x",)
    assert issubclass(taskito.TaskTimeoutError, TimeoutError)


def test_current_job_outside_a_task_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = taskito.current_job.id


def test_file_uri_paths_are_refused() -> None:
    with pytest.raises(taskito.DatabaseError, match="memory"):
        Queue(db_path="file:jobs.db?mode=ro")


def test_default_path_creates_parent_folders(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKITO_DB_PATH", raising=False)
    q = Queue()
    assert q.db_path == ".taskito/taskito.db"
    assert (tmp_path / ".taskito" / "taskito.db").is_file()

"""Operations from the CLI and their Python calls: ``info`` / ``queue.info()``, ``jobs`` /
``list_jobs``, ``dead`` / ``dead_letters`` ``retry_dead`` ``purge_dead``, ``cancel`` /
``cancel_job``, ``execute`` / ``execute_job``; ``--json``; the ``--app`` errors; and the
removal of finished jobs past ``result_ttl`` by a running worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_support import run_cli, wait_for, write_app
from conftest import RunningWorker

from taskito import JobNotFoundError, Queue

STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")


@pytest.fixture
def app(tmp_path: Path, db_path: str) -> str:
    return write_app(tmp_path, db_path)


@pytest.fixture
def q(db_path: str) -> Queue:
    """A Queue on the app's database, used by the test to enqueue and inspect."""
    return Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(*args, cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


def cli_json(tmp_path: Path, *args: str) -> object:
    code, out, err = cli(tmp_path, *args, "--json")
    assert code == 0, err
    return json.loads(out)  # stdout holds exactly one JSON document


def _make_dead(q: Queue) -> str:
    q.enqueue("boom", args=("went wrong",))
    assert q.process_one()  # the app's tasks are not registered in q: register boom here
    return q.dead_letters()[0]["id"]


@pytest.fixture(autouse=True)
def _tasks(q: Queue) -> None:
    @q.task(name="boom", max_retries=0)
    def boom(message="bad"):
        raise ValueError(message)

    @q.task(name="add")
    def add(a, b):
        return a + b


# -- info --------------------------------------------------------------------------------------


def test_info_keeps_one_status_line_per_status_then_a_queue_table(tmp_path: Path, app: str, q: Queue) -> None:
    for i in range(3):
        q.enqueue("add", args=(i, i))
    q.enqueue("add", args=(0, 0), queue="emails")
    q.enqueue("boom")
    q.run_worker(queues=["default"], run_once=True, max_jobs=2)
    code, out, err = cli(tmp_path, "info", "--app", app)
    assert code == 0, err
    lines = out.splitlines()
    head = dict(line.split() for line in lines[:6])
    assert list(head) == list(STATUSES)
    assert {k: int(v) for k, v in head.items()} == q.stats()
    table = {line.split()[0]: line.split() for line in lines[6:] if line.strip()}
    assert table["QUEUE"][:7] == ["QUEUE", *(s.upper() for s in STATUSES)]
    stats = q.stats_all_queues()
    for name in ("default", "emails"):
        assert [int(x) for x in table[name][1:7]] == [stats[name][s] for s in STATUSES]
    assert "Workers alive: 0" in out


def test_info_shows_live_workers_and_the_oldest_pending_age(tmp_path: Path, app: str, q: Queue) -> None:
    q.enqueue("add", args=(1, 1), queue="later")  # a queue the worker below does not serve
    time.sleep(1.1)
    worker = RunningWorker(q, worker_id="alive-1", queues=["default"]).start()
    try:
        wait_for(lambda: [w for w in q.workers() if w["status"] == "active"], what="the worker")
        code, out, err = cli(tmp_path, "info", "--app", app)
        data = cli_json(tmp_path, "info", "--app", app)
        py = q.info()
    finally:
        worker.stop()
    assert code == 0, err
    assert "Workers alive: 1" in out
    assert "alive-1" in out
    assert isinstance(data, dict)
    assert set(data) == {"stats", "queues", "workers"} == set(py)
    assert data["stats"] == q.stats()
    assert [w["worker_id"] for w in data["workers"]] == ["alive-1"]
    assert [w["worker_id"] for w in py["workers"]] == ["alive-1"]
    age = data["queues"]["later"]["oldest_pending_age"]
    assert 1.0 <= age < 3600
    assert py["queues"]["later"]["oldest_pending_age"] >= age
    assert q.info()["workers"] == []  # a stopped worker is no longer listed


def test_info_on_an_empty_queue(tmp_path: Path, app: str, q: Queue) -> None:
    code, out, _ = cli(tmp_path, "info", "--app", app)
    assert code == 0
    assert out.splitlines()[:6] == [f"{s} 0" for s in STATUSES]
    assert cli_json(tmp_path, "info", "--app", app) == {
        "stats": dict.fromkeys(STATUSES, 0),
        "queues": {},
        "workers": [],
    }


# -- jobs --------------------------------------------------------------------------------------


def test_jobs_lists_with_filters(tmp_path: Path, app: str, q: Queue) -> None:
    done = q.enqueue("add", args=(1, 2))
    assert q.process_one()
    waiting = [q.enqueue("add", args=(i, 0), queue="b") for i in range(3)]
    code, out, err = cli(tmp_path, "jobs", "--app", app)
    assert code == 0, err
    assert out.splitlines()[0].split()[:4] == ["ID", "TASK", "QUEUE", "STATUS"]
    for job in [done, *waiting]:
        assert job.id in out
    rows = cli_json(tmp_path, "jobs", "--app", app, "--status", "pending", "--queue", "b", "--limit", "2")
    assert [r["id"] for r in rows] == [j.id for j in waiting[:2]]  # type: ignore[index]
    assert all(r["status"] == "pending" and r["queue"] == "b" for r in rows)  # type: ignore[union-attr]
    (row,) = cli_json(tmp_path, "jobs", "--app", app, "--status", "completed")  # type: ignore[misc]
    assert row["id"] == done.id and row["task_name"] == "add"
    assert row["worker_id"] == done.worker_id
    assert row == done.to_dict()
    (row,) = cli_json(tmp_path, "jobs", "--app", app, "--status", "complete")  # type: ignore[misc]
    assert row["id"] == done.id
    rows = cli_json(tmp_path, "jobs", "--app", app, "--worker-id", done.worker_id or "")
    assert [r["id"] for r in rows] == [done.id]  # type: ignore[index]
    assert [j.id for j in q.list_jobs(status="pending", queue="b", limit=2)] == [j.id for j in waiting[:2]]


def test_jobs_empty_and_bad_status(tmp_path: Path, app: str) -> None:
    code, out, _ = cli(tmp_path, "jobs", "--app", app)
    assert code == 0 and "No jobs." in out
    assert cli_json(tmp_path, "jobs", "--app", app) == []
    code, _, err = cli(tmp_path, "jobs", "--app", app, "--status", "sleeping")
    assert code != 0 and "sleeping" in err


# -- dead --------------------------------------------------------------------------------------


def test_dead_lists_retries_and_purges(tmp_path: Path, app: str, q: Queue) -> None:
    dead_id = _make_dead(q)
    code, out, err = cli(tmp_path, "dead", "--app", app)
    assert code == 0, err
    assert dead_id in out and "went wrong" in out
    (entry,) = cli_json(tmp_path, "dead", "--app", app)  # type: ignore[misc]
    assert entry == q.dead_letters()[0]
    for key in ("id", "original_job_id", "task_name", "queue", "error", "retry_count", "failed_at"):
        assert key in entry

    answer = cli_json(tmp_path, "dead", "--app", app, "--retry", dead_id)
    assert isinstance(answer, dict) and answer["dead_id"] == dead_id
    again = q.get_job(answer["job_id"])
    assert again is not None and again.status == "pending"
    assert again.to_dict()["task_name"] == "boom"
    assert q.dead_letters() == []
    code, out, _ = cli(tmp_path, "dead", "--app", app)
    assert code == 0 and "No dead letters." in out

    assert q.process_one()  # fails again: a new dead letter
    _make_dead(q)
    assert len(q.dead_letters()) == 2
    code, out, err = cli(tmp_path, "dead", "--app", app, "--purge", "--older-than", "3600")
    assert code == 0, err
    assert "Purged 0" in out
    assert cli_json(tmp_path, "dead", "--app", app, "--purge") == {"purged": 2}
    assert q.dead_letters() == []


def test_dead_retry_of_an_unknown_id_fails(tmp_path: Path, app: str, q: Queue) -> None:
    code, _, err = cli(tmp_path, "dead", "--app", app, "--retry", "no-such-id")
    assert code == 1
    assert "no-such-id" in err
    with pytest.raises(JobNotFoundError):
        q.retry_dead("no-such-id")


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_a_pending_job(tmp_path: Path, app: str, q: Queue) -> None:
    job = q.enqueue("add", args=(1, 1))
    code, out, err = cli(tmp_path, "cancel", "--app", app, job.id)
    assert code == 0, err
    assert job.id in out
    assert job.status == "cancelled"
    # Nothing runs it afterwards.
    assert q.run_worker(run_once=True) == 0


def test_cancel_refuses_finished_and_unknown_jobs(tmp_path: Path, app: str, q: Queue) -> None:
    job = q.enqueue("add", args=(1, 1))
    assert q.process_one()
    code, _, err = cli(tmp_path, "cancel", "--app", app, job.id)
    assert code == 1 and "complete" in err
    assert job.status == "complete"
    assert q.cancel_job(job.id) is False
    code, _, err = cli(tmp_path, "cancel", "--app", app, "missing-id")
    assert code == 1 and "missing-id" in err


def test_cancel_json(tmp_path: Path, app: str, q: Queue) -> None:
    job = q.enqueue("add", args=(1, 1))
    proc = run_cli("cancel", "--app", app, job.id, "--json", cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"id": job.id, "cancelled": True, "status": "cancelled"}
    proc = run_cli("cancel", "--app", app, job.id, "--json", cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {"id": job.id, "cancelled": False, "status": "cancelled"}


# -- execute -----------------------------------------------------------------------------------


def test_execute_runs_a_delayed_job_now_and_prints_the_result(tmp_path: Path, app: str, q: Queue) -> None:
    job = q.enqueue("add", args=(20, 22), delay=3600)
    code, out, err = cli(tmp_path, "execute", "--app", app, job.id)
    assert code == 0, err
    assert out.strip() == "42"
    assert job.status == "complete"
    assert job.result(timeout=0) == 42
    assert job.worker_id  # recorded like a worker would


def test_execute_prints_the_repr(tmp_path: Path, db_path: str, q: Queue) -> None:
    app = write_app(
        tmp_path,
        db_path,
        name="reprapp",
        body="""
        @queue.task(name="text")
        def text():
            return {"a": "b c"}
        """,
    )
    job = q.enqueue("text")
    code, out, _ = cli(tmp_path, "execute", "--app", app, job.id)
    assert code == 0
    assert out.strip() == repr({"a": "b c"})
    data = cli_json(tmp_path, "execute", "--app", app, job.id)
    assert data == {
        "id": job.id,
        "task_name": "text",
        "status": "complete",
        "result": repr({"a": "b c"}),
        "error": None,
        "traceback": None,
    }


def test_execute_reruns_a_finished_job(tmp_path: Path, app: str, q: Queue) -> None:
    marks = tmp_path / "marks.txt"
    job = q.enqueue("touch", args=(str(marks), "run"))
    for _ in range(2):
        code, out, err = cli(tmp_path, "execute", "--app", app, job.id)
        assert code == 0, err
        assert out.strip() == "'run'"
    assert marks.read_text().splitlines() == ["run", "run"]


def test_execute_failure_prints_the_traceback_and_exits_non_zero(tmp_path: Path, app: str, q: Queue) -> None:
    job = q.enqueue("boom", args=("exploded here",))
    code, out, err = cli(tmp_path, "execute", "--app", app, job.id)
    assert code == 1
    assert out == ""
    assert "Traceback (most recent call last)" in err
    assert "ValueError: exploded here" in err
    assert job.status == "dead"  # max_retries=0: recorded as a worker would
    (error,) = q.job_errors(job.id)
    assert error["traceback"].strip() in err
    data = cli_json_failing(tmp_path, "execute", "--app", app, job.id)
    assert data["status"] == "dead" and data["result"] is None
    assert data["error"] == "ValueError: exploded here"
    assert "ValueError: exploded here" in data["traceback"]


def test_execute_failure_with_retries_left_leaves_the_job_pending(
    tmp_path: Path, db_path: str, q: Queue
) -> None:
    app = write_app(
        tmp_path,
        db_path,
        name="retryapp",
        body="""
        @queue.task(name="flaky", max_retries=3)
        def flaky():
            raise OSError("disk on fire")
        """,
    )
    job = q.enqueue("flaky")
    code, _, err = cli(tmp_path, "execute", "--app", app, job.id)
    assert code == 1
    assert "OSError: disk on fire" in err
    assert job.status == "pending"
    assert job.to_dict()["retry_count"] == 1


def test_execute_unknown_job_fails(tmp_path: Path, app: str, q: Queue) -> None:
    code, out, err = cli(tmp_path, "execute", "--app", app, "does-not-exist")
    assert code == 1
    assert "does-not-exist" in err and out == ""
    with pytest.raises(JobNotFoundError):
        q.execute_job("does-not-exist")


def test_execute_job_from_python(q: Queue) -> None:
    job = q.enqueue("add", args=(2, 3), delay=3600)
    result = q.execute_job(job.id)
    assert result.id == job.id and result.result(timeout=0) == 5


def cli_json_failing(tmp_path: Path, *args: str) -> dict:
    proc = run_cli(*args, "--json", cwd=tmp_path)
    assert proc.returncode == 1
    return json.loads(proc.stdout)


# -- result_ttl --------------------------------------------------------------------------------


def test_a_running_worker_removes_finished_jobs_past_result_ttl(db_path: str) -> None:
    queue = Queue(
        db_path=db_path,
        workers=1,
        scheduler_poll_interval_ms=10,
        result_ttl=1,
        heartbeat_interval=0.2,
        stale_after=5,
    )

    @queue.task(name="ok")
    def ok():
        return 1

    @queue.task(name="bad", max_retries=0)
    def bad():
        raise ValueError("x")

    later = queue.enqueue("ok", delay=3600)
    worker = RunningWorker(queue).start()
    try:
        # Jobs that finish while the worker runs, not only before it started.
        done, failed = queue.enqueue("ok"), queue.enqueue("bad")
        wait_for(lambda: done.status == "complete" and failed.status == "dead", what="the jobs")
        wait_for(
            lambda: queue.get_job(done.id) is None and queue.get_job(failed.id) is None,
            timeout=60,
            what="the purge",
        )
        assert queue.job_errors(failed.id) == []
        assert later.status == "pending"  # unfinished jobs are kept
    finally:
        worker.stop()


def test_finished_jobs_are_kept_without_result_ttl(queue: Queue) -> None:
    @queue.task(name="ok")
    def ok():
        return 1

    job = ok.delay()
    assert queue.run_worker(run_once=True) == 1
    assert queue.result_ttl is None
    assert job.result(timeout=0) == 1


# -- --app errors ------------------------------------------------------------------------------

COMMANDS = [
    ["worker", "--run-once"],
    ["info"],
    ["jobs"],
    ["dead"],
    ["cancel", "some-id"],
    ["execute", "some-id"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("appmod", "module:attribute"),
        ("no_such_module_here:queue", "could not import module"),
        ("appmod:nothing", "has no attribute"),
        ("appmod:add", "is not a Queue instance"),
    ],
)
def test_bad_app_values(tmp_path: Path, app: str, command: list[str], spec: str, message: str) -> None:
    proc = run_cli(*command[:1], "--app", spec, *command[1:], cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('module body failed')\n")
    proc = run_cli("info", "--app", "broken:queue", cwd=tmp_path)
    assert proc.returncode != 0
    assert "could not import module" in proc.stderr and "module body failed" in proc.stderr

"""Settings from ``TASKITO_*`` environment variables: each variable, the precedence
(argument or CLI flag > ``Queue(...)`` value > environment > default), malformed values
(an error naming the variable) and ``taskito worker --help``."""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import run_cli, start_cli, wait_for, write_app

from taskito import Queue

VARS = (
    "TASKITO_DB_PATH",
    "TASKITO_WORKERS",
    "TASKITO_QUEUES",
    "TASKITO_POLL_INTERVAL_MS",
    "TASKITO_DRAIN_TIMEOUT",
    "TASKITO_LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    logger = logging.getLogger("taskito")
    level = logger.level
    yield
    logger.setLevel(level)  # Queue() applies TASKITO_LOG_LEVEL to the taskito logger


def _threads_started(caplog: pytest.LogCaptureFixture) -> int:
    for record in caplog.records:
        found = re.search(r"starting: (\d+) thread", record.getMessage())
        if found:
            return int(found.group(1))
    raise AssertionError("no worker start line was logged")


def _noop_task(queue: Queue) -> None:
    @queue.task(name="noop")
    def noop() -> None:
        return None


# -- each variable, from Python -------------------------------------------------------------


def test_db_path_from_env_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from_env = str(tmp_path / "env" / "q.db")
    monkeypatch.setenv("TASKITO_DB_PATH", from_env)
    assert Queue().db_path == from_env
    assert os.path.exists(from_env)
    explicit = str(tmp_path / "explicit.db")
    assert Queue(db_path=explicit).db_path == explicit


def test_db_path_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert Queue().db_path == ".taskito/taskito.db"
    assert (tmp_path / ".taskito" / "taskito.db").exists()


def test_workers_layers(
    monkeypatch: pytest.MonkeyPatch, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskito")

    def threads(queue: Queue, **kwargs: object) -> int:
        caplog.clear()
        _noop_task(queue)
        queue.run_worker(run_once=True, **kwargs)  # type: ignore[arg-type]
        return _threads_started(caplog)

    assert threads(Queue(db_path=db_path)) == (os.cpu_count() or 1)  # default: 0 = CPU count
    monkeypatch.setenv("TASKITO_WORKERS", "3")
    assert threads(Queue(db_path=db_path)) == 3  # environment
    assert threads(Queue(db_path=db_path, workers=2)) == 2  # Queue argument beats environment
    assert threads(Queue(db_path=db_path, workers=2), workers=1) == 1  # run_worker argument wins


def test_queues_from_env_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch, db_path: str) -> None:
    monkeypatch.setenv("TASKITO_QUEUES", "b, c")
    queue = Queue(db_path=db_path, workers=1, scheduler_poll_interval_ms=10)
    _noop_task(queue)
    a, b, c = (queue.enqueue("noop", queue=name) for name in "abc")
    assert queue.run_worker(run_once=True) == 2
    assert (a.status, b.status, c.status) == ("pending", "complete", "complete")
    d = queue.enqueue("noop", queue="b")
    assert queue.run_worker(queues=["a"], run_once=True) == 1
    assert (a.status, d.status) == ("complete", "pending")


def test_poll_interval_from_env_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch, db_path: str) -> None:
    assert Queue(db_path=db_path).scheduler_poll_interval_ms == 50
    monkeypatch.setenv("TASKITO_POLL_INTERVAL_MS", "7")
    assert Queue(db_path=db_path).scheduler_poll_interval_ms == 7
    assert Queue(db_path=db_path, scheduler_poll_interval_ms=20).scheduler_poll_interval_ms == 20


def test_drain_timeout_from_env_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch, db_path: str) -> None:
    assert Queue(db_path=db_path).drain_timeout == 30
    monkeypatch.setenv("TASKITO_DRAIN_TIMEOUT", "2.5")
    assert Queue(db_path=db_path).drain_timeout == 2.5
    assert Queue(db_path=db_path, drain_timeout=4).drain_timeout == 4


def test_log_level_from_env(monkeypatch: pytest.MonkeyPatch, db_path: str) -> None:
    monkeypatch.setenv("TASKITO_LOG_LEVEL", "debug")
    Queue(db_path=db_path)
    assert logging.getLogger("taskito").level == logging.DEBUG
    monkeypatch.setenv("TASKITO_LOG_LEVEL", "ERROR")
    Queue(db_path=db_path)
    assert logging.getLogger("taskito").level == logging.ERROR


# -- malformed values ------------------------------------------------------------------------

BAD_VALUES = [
    ("TASKITO_WORKERS", "many"),
    ("TASKITO_WORKERS", "-1"),
    ("TASKITO_POLL_INTERVAL_MS", "fast"),
    ("TASKITO_POLL_INTERVAL_MS", "0"),
    ("TASKITO_DRAIN_TIMEOUT", "soon"),
    ("TASKITO_DRAIN_TIMEOUT", "-5"),
    ("TASKITO_DRAIN_TIMEOUT", "nan"),
    ("TASKITO_LOG_LEVEL", "loud"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_malformed_value_fails_queue_creation_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, db_path: str, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Queue(db_path=db_path)


@pytest.mark.parametrize("value", [",", "a,,b"])
def test_malformed_queues_fail_run_worker_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, db_path: str, value: str
) -> None:
    monkeypatch.setenv("TASKITO_QUEUES", value)
    queue = Queue(db_path=db_path)
    with pytest.raises(ValueError, match="TASKITO_QUEUES"):
        queue.run_worker(run_once=True)


@pytest.mark.parametrize(("name", "value"), [*BAD_VALUES, ("TASKITO_QUEUES", "a,,b")])
def test_cli_malformed_value_exits_non_zero_naming_the_variable(
    tmp_path: Path, db_path: str, name: str, value: str
) -> None:
    app = write_app(tmp_path, db_path)
    job = Queue(db_path=db_path).enqueue("add", args=(1, 1))
    for command in (["worker", "--run-once"], ["info"]):
        proc = run_cli(*command, "--app", app, cwd=tmp_path, env={name: value})
        assert proc.returncode != 0, (command, proc.stdout)
        assert name in proc.stderr, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert job.status == "pending"


# -- the CLI ---------------------------------------------------------------------------------


def test_worker_help_lists_every_variable(tmp_path: Path) -> None:
    proc = run_cli("worker", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for name in VARS:
        assert name in proc.stdout


def test_cli_db_path_from_env(tmp_path: Path) -> None:
    db = str(tmp_path / "from-env.db")
    app = write_app(tmp_path, None)  # the module's Queue() names no path
    q = Queue(db_path=db)
    jobs = [q.enqueue("add", args=(i, 1)) for i in range(3)]
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_DB_PATH": db})
    assert proc.returncode == 0, proc.stderr
    assert db in proc.stdout
    assert [j.result(timeout=0) for j in jobs] == [1, 2, 3]
    proc = run_cli("info", "--app", app, cwd=tmp_path, env={"TASKITO_DB_PATH": db})
    assert "completed 3" in proc.stdout.splitlines()
    assert not (tmp_path / ".taskito").exists()  # the default path was never used


def test_cli_queues_from_env_and_the_flag_wins(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    a, b = q.enqueue("add", args=(1, 1), queue="a"), q.enqueue("add", args=(2, 2), queue="b")
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_QUEUES": "b"})
    assert proc.returncode == 0, proc.stderr
    assert "Queues: b" in proc.stdout
    assert (a.status, b.status) == ("pending", "complete")
    c = q.enqueue("add", args=(3, 3), queue="b")
    proc = run_cli(
        "worker", "--app", app, "--run-once", "--queues", "a", cwd=tmp_path, env={"TASKITO_QUEUES": "b"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "Queues: a" in proc.stdout
    assert (a.status, c.status) == ("complete", "pending")


def test_cli_workers_from_env_and_the_flag_wins(tmp_path: Path, db_path: str) -> None:
    # Three jobs that each wait for the other two: they finish only if three threads run them.
    app = write_app(
        tmp_path,
        db_path,
        queue_args=f"db_path={db_path!r}, scheduler_poll_interval_ms=10",
        body="""
        meet = threading.Barrier(3, timeout=30)

        @queue.task(name="meet", max_retries=0)
        def meet_task():
            meet.wait()
            return threading.current_thread().name
        """,
    )
    q = Queue(db_path=db_path)
    jobs = [q.enqueue("meet") for _ in range(3)]
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_WORKERS": "3"})
    assert proc.returncode == 0, proc.stderr
    assert [j.status for j in jobs] == ["complete"] * 3
    assert "3 thread(s)" in proc.stderr
    q.enqueue("add", args=(1, 1))
    proc = run_cli(
        "worker", "--app", app, "--run-once", "--workers", "1", cwd=tmp_path, env={"TASKITO_WORKERS": "3"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 thread(s)" in proc.stderr


def test_cli_log_level_from_env(tmp_path: Path, db_path: str) -> None:
    app = write_app(tmp_path, db_path)
    q = Queue(db_path=db_path)
    job = q.enqueue("add", args=(1, 1))
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_LOG_LEVEL": "DEBUG"})
    assert proc.returncode == 0, proc.stderr
    assert f"job {job.id} (add) started on" in proc.stderr
    q.enqueue("add", args=(1, 1))
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path, env={"TASKITO_LOG_LEVEL": "WARNING"})
    assert proc.returncode == 0, proc.stderr
    assert "starting" not in proc.stderr and "started on" not in proc.stderr
    # Without the variable the CLI logs at INFO: the start line but no per-job lines.
    q.enqueue("add", args=(1, 1))
    proc = run_cli("worker", "--app", app, "--run-once", cwd=tmp_path)
    assert "starting" in proc.stderr and "started on" not in proc.stderr


def _drain_run(tmp_path: Path, db_path: str, env: dict[str, str], *flags: str) -> str:
    """Starts a CLI worker on a job that sleeps for minutes, sends one SIGTERM once it runs,
    and returns the job's status after the worker exited."""
    app = write_app(
        tmp_path,
        db_path,
        body="""
        @queue.task(name="slow")
        def slow():
            time.sleep(300)
        """,
    )
    q = Queue(db_path=db_path)
    job = q.enqueue("slow")
    proc = start_cli("worker", "--app", app, *flags, cwd=tmp_path, env=env)
    try:
        wait_for(lambda: job.status == "running", what="the job to start")
        proc.send_signal(signal.SIGTERM)
        # Far below the 30 s default and the 600 s in the environment of the flag test.
        proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    return job.status


def test_cli_drain_timeout_from_env(tmp_path: Path, db_path: str) -> None:
    assert _drain_run(tmp_path, db_path, {"TASKITO_DRAIN_TIMEOUT": "1"}) == "pending"


def test_cli_drain_timeout_flag_beats_env(tmp_path: Path, db_path: str) -> None:
    status = _drain_run(tmp_path, db_path, {"TASKITO_DRAIN_TIMEOUT": "600"}, "--drain-timeout", "1")
    assert status == "pending"

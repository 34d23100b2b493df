"""The prefork pool: tasks run in child processes, one per worker thread; a child past its
job's timeout is killed and replaced, a child that dies fails or retries only its job, and
children are recycled after ``max_tasks_per_child`` jobs."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from cli_support import cli_env, wait_for
from conftest import ROOT, RunningWorker, run_py

from taskito import Queue, TaskitoError
from taskito.exceptions import MaxRetriesExceededError
from taskito.task_errors import readable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the prefork pool needs Linux")

APP = """
import ctypes, os, signal, time
from taskito import EventType, Queue, current_job

queue = Queue(db_path={db!r}, workers=2, scheduler_poll_interval_ms=10, **{options!r})

@queue.on_event(EventType.JOB_STARTED)
def noted(event_type, payload):  # registered wherever the app is imported
    with open({noted!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{payload['job_id']}}\\n")

@queue.before_task
def mark(task_name, args, kwargs):
    with open({hooks!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{task_name}}\\n")

@queue.task(name="pid")
def pid(seconds=0.0):
    time.sleep(seconds)
    return os.getpid()

@queue.task(name="echo")
def echo(value):
    return {{"value": value, "pid": os.getpid()}}

@queue.task(name="boom", max_retries=0)
def boom(message):
    raise KeyError(message)

@queue.task(name="c_hang", timeout=1, max_retries={hang_retries})
def c_hang():
    ctypes.CDLL(None).sleep(60)  # C code holding no Python frame: no thread could stop it

@queue.task(name="segv", max_retries=1, retry_backoff=0)
def segv():
    ctypes.string_at(0)

@queue.task(name="exit3", max_retries=0)
def exit3():
    os._exit(3)

@queue.task(name="flaky", max_retries=1, retry_backoff=0)
def flaky():
    if current_job.retry_count == 0:
        raise ValueError("first try")
    return "second"

@queue.task(name="progress")
def progress():
    current_job.update_progress(40)
    return current_job.id

@queue.task(name="touch")
def touch(path):
    time.sleep(1.0)
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    return os.getpid()
"""

_names = itertools.count(1)


def load_app(tmp_path: Path, hang_retries: int = 0, db: str | None = None, **options: object) -> ModuleType:
    """Writes an app module under a fresh name and imports it from this process."""
    name = f"prefork_app_{next(_names)}"
    source = APP.format(
        db=db or str(tmp_path / "q.db"),
        options=options,
        hooks=str(tmp_path / "hooks.txt"),
        noted=str(tmp_path / "noted.txt"),
        hang_retries=hang_retries,
    )
    (tmp_path / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(tmp_path))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ModuleType]:
    module = load_app(tmp_path)
    yield module
    sys.modules.pop(module.__name__, None)


def start(module: ModuleType, **kwargs: object) -> RunningWorker:
    # The module is found by scanning sys.modules: its path must reach the children.
    sys.path.insert(0, str(Path(module.__file__).parent))  # type: ignore[arg-type]
    try:
        return RunningWorker(module.queue, pool="prefork", **kwargs).start()
    finally:
        wait_for(lambda: module.queue.workers(), what="worker registered")
        sys.path.pop(0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; it is gone once its parent has reaped it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_jobs_run_in_children_and_results_round_trip(app: ModuleType, tmp_path: Path) -> None:
    worker = start(app)
    try:
        pids = {r.result(timeout=60) for r in [app.pid.delay(0.3) for _ in range(4)]}
        echoed = app.echo.delay([1, "two", {"3": None}]).result(timeout=30)
        failed = app.boom.delay("nope")
        with pytest.raises(MaxRetriesExceededError):
            failed.result(timeout=30)
    finally:
        worker.stop()
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2
    assert echoed["value"] == [1, "two", {"3": None}]
    assert echoed["pid"] != os.getpid()
    assert failed.status == "dead"
    assert readable(failed.error) == "KeyError: 'nope'"
    assert "raise KeyError(message)" in failed.errors[0]["traceback"]
    # Hooks ran in the children, where the jobs ran.
    hook_pids = {int(line.split()[0]) for line in (tmp_path / "hooks.txt").read_text().splitlines()}
    assert os.getpid() not in hook_pids
    assert pids <= hook_pids
    # The children are gone once the worker has stopped.
    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid), timeout=10, what=f"child {pid} to exit")


def test_current_job_progress_from_a_child(app: ModuleType) -> None:
    worker = start(app)
    try:
        job = app.progress.delay()
        assert job.result(timeout=30) == job.id
    finally:
        worker.stop()
    assert job.refresh().progress == 40


def children_of_this_process() -> set[int]:
    """Live prefork children of the test process (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and b"taskito.worker.prefork_child" in cmdline:
            found.add(int(entry.name))
    return found


def hang_pids(folder: Path) -> set[int]:
    """The children that ran ``c_hang`` (its before_task hook logs the pid)."""
    lines = (folder / "hooks.txt").read_text().splitlines()
    return {int(line.split()[0]) for line in lines if line.endswith(" c_hang")}


def test_c_level_hang_is_killed_at_its_timeout_and_the_pool_keeps_its_size(tmp_path: Path) -> None:
    module = load_app(tmp_path, hang_retries=1)
    worker = start(module)
    try:
        wait_for(lambda: len(children_of_this_process()) == 2, what="two children")
        job = module.c_hang.delay()
        wait_for(lambda: job.status == "running", what="the hang to start")
        running_since = time.monotonic()
        wait_for(lambda: job.errors, timeout=30, what="the first attempt to fail")
        first_failure = time.monotonic() - running_since
        hung = hang_pids(tmp_path)
        # Replaced within timeout + 2 s of the job's start: the killed child is gone and
        # two children live.
        wait_for(
            lambda: len(children_of_this_process() - hung) == 2,
            timeout=max(0.1, 1 + 2 + 1 - first_failure),  # a loaded machine gets 1 s more
            what="the killed child to be replaced",
        )
        with pytest.raises(MaxRetriesExceededError):
            job.result(timeout=60)
        assert job.status == "dead"
        assert all("TaskTimeoutError" in e["error"] for e in job.errors)
        assert len(job.errors) == 2
        a, b = module.pid.delay(0.5), module.pid.delay(0.5)
        pids = {a.result(timeout=30), b.result(timeout=30)}
        assert len(children_of_this_process()) == 2
    finally:
        worker.stop()
    # Timeout 1 s: killed and failed within timeout + 2 s (a loaded machine gets 1 s more).
    assert first_failure < 1 + 2 + 1, f"the killed job failed {first_failure:.2f}s after it started"
    hung = hang_pids(tmp_path)
    assert len(hung) == 2, "each attempt ran in a child of its own"
    assert not pids & hung


def test_a_crashing_child_fails_only_its_job(app: ModuleType) -> None:
    worker = start(app)
    try:
        slow = app.pid.delay(2.0)
        wait_for(lambda: slow.status == "running", what="the slow job to start")
        crash = app.segv.delay()
        exited = app.exit3.delay()
        with pytest.raises(MaxRetriesExceededError):
            crash.result(timeout=60)
        with pytest.raises(MaxRetriesExceededError):
            exited.result(timeout=60)
        # The job beside them was not touched, and the pool goes on.
        assert slow.result(timeout=30) != os.getpid()
        assert app.echo.delay(7).result(timeout=30)["value"] == 7
    finally:
        worker.stop()
    assert crash.status == "dead"
    assert len(crash.errors) == 2
    assert all("SIGSEGV" in e["error"] and "WorkerCrashedError" in e["error"] for e in crash.errors)
    assert exited.status == "dead"
    assert "exit code 3" in (exited.error or "")
    assert slow.status == "complete"


def test_jobs_of_children_are_counted_in_the_parents_metrics(app: ModuleType) -> None:
    pytest.importorskip("prometheus_client")
    from taskito.metrics import Metrics

    metrics = Metrics(app.queue).attach()
    done = [app.pid.delay(0.2) for _ in range(3)]
    dead = [app.boom.delay("x"), app.segv.delay()]  # segv: a crash, retried once, then dead
    unknown = app.queue.enqueue("missing.task")
    worker = start(app)
    try:
        for job in done:
            job.result(timeout=60)
        for job in [*dead, unknown]:
            wait_for(lambda job=job: job.status in ("dead", "failed"), timeout=60, what="the job to end")
    finally:
        worker.stop()
    assert unknown.status == "failed"
    families = {f.name: f.samples for f in metrics.registry.collect()}
    processed = {
        (s.labels["queue"], s.labels["task"], s.labels["outcome"]): s.value
        for s in families["taskito_jobs_processed"]
        if s.name == "taskito_jobs_processed_total"
    }
    assert processed == {
        ("default", "pid", "complete"): 3,
        ("default", "boom", "dead"): 1,
        ("default", "segv", "retry"): 1,
        ("default", "segv", "dead"): 1,
        ("default", "_other", "failed"): 1,  # an unregistered task: no series of its own
    }
    durations = {
        (s.labels["task"], s.name.rsplit("_", 1)[1]): s.value
        for s in families["taskito_job_duration_seconds"]
        if s.name.endswith(("_count", "_sum"))
    }
    assert {task: n for (task, kind), n in durations.items() if kind == "count"} == {
        "pid": 3,
        "boom": 1,
        "segv": 2,
        "_other": 1,
    }
    # The child's timing of the run: each `pid` job slept 0.2 s there.
    assert durations[("pid", "sum")] >= 0.6


def test_children_are_recycled_after_max_tasks_per_child(tmp_path: Path) -> None:
    module = load_app(tmp_path, max_tasks_per_child=2)
    worker = start(module, workers=1)
    try:
        pids = [module.pid.delay().result(timeout=30) for _ in range(6)]
    finally:
        worker.stop()
    assert len(set(pids)) == 3, pids
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert os.getpid() not in pids


def test_run_worker_argument_overrides_max_tasks_per_child(app: ModuleType) -> None:
    worker = start(app, workers=1, max_tasks_per_child=1)
    try:
        pids = [app.pid.delay().result(timeout=30) for _ in range(3)]
    finally:
        worker.stop()
    assert len(set(pids)) == 3


def test_bad_pool_options(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    queue = Queue(db_path=db)
    with pytest.raises(ValueError, match="pool"):
        queue.run_worker(pool="process")
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        queue.run_worker(pool="prefork", max_tasks_per_child=0)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        Queue(db_path=db, max_tasks_per_child=0)
    with pytest.raises(ValueError, match="async_concurrency"):
        Queue(db_path=db, async_concurrency=0)
    with pytest.raises(ValueError, match="in-memory"):
        Queue(db_path=":memory:").run_worker(pool="prefork")


def test_a_queue_children_cannot_import_is_a_clear_error(tmp_path: Path) -> None:
    local = Queue(db_path=str(tmp_path / "q.db"))  # a local name: no module holds it
    with pytest.raises(TaskitoError, match="not a module-level name"):
        local.run_worker(pool="prefork", run_once=True)
    with pytest.raises(TaskitoError, match="cannot load the app in a child"):
        local.run_worker(pool="prefork", run_once=True, app="no_such_module_here:queue")


SCRIPT = """
import os
from taskito import Queue

queue = Queue(db_path=os.environ["SCRIPT_DB"], workers=2, scheduler_poll_interval_ms=10)

class Point:
    def __init__(self, x):
        self.x = x

@queue.task()
def double(p):
    return (Point(p.x * 2), os.getpid())

{guard}
    job = double.delay(Point(21))
    queue.run_worker(pool="prefork", run_once=True)
    point, pid = job.result(timeout=30)
    print(point.x, pid != os.getpid(), job.status)
"""


def test_a_script_run_as_main_finds_its_queue_in_children(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(guard='if __name__ == "__main__":'))
    env = {"SCRIPT_DB": str(tmp_path / "q.db")}
    # As `python script.py` runs it, and as runpy does (a temporary __main__ module).
    proc = run_py(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", env=env)
    direct = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**cli_env(), **env},
    )
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.split() == ["42", "True", "complete"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "True", "complete"]


def test_an_unguarded_script_gets_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(guard="if True:"))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**cli_env(), "SCRIPT_DB": str(tmp_path / "q.db")},
    )
    assert proc.returncode != 0
    assert "guard the call with" in proc.stderr


def test_cli_prefork_worker_drains_on_sigterm(tmp_path: Path) -> None:
    module = load_app(tmp_path)
    env = cli_env({"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskito", "worker", "--app", f"{module.__name__}:queue", "--pool", "prefork"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        marker = tmp_path / "touched"
        job = module.touch.delay(str(marker))
        quick = module.echo.delay("hi")
        assert quick.result(timeout=60)["value"] == "hi"
        wait_for(lambda: job.status == "running", what="the job to start")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "Pool: prefork" in out
    assert job.refresh().status == "complete"
    child = job.result(timeout=1)
    assert child != worker.pid
    assert marker.read_text() == str(child)
    wait_for(lambda: not alive(child), timeout=10, what="the child to exit")


def test_cli_rejects_an_unknown_pool(tmp_path: Path) -> None:
    module = load_app(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "taskito", "worker", "--app", f"{module.__name__}:queue", "--pool", "fork"],
        cwd=tmp_path,
        env=cli_env({"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--pool" in proc.stderr


def test_two_prefork_workers_on_one_database_run_each_job_once(tmp_path: Path) -> None:
    module = load_app(tmp_path)
    env = cli_env({"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    jobs = [module.echo.delay(i) for i in range(40)]
    app = f"{module.__name__}:queue"
    command = [sys.executable, "-m", "taskito", "worker", "--app", app, "--pool", "prefork"]
    workers = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        results = [j.result(timeout=90) for j in jobs]
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in workers]
    assert codes == [0, 0]
    assert [r["value"] for r in results] == list(range(40))
    assert not {r["pid"] for r in results} & {w.pid for w in workers}
    # Each job ran exactly once: one before_task line per job.
    lines = (tmp_path / "hooks.txt").read_text().splitlines()
    assert sum(line.endswith(" echo") for line in lines) == 40


@pytest.mark.parametrize("after", [0.1, 0.2, 0.3, 0.4])
def test_a_stop_while_the_children_start_is_kept(tmp_path: Path, after: float) -> None:
    """A SIGTERM that arrives while the prefork children are still starting (before the
    engine runs) stops the worker instead of being forgotten."""
    module = load_app(tmp_path)
    env = cli_env({"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    command = [
        sys.executable,
        "-m",
        "taskito",
        "worker",
        "--app",
        f"{module.__name__}:queue",
        "--pool",
        "prefork",
    ]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    # 0 once the handler is installed; killed by the signal if it came before Python did.
    assert proc.wait(30) in (0, -signal.SIGTERM)

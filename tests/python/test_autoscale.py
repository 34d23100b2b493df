"""Autoscaling worker processes, and the scaler endpoint for KEDA."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from faultkit import wait_for

from taskito import Queue
from taskito.autoscale import (
    AutoscaleConfig,
    AutoscaleController,
    ProcessManager,
    ScaleDecision,
    compute_desired_workers,
)
from taskito.dashboard import build_scaler_response
from taskito.scaler import make_scaler_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app_path", ""),
        ("min_workers", -1),
        ("max_workers", 0),
        ("target_utilisation", 0),
        ("target_utilisation", 1),
        ("tolerance", 1),
        ("tolerance", -0.1),
        ("target_queue_depth_per_worker", 0),
        ("poll_interval_sec", 0),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"app_path": "m:q", field: value}
    with pytest.raises(ValueError, match=field):
        AutoscaleConfig(**kwargs)


def test_config_min_above_max() -> None:
    with pytest.raises(ValueError, match="min_workers"):
        AutoscaleConfig("m:q", min_workers=5, max_workers=2)


CFG = AutoscaleConfig("m:q", min_workers=0, max_workers=10, tolerance=0.0)


def test_rule_by_depth_utilisation_and_clamp() -> None:
    d = compute_desired_workers(pending=46, running=0, current_workers=0, config=CFG)
    assert isinstance(d, ScaleDecision) and d.desired_workers == 4  # ceil(46 / 15), from zero
    # 2 workers x 4 threads, 8 running: utilisation 1.0 -> ceil(2 * 1 / 0.75) = 3.
    assert compute_desired_workers(pending=0, running=8, current_workers=2, config=CFG).desired_workers == 3
    # More running than capacity: at least one more worker.
    assert compute_desired_workers(pending=0, running=50, current_workers=9, config=CFG).desired_workers == 10
    assert (
        compute_desired_workers(pending=10_000, running=0, current_workers=1, config=CFG).desired_workers
        == 10
    )
    floor = replace(CFG, min_workers=2)
    assert compute_desired_workers(pending=0, running=0, current_workers=5, config=floor).desired_workers == 2
    tolerant = replace(CFG, tolerance=0.2)
    # 10 -> 11 is a 10 % change: within 20 %, skipped.
    assert (
        compute_desired_workers(
            pending=165, running=0, current_workers=10, config=replace(tolerant, max_workers=20)
        ).desired_workers
        == 10
    )
    assert (
        "tolerance"
        in compute_desired_workers(
            pending=165, running=0, current_workers=10, config=replace(tolerant, max_workers=20)
        ).rationale
    )


class FakeProcesses:
    """Counts spawns and terminations; for the controller's window logic only."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.next = 100

    def reap_dead(self) -> list[int]:
        return []

    def count_live(self) -> int:
        return len(self.pids)

    def live_pids(self) -> list[int]:
        return list(self.pids)

    def spawn_worker(self) -> int:
        self.next += 1
        self.pids.append(self.next)
        return self.next

    def terminate_worker(self, pid: int) -> bool:
        self.pids.remove(pid)
        return True

    def shutdown(self) -> None:
        self.pids.clear()


class Load:
    def __init__(self) -> None:
        self.pending = 0

    def stats(self) -> dict[str, int]:
        return {"pending": self.pending, "running": 0}


def test_controller_windows() -> None:
    now = [0.0]
    load, procs = Load(), FakeProcesses()
    cfg = AutoscaleConfig(
        "m:q", min_workers=1, max_workers=10, tolerance=0, scale_up_window_sec=10, scale_down_window_sec=30
    )
    ctl = AutoscaleController(load, cfg, procs, clock=lambda: now[0])  # type: ignore[arg-type]
    assert ctl.tick().desired_workers == 1 and procs.count_live() == 1
    load.pending = 90  # wants 6, but the last 10 s also said 1
    now[0] = 5
    assert ctl.tick().desired_workers == 1
    now[0] = 16  # the window now holds only recommendations of 6
    assert ctl.tick().desired_workers == 6 and procs.count_live() == 6
    load.pending = 0  # wants 1; scale-down follows the largest of the last 30 s
    now[0] = 20
    assert ctl.tick().desired_workers == 6
    now[0] = 47
    assert ctl.tick().desired_workers == 1 and procs.count_live() == 1


APP = """
import os
from taskito import Queue

queue = Queue(db_path=os.environ["AUTOSCALE_DB"], scheduler_poll_interval_ms=20, workers=2)

@queue.task(name="nap")
def nap(seconds):
    import time
    time.sleep(seconds)
    return os.getpid()
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Queue:
    (tmp_path / "scaleapp.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOSCALE_DB", str(tmp_path / "q.db"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    q = Queue(db_path=str(tmp_path / "q.db"), workers=2)
    q.task(name="nap")(lambda seconds: None)
    return q


def _live_workers(q: Queue) -> int:
    return sum(1 for w in q.workers() if w["status"] == "active")


def test_process_manager_runs_real_workers(app: Queue) -> None:
    pm = ProcessManager("scaleapp:queue", drain_timeout_sec=5)
    assert pm.command()[1:] == ["-m", "taskito", "worker", "--app", "scaleapp:queue", "--drain-timeout", "5"]
    pids = [pm.spawn_worker(), pm.spawn_worker()]
    try:
        assert pm.count_live() == 2 and sorted(pm.live_pids()) == sorted(pids)
        jobs = [app.enqueue("nap", (0.05,)) for _ in range(10)]
        ran_on = {j.result(timeout=30) for j in jobs}
        assert ran_on <= set(pids)
        assert os.getsid(pids[0]) == pids[0]  # its own session
        assert pm.terminate_worker(pids[0]) is True  # drained and exited 0
        assert pm.terminate_worker(12345678) is True  # not ours
        os.kill(pids[1], signal.SIGKILL)
        wait_for(lambda: pm.reap_dead() == [pids[1]], 10, what="the killed worker reaped")
        assert pm.count_live() == 0
    finally:
        pm.kill_all()


def test_controller_scales_real_workers_and_replaces_a_crash(app: Queue) -> None:
    cfg = AutoscaleConfig(
        "scaleapp:queue", min_workers=1, max_workers=3, target_queue_depth_per_worker=5,
        tolerance=0, scale_down_window_sec=0, drain_timeout_sec=5, threads_per_worker=2,
    )  # fmt: skip
    ctl = AutoscaleController(app, cfg)
    try:
        for _ in range(12):
            app.enqueue("nap", (0.5,))
        d = ctl.tick()
        assert (d.pending, d.desired_workers) == (12, 3) and ctl.processes.count_live() == 3
        wait_for(lambda: _live_workers(app) == 3, 30, what="three registered workers")
        victim = ctl.processes.live_pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not _alive(victim, ctl), 10, what="the worker killed")
        ctl.tick()  # reaps it and starts a replacement
        assert victim not in ctl.processes.live_pids() and ctl.processes.count_live() >= 1
        wait_for(lambda: app.stats()["pending"] == 0 and app.stats()["running"] == 0, 60, what="the backlog")
        assert ctl.tick().desired_workers == 1
        wait_for(lambda: ctl.processes.count_live() == 1, 20, what="scaled down to one")
    finally:
        ctl.processes.shutdown()
    assert ctl.processes.count_live() == 0


def _alive(pid: int, ctl: AutoscaleController) -> bool:
    return pid in ctl.processes.live_pids()


def _taskito(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskito", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def test_autoscale_cli_exit_codes(app: Queue) -> None:
    assert _taskito("autoscale").returncode == 2
    bad = _taskito("autoscale", "--app", "scaleapp:queue", "--min-workers", "5", "--max-workers", "2")
    assert bad.returncode == 1 and "min_workers" in bad.stderr
    assert _taskito("autoscale", "--app", "scaleapp:queue", "--tolerance", "lots").returncode == 1


def test_autoscale_cli_runs_and_stops_its_workers(app: Queue) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskito", "autoscale", "--app", "scaleapp:queue", "--min-workers", "1",
         "--max-workers", "2", "--poll-interval", "0.2", "--drain-timeout", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        job = app.enqueue("nap", (0,))
        worker_pid = job.result(timeout=60)
        assert worker_pid != proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_for(lambda: not _pid_alive(worker_pid), 15, what="the worker stopped with the autoscaler")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_build_scaler_response(queue: Queue) -> None:
    for _ in range(3):
        queue.enqueue("t.a", queue="emails")
    queue.enqueue("t.b", queue="reports")
    out = build_scaler_response(queue)
    assert list(out) == [
        "metricName",
        "metricValue",
        "isActive",
        "liveWorkers",
        "totalCapacity",
        "targetQueueDepth",
        "perQueue",
    ]
    shown = ("metricName", "metricValue", "isActive", "liveWorkers", "totalCapacity")
    assert tuple(out[k] for k in shown) == (
        "taskito_queue_depth", 4, True, 0, 0,
    )  # fmt: skip
    assert out["perQueue"] == {
        "emails": {"pending": 3, "running": 0},
        "reports": {"pending": 1, "running": 0},
    }
    one = build_scaler_response(queue, "emails", target_queue_depth=7)
    assert (one["metricName"], one["metricValue"], one["targetQueueDepth"]) == (
        "taskito_queue_depth_emails",
        3,
        7,
    )
    assert set(one["perQueue"]) == {"emails", "reports"}
    idle = build_scaler_response(queue, "nothing-here")
    assert idle["metricValue"] == 0 and idle["isActive"] is False


def test_scaler_response_counts_live_workers(queue: Queue) -> None:
    from conftest import RunningWorker

    w = RunningWorker(queue).start()
    try:
        wait_for(lambda: build_scaler_response(queue)["liveWorkers"] == 1, 10, what="a live worker")
        out = build_scaler_response(queue)
        assert out["totalCapacity"] == 2 and out["workerUtilization"] == 0.0
    finally:
        w.stop()


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            return r.status, json.loads(
                body
            ) if r.headers.get_content_type() == "application/json" else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_scaler_server_routes(queue: Queue) -> None:
    queue.enqueue("t.a", queue="emails")
    server = make_scaler_server(queue, port=0, target_queue_depth=3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert _get(base + "/health") == (200, {"status": "ok"})
        code, body = _get(base + "/api/scaler?queue=emails")
        assert code == 200 and body["metricValue"] == 1 and body["targetQueueDepth"] == 3
        code, text = _get(base + "/metrics")
        assert code == 200 and "taskito_queue_jobs" in text
        assert _get(base + "/admin")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_scaler_command(app: Queue) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.enqueue("nap", (0,))
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskito", "scaler", "--app", "scaleapp:queue", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                code, body = _get(f"http://127.0.0.1:{port}/api/scaler")
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the scaler did not start"
                time.sleep(0.1)
        assert code == 200 and body["metricValue"] == 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_docs_example_runs() -> None:
    example = ROOT / "examples" / "autoscaling.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "desired workers: 3" in done.stdout
    assert (
        textwrap.dedent(example.read_text()).strip() in (ROOT / "docs/operations/autoscaling.md").read_text()
    )


def test_dashboard_serves_the_scaler_response(queue: Queue) -> None:
    pytest.importorskip("starlette")
    from dashboard_support import LiveServer

    from taskito.dashboard import create_app

    queue.enqueue("t.a", queue="emails")
    with LiveServer(create_app(queue)) as server:
        code, body = _get(f"{server.url}/api/scaler?queue=emails")
    assert code == 200 and body == build_scaler_response(queue, "emails")

"""Autoscaling: run between ``min_workers`` and ``max_workers`` worker processes on this
machine, as many as the backlog needs.

``compute_desired_workers`` is the rule (pure, for testing and for other schedulers);
``AutoscaleController`` applies it on every ``tick()`` through a ``ProcessManager``, which
starts ``python -m taskito worker --app A --drain-timeout N`` processes and stops them with
SIGTERM (a worker drains its running jobs) and, past the drain timeout, SIGKILL.
``serve_autoscaler(queue, config)`` (the ``taskito autoscale`` command) runs it until a
signal.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "AutoscaleConfig",
    "AutoscaleController",
    "ProcessManager",
    "ScaleDecision",
    "compute_desired_workers",
    "serve_autoscaler",
]

log = logging.getLogger("taskito.autoscale")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class AutoscaleConfig:
    """How to scale the workers of the app ``app_path`` (``module:attribute``).

    A worker is wanted per ``target_queue_depth_per_worker`` pending jobs, and enough
    workers to keep the busy share of their ``threads_per_worker`` threads at
    ``target_utilisation``. Scaling up follows the smallest recommendation of the last
    ``scale_up_window_sec`` seconds, scaling down the largest of the last
    ``scale_down_window_sec`` (so a short lull does not stop workers); a change of at most
    ``tolerance`` (a fraction of the current count) is skipped."""

    app_path: str
    min_workers: int = 1
    max_workers: int = 10
    target_queue_depth_per_worker: int = 15
    target_utilisation: float = 0.75
    scale_up_window_sec: float = 0
    scale_down_window_sec: float = 300
    tolerance: float = 0.1
    poll_interval_sec: float = 5
    drain_timeout_sec: float = 30
    threads_per_worker: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.app_path, str) or not self.app_path.strip():
            raise ValueError("app_path must be a non-empty module:attribute string")
        lo = _integer("min_workers", self.min_workers)
        hi = _integer("max_workers", self.max_workers)
        if lo < 0:
            raise ValueError(f"min_workers must be >= 0, got {lo}")
        if hi < 1:
            raise ValueError(f"max_workers must be >= 1, got {hi}")
        if lo > hi:
            raise ValueError(f"min_workers ({lo}) must not exceed max_workers ({hi})")
        depth = _integer("target_queue_depth_per_worker", self.target_queue_depth_per_worker)
        if depth < 1:
            raise ValueError(f"target_queue_depth_per_worker must be >= 1, got {depth}")
        util = _number("target_utilisation", self.target_utilisation)
        if not 0 < util < 1:
            raise ValueError(f"target_utilisation must be between 0 and 1 (exclusive), got {util}")
        tol = _number("tolerance", self.tolerance)
        if not 0 <= tol < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tol}")
        if _number("poll_interval_sec", self.poll_interval_sec) <= 0:
            raise ValueError(f"poll_interval_sec must be > 0, got {self.poll_interval_sec}")
        for name in ("scale_up_window_sec", "scale_down_window_sec", "drain_timeout_sec"):
            if _number(name, getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if _integer("threads_per_worker", self.threads_per_worker) < 1:
            raise ValueError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")


@dataclass(frozen=True)
class ScaleDecision:
    """One application of the rule: the inputs, the worker count wanted, and why."""

    pending: int
    running: int
    current_workers: int
    desired_workers: int
    rationale: str


def compute_desired_workers(
    *, pending: int, running: int, current_workers: int, config: AutoscaleConfig
) -> ScaleDecision:
    """``max(ceil(pending / depth), ceil(current * utilisation / target))`` clamped to
    ``[min_workers, max_workers]``, where utilisation is ``running / (current * threads)``;
    one more worker when more jobs run than the workers have threads; no change within the
    tolerance."""
    pending, running, current = max(0, int(pending)), max(0, int(running)), max(0, int(current_workers))
    by_depth = math.ceil(pending / config.target_queue_depth_per_worker)
    capacity = current * config.threads_per_worker
    utilisation = running / capacity if capacity else 0.0
    by_util = math.ceil(current * utilisation / config.target_utilisation) if capacity else 0
    desired = max(by_depth, by_util)
    reasons = [f"depth wants {by_depth}", f"utilisation {utilisation:.2f} wants {by_util}"]
    if capacity and running > capacity:
        desired = max(desired, current + 1)
        reasons.append(f"{running} running > capacity {capacity}: one more")
    if current and desired != current and abs(desired - current) / current <= config.tolerance:
        reasons.append(f"{desired} is within tolerance {config.tolerance:g} of {current}: unchanged")
        desired = current
    clamped = min(config.max_workers, max(config.min_workers, desired))
    if clamped != desired:
        reasons.append(f"clamped to [{config.min_workers}, {config.max_workers}]")
    return ScaleDecision(pending, running, current, clamped, "; ".join(reasons))


class ProcessManager:
    """Worker processes of one app, started and stopped from this process."""

    def __init__(
        self, app_path: str, drain_timeout_sec: float = 30, python_executable: str | None = None
    ) -> None:
        self.app_path = app_path
        self.drain_timeout_sec = float(drain_timeout_sec)
        self.python_executable = python_executable or sys.executable
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        return [
            self.python_executable,
            "-m",
            "taskito",
            "worker",
            "--app",
            self.app_path,
            "--drain-timeout",
            f"{self.drain_timeout_sec:g}",
        ]

    def spawn_worker(self) -> int:
        """Starts one worker process in its own session; returns its pid."""
        proc = subprocess.Popen(self.command(), start_new_session=True)
        with self._lock:
            self._procs[proc.pid] = proc
        log.info("started worker process %d", proc.pid)
        return proc.pid

    def terminate_worker(self, pid: int) -> bool:
        """SIGTERM (the worker drains), then SIGKILL after the drain timeout plus a grace
        period. True if it exited cleanly, or ``pid`` is not one of ours."""
        with self._lock:
            proc = self._procs.pop(pid, None)
        if proc is None:
            return True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(self.drain_timeout_sec + 5)
        except subprocess.TimeoutExpired:
            log.warning("worker process %d did not stop within its drain timeout: killed", pid)
            proc.kill()
            proc.wait()
            return False
        return code == 0

    def reap_dead(self) -> list[int]:
        """Forgets the processes that exited; returns their pids."""
        with self._lock:
            dead = [pid for pid, p in self._procs.items() if p.poll() is not None]
            for pid in dead:
                code = self._procs.pop(pid).returncode
                log.warning("worker process %d exited with code %s", pid, code)
        return dead

    def live_pids(self) -> list[int]:
        with self._lock:
            return [pid for pid, p in self._procs.items() if p.poll() is None]

    def count_live(self) -> int:
        return len(self.live_pids())

    def shutdown(self) -> None:
        """Stops every worker: all are signalled at once, then each is waited for."""
        with self._lock:
            procs = dict(self._procs)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_timeout_sec + 5
        for pid, p in procs.items():
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            with self._lock:
                self._procs.pop(pid, None)

    def kill_all(self) -> None:
        """SIGKILL to every worker, without draining."""
        with self._lock:
            procs, self._procs = dict(self._procs), {}
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()


class AutoscaleController:
    """Applies the rule on every ``tick()``: replaces crashed workers, then scales."""

    def __init__(
        self,
        queue: Any,
        cfg: AutoscaleConfig,
        process_manager: ProcessManager | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.config = cfg
        self.processes = process_manager or ProcessManager(cfg.app_path, cfg.drain_timeout_sec)
        self._clock = clock
        self._history: deque[tuple[float, int]] = deque()
        self._target = 0
        self._stop = threading.Event()

    def _load(self) -> tuple[int, int]:
        stats = self.queue.stats()
        return int(stats.get("pending", 0)), int(stats.get("running", 0))

    def _windowed(self, now: float, window: float, pick: Callable[..., int]) -> int:
        return pick(d for t, d in self._history if t >= now - window)

    def tick(self) -> ScaleDecision:
        """One round: reap and replace crashed workers, measure, decide, scale."""
        for _ in self.processes.reap_dead():
            pass
        while self.processes.count_live() < self._target:
            self.processes.spawn_worker()
        current = self.processes.count_live()
        pending, running = self._load()
        decision = compute_desired_workers(
            pending=pending, running=running, current_workers=current, config=self.config
        )
        now = self._clock()
        self._history.append((now, decision.desired_workers))
        horizon = max(self.config.scale_up_window_sec, self.config.scale_down_window_sec)
        while self._history and self._history[0][0] < now - horizon:
            self._history.popleft()
        target = current
        if decision.desired_workers > current:
            target = max(current, self._windowed(now, self.config.scale_up_window_sec, min))
        elif decision.desired_workers < current:
            target = min(current, self._windowed(now, self.config.scale_down_window_sec, max))
        for _ in range(target - current):
            self.processes.spawn_worker()
        if target < current:
            # The newest workers go first: the oldest have warmed up.
            for pid in sorted(self.processes.live_pids(), reverse=True)[: current - target]:
                self.processes.terminate_worker(pid)
        self._target = target
        if target != current:
            log.info("scaled %d -> %d workers (%s)", current, target, decision.rationale)
        return ScaleDecision(pending, running, current, target, decision.rationale)

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        """Ticks every ``poll_interval_sec`` until ``stop()``; then stops every worker."""
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("autoscaler tick failed")
                self._stop.wait(self.config.poll_interval_sec)
        finally:
            self.processes.shutdown()


def serve_autoscaler(q: Any, cfg: AutoscaleConfig) -> None:
    """Runs an ``AutoscaleController`` until SIGINT or SIGTERM, then stops its workers."""
    controller = AutoscaleController(q, cfg)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: controller.stop())
    try:
        log.info(
            "autoscaling %s between %d and %d workers (pid %d)",
            cfg.app_path,
            cfg.min_workers,
            cfg.max_workers,
            os.getpid(),
        )
        controller.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

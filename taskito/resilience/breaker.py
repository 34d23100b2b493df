"""``circuit_breaker={...}``: a task's breaker, its state one row of the shared settings
store so that every worker process on the database opens, probes and closes it together.

Closed: every failed attempt is counted; ``threshold`` failures within ``window`` seconds
open it. Open: its jobs are put off by ``POSTPONE_MS`` (never dropped, no retry used) until
``cooldown`` seconds have passed; then it is half-open and lets ``half_open_probes`` runs
through. It closes once ``half_open_success_rate`` of the probes succeeded, and opens again
as soon as that rate can no longer be reached."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from taskito import _settings as settings

#: How long a job whose breaker is open waits before it is tried again.
POSTPONE_MS = 5000
#: Compare-and-set attempts before a contended update gives up (the next run tries again).
_MAX_ATTEMPTS = 32
_DEFAULTS = {
    "threshold": 5,
    "window": 60.0,
    "cooldown": 300.0,
    "half_open_probes": 5,
    "half_open_success_rate": 0.8,
}
KEY_PREFIX = "circuit_breaker:"


def _now_ms() -> int:
    return int(time.time() * 1000)


class CircuitBreaker:
    """One task's breaker configuration, and the reads and writes of its shared state."""

    __slots__ = ("task_name", "key", "threshold", "window_ms", "cooldown_ms", "probes", "success_rate")

    def __init__(self, task_name: str, config: Any) -> None:
        if not isinstance(config, dict):
            raise ValueError(f"circuit_breaker must be a dict, got {config!r}")
        unknown = sorted(set(config) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"circuit_breaker has unknown keys {unknown}; allowed: {sorted(_DEFAULTS)}")
        merged = {**_DEFAULTS, **config}
        self.task_name = task_name
        self.key = KEY_PREFIX + task_name
        self.threshold = settings.check_int("circuit_breaker threshold", merged["threshold"], minimum=1)
        self.window_ms = int(
            settings.check_seconds("circuit_breaker window", merged["window"], positive=True) * 1000
        )
        self.cooldown_ms = int(settings.check_seconds("circuit_breaker cooldown", merged["cooldown"]) * 1000)
        self.probes = settings.check_int(
            "circuit_breaker half_open_probes", merged["half_open_probes"], minimum=1
        )
        rate = merged["half_open_success_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
            raise ValueError(f"circuit_breaker half_open_success_rate must be in (0, 1], got {rate!r}")
        self.success_rate = float(rate)

    # -- state ------------------------------------------------------------------------

    def _fresh(self) -> dict[str, Any]:
        return {
            "state": "closed",
            "failures": [],
            "opened_at": None,
            "last_failure_at": None,
            "ok": 0,
            "bad": 0,
            "started": 0,
        }

    def _load(self, core: Any) -> tuple[dict[str, Any], int]:
        stored = core.setting_get(self.key)
        if stored is None:
            return self._fresh(), 0
        try:
            state = json.loads(stored[0])
            if state.get("state") not in ("closed", "open", "half_open"):
                raise ValueError(state.get("state"))
            state["failures"] = [int(t) for t in state.get("failures", [])][-self.threshold :]
            for k in ("ok", "bad", "started"):
                state[k] = int(state.get(k, 0))
        except (ValueError, TypeError, AttributeError):
            # A row no process of this version writes: start over closed.
            return self._fresh(), stored[1]
        return state, stored[1]

    def _save(self, core: Any, state: dict[str, Any], version: int) -> bool:
        return core.setting_put(self.key, json.dumps(state), version) is not None

    def _needed(self) -> int:
        return math.ceil(self.success_rate * self.probes - 1e-9)

    # -- what workers call ----------------------------------------------------------------

    def admit(self, core: Any) -> bool:
        """True if a job may run now (closed, or a half-open probe slot is free)."""
        for _ in range(_MAX_ATTEMPTS):
            state, version = self._load(core)
            if state["state"] == "closed":
                return True
            now = _now_ms()
            if state["state"] == "open":
                if now - (state["opened_at"] or 0) < self.cooldown_ms:
                    return False
                state.update(state="half_open", ok=0, bad=0, started=0)
            if state["started"] >= self.probes:
                return False
            state["started"] += 1
            if self._save(core, state, version):
                return True
        return False

    def record(self, core: Any, succeeded: bool) -> None:
        """Counts one finished run."""
        for _ in range(_MAX_ATTEMPTS):
            state, version = self._load(core)
            now = _now_ms()
            if state["state"] == "closed":
                if succeeded:
                    return
                failures = [t for t in state["failures"] if now - t < self.window_ms] + [now]
                state.update(failures=failures[-self.threshold :], last_failure_at=now)
                if len(failures) >= self.threshold:
                    state.update(state="open", opened_at=now)
            elif state["state"] == "half_open":
                state["ok" if succeeded else "bad"] += 1
                if not succeeded:
                    state["last_failure_at"] = now
                if state["ok"] >= self._needed():
                    state = self._fresh()
                    state["last_failure_at"] = None
                elif state["ok"] + (self.probes - state["ok"] - state["bad"]) < self._needed():
                    state.update(state="open", opened_at=now, ok=0, bad=0, started=0)
            else:
                # Open: a run admitted before it opened finished; count its failure only.
                if succeeded:
                    return
                state["last_failure_at"] = now
            if self._save(core, state, version):
                return

    def info(self, core: Any) -> dict[str, Any]:
        """The breaker as ``Queue.circuit_breakers()`` lists it."""
        state, _ = self._load(core)
        now = _now_ms()
        return {
            "task_name": self.task_name,
            "state": state["state"],
            "failure_count": len([t for t in state["failures"] if now - t < self.window_ms])
            if state["state"] == "closed"
            else max(len(state["failures"]), state["bad"]),
            "last_failure_at": state["last_failure_at"],
            "opened_at": state["opened_at"],
            "threshold": self.threshold,
            "window_ms": self.window_ms,
            "cooldown_ms": self.cooldown_ms,
        }

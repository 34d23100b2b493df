"""How long taskito keeps stored rows, and the calls that archive and purge them.

``Retention`` holds one window per kind of row, in seconds (None keeps that kind forever). A
running worker sweeps rows past their windows (at most every 30 s). Which windows apply:

- ``Queue(retention=Retention(...))``: those windows (``Retention()`` keeps everything);
- else ``Queue(result_ttl=N)``: N seconds for every kind;
- else the defaults below, with a one-time WARNING at the worker's first sweep.

An automatic sweep does not cascade: a job's errors and logs go by their own windows. The
explicit ``purge_completed``/``purge_dead`` calls are separate (see ``Queue``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Retention", "RetentionPreview", "EffectiveRetention", "DEFAULT_RETENTION"]

_DAY = 24 * 3600
_KINDS = ("archived_jobs", "dead_letter", "task_logs", "task_metrics", "job_errors")


def _window(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"retention window {name} must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"retention window {name} must be a non-negative number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Retention:
    """Windows in seconds; None keeps that kind of row forever. ``task_metrics`` is
    accepted for compatibility: taskito keeps no per-task metric rows to sweep."""

    archived_jobs: float | None = None
    dead_letter: float | None = None
    task_logs: float | None = None
    task_metrics: float | None = None
    job_errors: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _window(f.name, getattr(self, f.name)))

    @property
    def enabled(self) -> bool:
        return any(getattr(self, k) is not None for k in _KINDS)

    def windows_ms(self) -> dict[str, int | None]:
        return {k: None if getattr(self, k) is None else _ms(getattr(self, k)) for k in _KINDS}

    def _engine(self, defaulted: bool) -> tuple:
        return (*(getattr(self, k) for k in _KINDS), defaulted)


def _ms(seconds: float) -> int:
    return int(min(seconds * 1000, 2**63 - 1))


DEFAULT_RETENTION = Retention(
    archived_jobs=7 * _DAY,
    dead_letter=30 * _DAY,
    task_logs=3 * _DAY,
    task_metrics=7 * _DAY,
    job_errors=7 * _DAY,
)


@dataclass(frozen=True)
class RetentionPreview:
    """What a sweep would delete now (``dry_run_retention``). Windows in ms."""

    enabled: bool
    defaulted: bool
    namespace: str | None
    reference_time: int
    windows: dict[str, int | None]
    counts: dict[str, int]
    total: int


@dataclass(frozen=True)
class EffectiveRetention:
    """The windows (ms) the last sweep of any worker used (``effective_retention``)."""

    enabled: bool
    defaulted: bool
    namespace: str | None
    reported_at: int
    windows: dict[str, int | None]


def resolve(retention: Retention | None, result_ttl: float | None) -> tuple[Retention, bool]:
    """The windows a queue's workers apply, and whether they are the defaults."""
    if retention is not None:
        if not isinstance(retention, Retention):
            raise ValueError(f"retention must be a taskito.Retention, got {type(retention).__name__}")
        return retention, False
    if result_ttl is not None:
        return Retention(**dict.fromkeys(_KINDS, result_ttl)), False
    return DEFAULT_RETENTION, True

"""Settings from the environment and the checks every option goes through.

Each setting is resolved in layers; the first layer that gives a value wins:

1. an explicit argument to the call that uses it: ``run_worker(workers=...)``, or a CLI flag
   such as ``--workers`` (the CLI passes its flags to ``run_worker``);
2. the value given to ``Queue(...)``;
3. the ``TASKITO_*`` environment variable;
4. the built-in default.

An environment variable is read when the setting is needed (``Queue(...)`` for the database,
threads, drain timeout, poll interval and log level; ``run_worker`` for the queues). A
malformed value raises :class:`EnvError`, whose message names the variable.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, TypeVar

T = TypeVar("T")

DEFAULT_DB_PATH = ".taskito/taskito.db"

ENV_VARS = {
    "TASKITO_DB_PATH": "database file (default .taskito/taskito.db)",
    "TASKITO_DB_URL": "postgresql://user:password@host:5432/db (used when TASKITO_DB_PATH is unset)",
    "TASKITO_PG_NOTIFY": "0 turns PostgreSQL LISTEN/NOTIFY wake-ups off (PgBouncer transaction mode)",
    "TASKITO_WORKERS": "worker threads, 0 = CPU count (default 0)",
    "TASKITO_QUEUES": "comma-separated queues to serve (default: all)",
    "TASKITO_POLL_INTERVAL_MS": "scheduler poll interval in ms (default 50)",
    "TASKITO_DRAIN_TIMEOUT": "seconds to wait for running jobs at shutdown (default 30)",
    "TASKITO_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR (default INFO in the CLI)",
}


class EnvError(ValueError):
    """A ``TASKITO_*`` environment variable holds a value that cannot be used."""


def _env(name: str, parse: Callable[[str], T]) -> T | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise EnvError(f"environment variable {name}={raw!r} is invalid: {exc}") from None


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer >= {minimum}") from None
        if value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds >= 0") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError("expected a finite number of seconds >= 0")
    return value


def _queues(raw: str) -> list[str]:
    names = [q.strip() for q in raw.split(",")]
    if not all(names):
        raise ValueError("expected comma-separated queue names, none of them empty")
    return names


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level(raw: str) -> int:
    if raw.isdigit():
        return int(raw)
    if raw.upper() not in _LEVELS:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return int(getattr(logging, raw.upper()))


def env_db_path() -> str | None:
    return _env("TASKITO_DB_PATH", str)


def env_workers() -> int | None:
    return _env("TASKITO_WORKERS", _int_at_least(0))


def env_queues() -> list[str] | None:
    return _env("TASKITO_QUEUES", _queues)


def env_poll_interval_ms() -> int | None:
    return _env("TASKITO_POLL_INTERVAL_MS", _int_at_least(1))


def env_drain_timeout() -> float | None:
    return _env("TASKITO_DRAIN_TIMEOUT", _seconds)


def env_log_level() -> int | None:
    return _env("TASKITO_LOG_LEVEL", _level)


def check_env() -> None:
    """Reads every ``TASKITO_*`` variable once, raising :class:`EnvError` for the first
    malformed one."""
    for read in (
        env_db_path,
        env_workers,
        env_queues,
        env_poll_interval_ms,
        env_drain_timeout,
        env_log_level,
    ):
        read()


def first(*values: T | None, default: T) -> T:
    """The first value that is not None."""
    for v in values:
        if v is not None:
            return v
    return default


# Option checks: each raises ValueError naming the option.


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_seconds(name: str, value: object, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_queue_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_queues(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [q.strip() for q in value.split(",")]
    names = list(value)  # type: ignore[call-overload]
    if not names:
        raise ValueError("queues must name at least one queue (or be None for all)")
    return [check_queue_name("queues", q) for q in names]

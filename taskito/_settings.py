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
    "TASKITO_SECRET_KEY": "signs every payload and result with HMAC-SHA256 (default: unsigned)",
}

# Bounds of the numbers options take. Integers are stored as signed 64-bit; a worker runs at
# most MAX_WORKERS threads; the scheduler polls at least hourly and a worker heartbeats at
# least daily (slower is indistinguishable from a dead worker). Durations past any clock
# (timeouts, waits, retention) are honoured as "forever": the engine saturates them.
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
MAX_WORKERS = 4096
MAX_POLL_INTERVAL_MS = 3_600_000
MAX_HEARTBEAT_INTERVAL = 86_400.0


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


def _int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer from {minimum} to {maximum}") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"expected an integer from {minimum} to {maximum}")
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
    return _env("TASKITO_WORKERS", _int_between(0, MAX_WORKERS))


def env_queues() -> list[str] | None:
    return _env("TASKITO_QUEUES", _queues)


def env_poll_interval_ms() -> int | None:
    return _env("TASKITO_POLL_INTERVAL_MS", _int_between(1, MAX_POLL_INTERVAL_MS))


def env_drain_timeout() -> float | None:
    return _env("TASKITO_DRAIN_TIMEOUT", _seconds)


def env_log_level() -> int | None:
    return _env("TASKITO_LOG_LEVEL", _level)


MIN_SECRET_KEY_BYTES = 32


def env_secret_key() -> list[str] | None:
    # The variable's text is the key, or a comma-separated list of keys (the first signs,
    # any verifies). Its value never appears in an error message.
    raw = os.environ.get("TASKITO_SECRET_KEY")
    if not raw:
        return None
    keys = [k.strip() for k in raw.split(",")] if "," in raw else [raw]
    for i, key in enumerate(keys):
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            where = "" if len(keys) == 1 else f" (key {i + 1} of {len(keys)})"
            raise EnvError(
                f"environment variable TASKITO_SECRET_KEY is invalid{where}: expected at least "
                f"{MIN_SECRET_KEY_BYTES} bytes, got {len(key.encode())}"
            )
    return keys


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
        env_secret_key,
    ):
        read()


def first(*values: T | None, default: T) -> T:
    """The first value that is not None."""
    for v in values:
        if v is not None:
            return v
    return default


# Option checks: each raises ValueError naming the option.


def check_int(name: str, value: object, minimum: int | None = None, maximum: int = I64_MAX) -> int:
    """An int (not a bool) within ``[minimum, maximum]``; the defaults are the signed 64-bit
    range the database stores."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if value < I64_MIN:
        raise ValueError(f"{name} must be >= {I64_MIN}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_seconds(name: str, value: object, positive: bool = False, maximum: float | None = None) -> float:
    """A finite number of seconds (not a bool), >= 0 (> 0 with ``positive``). Values too
    large for any clock pass unless ``maximum`` is given: the engine saturates them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int past float's range: larger than any clock, but finite
        v = 1.7976931348623157e308 if value > 0 else -1.7976931348623157e308  # type: ignore[operator]
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be at most {maximum:g} seconds, got {value!r}")
    return v


def check_file_mode(name: str, value: object) -> int:
    """Permission bits for a new database file: an int from 0o600 to 0o777 that lets the
    owner read and write (the queue cannot work otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer such as 0o600, got {value!r}")
    if not 0 <= value <= 0o777:
        raise ValueError(f"{name} must be permission bits between 0o000 and 0o777, got {value!r}")
    if value & 0o600 != 0o600:
        raise ValueError(f"{name} must let the owner read and write (0o600 bits), got {oct(value)}")
    return value


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

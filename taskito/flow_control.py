"""Task options that shape when jobs run or whether they are stored: ``rate_limit``,
``max_concurrent`` and ``idempotent`` (task options), and ``max_pending`` (a ``Queue``
option). The engine enforces them in storage; this module checks and translates them."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from taskito import _settings as settings

if TYPE_CHECKING:
    from taskito._taskito import QueueCore
    from taskito.task import TaskWrapper

_PERIODS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")


def parse_rate_limit(value: str) -> tuple[int, int]:
    """``"N/s"``, ``"N/m"`` or ``"N/h"`` as ``(N, period_ms)``; ``ValueError`` otherwise."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f'invalid rate_limit {value!r}: expected "N/s", "N/m" or "N/h" with N >= 1 (e.g. "10/m")'
        )
    return int(match.group(1)), _PERIODS_MS[match.group(2)]


def check_max_concurrent(value: Any) -> int | None:
    if value is None:
        return None
    return settings.check_int("max_concurrent", value, minimum=1)


def check_max_pending(value: Any) -> dict[str, int]:
    """``{"queue": N}`` with N >= 0."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f'max_pending must be a dict like {{"default": 1000}}, got {value!r}')
    out: dict[str, int] = {}
    for queue, n in value.items():
        settings.check_queue_name("max_pending", queue)
        out[queue] = settings.check_int(f"max_pending[{queue!r}]", n, minimum=0)
    return out


def idempotency_key(task_name: str, payload: bytes) -> str:
    """The unique key of an idempotent call: a 128-bit BLAKE2b digest of the task name and
    its serialized arguments, so equal calls map to one key in every process. Short on
    purpose: the key sits in a unique index that every claim and completion updates."""
    digest = hashlib.blake2b(task_name.encode() + b"\0" + payload, digest_size=16).hexdigest()
    return f"idem:{digest}"


def is_idempotent(task: TaskWrapper | None, override: bool | None) -> bool:
    """Whether a call derives its unique key: ``override`` if given, else the task's option."""
    if override is not None:
        if not isinstance(override, bool):
            raise ValueError(f"idempotent must be True, False or None, got {override!r}")
        return override
    return task is not None and task.idempotent


def check_unique_keys(unique_keys: list[str | None], count: int) -> list[str | None]:
    keys = list(unique_keys)
    if len(keys) != count:
        raise ValueError("unique_keys must be as long as args_list")
    for k in keys:
        if k is not None and (not isinstance(k, str) or not k):
            raise ValueError(f"unique_keys entries must be non-empty strings or None, got {k!r}")
    return keys


def unique_keys_for(
    task: TaskWrapper | None,
    task_name: str,
    payloads: list[bytes],
    unique_keys: list[str | None] | None,
    idempotent: bool | None,
    plan: Any = None,
) -> list[str | None] | None:
    """The key of each item of a batch: the given one, else (for an idempotent call) the
    derived one (by ``plan``, from the arguments before its codecs), else None."""
    if not is_idempotent(task, idempotent):
        return unique_keys
    given = unique_keys or [None] * len(payloads)
    derive = plan.idempotency_key if plan is not None else idempotency_key
    return [k if k is not None else derive(task_name, p) for k, p in zip(given, payloads)]


def register_limits(core: QueueCore, tasks: dict[str, TaskWrapper]) -> None:
    """Tells the engine the limits of this process's tasks (called as a worker starts)."""
    limited: list[tuple[str, int | None, int | None, int | None]] = []
    unlimited: list[str] = []
    for name, task in tasks.items():
        rate = task.rate_limit
        count, period = parse_rate_limit(rate) if rate is not None else (None, None)
        if count is None and task.max_concurrent is None:
            unlimited.append(name)
        else:
            limited.append((name, count, period, task.max_concurrent))
    core.register_task_limits(limited, unlimited)

"""Payloads are pickled on the Python side; the engine only moves bytes."""

from __future__ import annotations

import pickle
from typing import Any

from taskito.exceptions import SerializationError

PROTOCOL = 5


def dump_call(task_name: str, args: tuple, kwargs: dict) -> bytes:
    """Pickles a call's arguments, or raises SerializationError naming the task."""
    try:
        return pickle.dumps((tuple(args), dict(kwargs)), protocol=PROTOCOL)
    except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError...
        raise SerializationError(
            f"cannot serialize the arguments of task {task_name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def load_call(payload: bytes) -> tuple[tuple, dict]:
    args, kwargs = pickle.loads(payload)
    return args, kwargs


def dump_result(value: Any) -> bytes:
    return pickle.dumps(value, protocol=PROTOCOL)


def load_result(data: bytes | None) -> Any:
    return None if data is None else pickle.loads(data)

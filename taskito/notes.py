"""Job notes: a small JSON dict set at enqueue (``notes=``) and read back as
``JobResult.notes``. Checked here, before anything is stored, against the limits below."""

from __future__ import annotations

import json
import math
from typing import Any

from taskito.exceptions import NotesValidationError

__all__ = [
    "MAX_NOTE_FIELDS",
    "MAX_NOTE_KEY_LENGTH",
    "MAX_NOTE_STRING_LENGTH",
    "MAX_NOTE_DEPTH",
    "MAX_NOTES_BYTES",
    "MAX_NOTE_VALUE_LENGTH",
    "MAX_NOTE_BYTES",
    "validate_notes",
    "encode_notes",
    "decode_notes",
]

MAX_NOTE_FIELDS = 15
"""Most top-level keys."""
MAX_NOTE_KEY_LENGTH = 64
"""Longest key, in characters."""
MAX_NOTE_STRING_LENGTH = 500
"""Longest string value, in characters."""
MAX_NOTE_DEPTH = 3
"""Deepest nesting: the notes dict itself is depth 1."""
MAX_NOTES_BYTES = 4096
"""Largest encoded size, in bytes of JSON."""
# The names taskito 0.22 gives the same two limits.
MAX_NOTE_VALUE_LENGTH = MAX_NOTE_STRING_LENGTH
MAX_NOTE_BYTES = MAX_NOTES_BYTES


def _check(value: Any, path: str, depth: int) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotesValidationError(f"notes value at {path} must be a finite number, got {value!r}")
        return
    if isinstance(value, str):
        if len(value) > MAX_NOTE_STRING_LENGTH:
            raise NotesValidationError(
                f"notes value at {path} is {len(value)} characters long; "
                f"the limit is {MAX_NOTE_STRING_LENGTH}"
            )
        return
    if isinstance(value, (list, dict)):
        if depth + 1 > MAX_NOTE_DEPTH:
            raise NotesValidationError(
                f"notes nest too deep at {path}: the limit is a depth of {MAX_NOTE_DEPTH}"
            )
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, f"{path}[{i}]", depth + 1)
        else:
            _check_dict(value, path, depth + 1)
        return
    raise NotesValidationError(
        f"notes value at {path} has type {type(value).__name__}; "
        "allowed: str, int, float, bool, None, list, dict"
    )


def _check_dict(d: dict, path: str, depth: int) -> None:
    for key, value in d.items():
        if not isinstance(key, str):
            raise NotesValidationError(f"notes key {key!r} at {path or 'top level'} must be a str")
        if len(key) > MAX_NOTE_KEY_LENGTH:
            raise NotesValidationError(
                f"notes key {key[:20]!r}... is {len(key)} characters long; the limit is {MAX_NOTE_KEY_LENGTH}"
            )
        _check(value, f"{path}.{key}" if path else key, depth)


def validate_notes(notes: Any) -> dict[str, Any]:
    """Checks ``notes`` against every limit; returns it, or raises
    ``NotesValidationError`` naming the key or the limit broken."""
    if not isinstance(notes, dict):
        raise NotesValidationError(f"notes must be a dict, got {type(notes).__name__}")
    if len(notes) > MAX_NOTE_FIELDS:
        raise NotesValidationError(
            f"notes have {len(notes)} top-level keys; the limit is {MAX_NOTE_FIELDS} (MAX_NOTE_FIELDS)"
        )
    _check_dict(notes, "", 1)
    return notes


def encode_notes(notes: Any) -> str | None:
    """Validated JSON text of ``notes`` (None stays None)."""
    if notes is None:
        return None
    validate_notes(notes)
    text = json.dumps(notes, separators=(",", ":"), allow_nan=False)
    size = len(text.encode())
    if size > MAX_NOTES_BYTES:
        raise NotesValidationError(f"notes are {size} bytes of JSON; the limit is {MAX_NOTES_BYTES}")
    return text


def decode_notes(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)

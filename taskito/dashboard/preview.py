"""How the dashboard shows a job's arguments and result without trusting the database.

With a ``secret_key`` the bytes are verified first (a signature that fails shows as
refused) and then decoded with the task's own plan. Without one, nothing stored is
unpickled: the page shows the size, the format and a preview of the formats that decode
safely (JSON, msgpack). Pickles are decoded only when the operator opted in
(``decode_pickles``), which lets whoever can write the database run code in the dashboard.
Every preview is cut before it is formatted, so a huge value costs no more than a small one.
"""

from __future__ import annotations

import json
import reprlib
from typing import TYPE_CHECKING, Any

from taskito.exceptions import CryptoError
from taskito.serializers import (
    TAG_CBOR,
    TAG_CLOUDPICKLE,
    TAG_MSGPACK,
    TAG_PICKLE,
    JsonSerializer,
    SmartSerializer,
)

if TYPE_CHECKING:
    from taskito.app import Queue

# Longest preview shown; the rest is cut with a note.
PREVIEW_CHARS = 2000
# Bytes past this are not decoded for a preview at all (only their size is shown).
PREVIEW_MAX_BYTES = 1024 * 1024
# Longest error or traceback text shown.
ERROR_CHARS = 8000

_REPR = reprlib.Repr()
_REPR.maxlevel = 6
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 50
_REPR.maxstring = 500
_REPR.maxlong = 100
_REPR.maxother = 200


def bounded_repr(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A repr that never walks or builds more than a bounded part of ``value``."""
    try:
        text = _REPR.repr(value)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}>"
    return cut(text, limit)


def cut(text: str, limit: int) -> str:
    if len(text) > limit:
        return f"{text[:limit]}… ({len(text) - limit} more characters)"
    return text


def _format_of(serializer: Any, data: bytes) -> tuple[str, bool]:
    """(format name, whether it decodes without running code) of serializer output."""
    if isinstance(serializer, JsonSerializer):
        return "json", True
    name = type(serializer).__name__
    if name == "MsgPackSerializer":
        return "msgpack", True
    if type(serializer) is not SmartSerializer:
        return name, False
    tag = data[0] if data else None
    if tag == TAG_PICKLE:
        return "pickle", False
    if tag == TAG_CLOUDPICKLE:
        return "cloudpickle", False
    if tag == TAG_MSGPACK:
        return "msgpack", True
    if tag == TAG_CBOR:
        return "cbor", False
    return "unknown", False


def _safe_decode(fmt: str, serializer: Any, data: bytes) -> Any:
    if fmt == "json":
        return json.loads(data)
    import msgpack

    body = data[1:] if type(serializer) is SmartSerializer else data
    return msgpack.unpackb(body, raw=False, strict_map_key=False, max_buffer_size=PREVIEW_MAX_BYTES)


class Previewer:
    """Turns a job's stored bytes into what its page shows."""

    def __init__(self, queue: Queue, decode_pickles: bool) -> None:
        self.queue = queue
        self.signed = queue._payloads.secret is not None
        self.decode_pickles = decode_pickles

    def call(self, task_name: str, payload: bytes) -> tuple[str, str | None]:
        """``(args, kwargs)`` as text for a job's stored arguments."""
        plan = self.queue._plan_for(task_name)
        if self.signed or self.decode_pickles:
            try:
                args, kwargs = plan.load_call(payload, task_name)
            except CryptoError as exc:
                return f"<refused: CryptoError: {exc}>", None
            except Exception as exc:
                return f"<cannot decode: {type(exc).__name__}>", None
            return bounded_repr(args), bounded_repr(kwargs)
        try:
            plain = plan.unwrap_call(payload, task_name)
        except Exception as exc:
            return f"<cannot decode: {type(exc).__name__}: {cut(str(exc), 200)}>", None
        shown = self._preview(plan.serializer, plain, len(payload))
        if isinstance(shown, str):
            return shown, None
        try:
            args, kwargs = shown
        except (TypeError, ValueError):
            return bounded_repr(shown), None
        return bounded_repr(args), bounded_repr(kwargs)

    def result(self, job_id: str, data: bytes | None) -> str:
        if data is None:
            return "None"
        if self.signed or self.decode_pickles:
            try:
                return bounded_repr(self.queue._load_result(job_id, data))
            except CryptoError as exc:
                return f"<refused: CryptoError: {exc}>"
            except Exception as exc:
                return f"<cannot decode: {type(exc).__name__}>"
        plan = self.queue._payloads.queue_plan
        try:
            plain = plan.unwrap_result(data, job_id)
        except Exception as exc:
            return f"<cannot decode: {type(exc).__name__}: {cut(str(exc), 200)}>"
        shown = self._preview(plan.serializer, plain, len(data))
        return shown if isinstance(shown, str) else bounded_repr(shown)

    def _preview(self, serializer: Any, plain: bytes, stored: int) -> Any:
        fmt, safe = _format_of(serializer, plain)
        size = f"{stored} bytes stored"
        if not safe:
            return (
                f"<{fmt}, {size}: not decoded (the dashboard decodes pickles only when started "
                f"with --decode-pickles, which lets whoever can write the database run code here)>"
            )
        if len(plain) > PREVIEW_MAX_BYTES:
            return f"<{fmt}, {size}: too large to preview>"
        try:
            return _safe_decode(fmt, serializer, plain)
        except Exception as exc:
            return f"<{fmt}, {size}: cannot decode: {type(exc).__name__}>"

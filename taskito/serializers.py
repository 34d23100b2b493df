"""Serializers: how a call's ``(args, kwargs)`` and a task's return value become bytes.

A serializer is any object with ``dumps(obj) -> bytes`` and ``loads(data) -> Any``
(:class:`Serializer`). ``Queue(serializer=...)`` sets one for every task of a queue and
``@queue.task(serializer=...)`` one for a single task; ``None`` means :class:`SmartSerializer`,
the default.

The default's first byte says how the rest is encoded:

- ``0x80``: a pickle stream (that byte is pickle's own protocol marker), written by
  ``pickle`` protocol 5, or by ``cloudpickle`` for what ``pickle`` cannot carry by reference
  (lambdas, local functions and classes, anything defined in ``__main__``). Databases written
  before serializers were configurable hold exactly this.
- ``0x00``: msgpack; ``0x01``: cloudpickle after a tag byte; ``0x02``: CBOR. Read, never
  written by the default, so payloads of producers that use those formats stay readable.
"""

from __future__ import annotations

import json
import pickle
import sys
from types import FunctionType
from typing import Any, Protocol, runtime_checkable

from taskito.exceptions import SerializationError
from taskito.payload.checks import check_serializer, optional_module

__all__ = [
    "Serializer",
    "SmartSerializer",
    "CloudpickleSerializer",
    "JsonSerializer",
    "MsgPackSerializer",
    "CborSerializer",
    "SignedSerializer",
    "EncryptedSerializer",
]

PICKLE_PROTOCOL = 5
TAG_MSGPACK = 0x00
TAG_CLOUDPICKLE = 0x01
TAG_CBOR = 0x02
TAG_PICKLE = 0x80

# How pickle names a module in protocol 4 and later: SHORT_BINUNICODE, length 8, the name.
# A pickle that mentions `__main__` refers to a function or class of the running script by
# name, which a worker started some other way does not have: cloudpickle carries it by value.
_MAIN_REF = b"\x8c\x08__main__"
_PICKLED_NONE = pickle.dumps(None, PICKLE_PROTOCOL)
_SCAN_LIMIT = 4096  # where searching the bytes starts to cost more than a walk (about 1.5 us)
_STACK_GLOBAL = 0x93  # the opcode that loads every global in protocol 4 and later


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps(obj) -> bytes`` and ``loads(data) -> Any``."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _cloudpickle() -> Any:
    import cloudpickle

    return cloudpickle


def pickle_dumps(obj: Any) -> bytes:
    """pickle protocol 5, falling back to cloudpickle for what pickle refuses or would
    carry only by a name the worker may not have. Both give a stream that ``pickle.loads``
    reads (cloudpickle's helpers are imported by name while loading)."""
    if obj is None:  # what most tasks return: the same bytes, without a call
        return _PICKLED_NONE
    try:
        data = pickle.dumps(obj, PICKLE_PROTOCOL)
    except Exception:
        return _cloudpickle().dumps(obj, PICKLE_PROTOCOL)
    # STACK_GLOBAL first: a one-byte search, so plain data (no global at all) goes no
    # further. Past _SCAN_LIMIT, walking the objects again costs less than searching bytes.
    if (
        _STACK_GLOBAL in data
        and _main_is_the_script()
        and (_MAIN_REF in data if len(data) <= _SCAN_LIMIT else _refers_to_main(obj))
    ):
        return _cloudpickle().dumps(obj, PICKLE_PROTOCOL)
    return data


def _main_is_the_script() -> bool:
    """False in a child that runs the script under another name (multiprocessing's spawn,
    the prefork pool): there ``__main__`` is an alias, and the parent that reads what the
    child writes has the real one, so a reference by name is what works."""
    main = sys.modules.get("__main__")
    return getattr(main, "__name__", None) == "__main__"


class _UsesMain(Exception):
    pass


class _Discard:
    def write(self, data: Any) -> int:
        return len(data)


class _MainFinder(pickle.Pickler):
    """Pickles into nothing, stopping at the first function or class of ``__main__``. The
    C pickler calls ``reducer_override`` only for objects that are not plain data, so the
    cost follows the number of objects, not of bytes."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            raise _UsesMain
        return NotImplemented


def _refers_to_main(obj: Any) -> bool:
    try:
        _MainFinder(_Discard(), PICKLE_PROTOCOL).dump(obj)
    except _UsesMain:
        return True
    return False


def smart_loads(data: bytes) -> Any:
    """Reads any format the default serializer writes or accepts, by its first byte."""
    if not data:
        raise SerializationError("empty payload")
    tag = data[0]
    if tag == TAG_PICKLE:
        return pickle.loads(data)
    body = memoryview(data)[1:]
    if tag == TAG_CLOUDPICKLE:
        _cloudpickle()
        return pickle.loads(body)
    if tag == TAG_MSGPACK:
        return _msgpack_loads(bytes(body))
    if tag == TAG_CBOR:
        return optional_module("cbor2", "cbor").loads(bytes(body))
    raise SerializationError(f"unknown payload format (first byte 0x{tag:02x})")


def _msgpack_loads(data: bytes) -> Any:
    return optional_module("msgpack", "msgpack").unpackb(data, raw=False, strict_map_key=False)


class SmartSerializer:
    """The default: pickle protocol 5 (tuples, big ints, datetimes, instances of importable
    classes survive as they are), cloudpickle for lambdas, local and ``__main__`` objects.
    Also reads msgpack (``0x00``), tagged cloudpickle (``0x01``) and CBOR (``0x02``)."""

    def dumps(self, obj: Any) -> bytes:
        return pickle_dumps(obj)

    def loads(self, data: bytes) -> Any:
        return smart_loads(data)

    def __repr__(self) -> str:
        return "SmartSerializer()"


class CloudpickleSerializer:
    """cloudpickle for everything (untagged: the stream starts with pickle's ``0x80``)."""

    def __init__(self) -> None:
        self._cp = _cloudpickle()

    def dumps(self, obj: Any) -> bytes:
        return self._cp.dumps(obj, PICKLE_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)

    def __repr__(self) -> str:
        return "CloudpickleSerializer()"


class JsonSerializer:
    """JSON (UTF-8): dicts with str keys, lists, str, numbers, bool, None. Tuples come
    back as lists; NaN and infinities are refused."""

    def dumps(self, obj: Any) -> bytes:
        try:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"not JSON-serializable: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JsonSerializer()"


class MsgPackSerializer:
    """msgpack: plain types only (tuples come back as lists). Needs ``msgpack``."""

    def __init__(self) -> None:
        self._mp = optional_module("msgpack", "msgpack")

    def dumps(self, obj: Any) -> bytes:
        try:
            return self._mp.packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"not msgpack-serializable: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        return self._mp.unpackb(data, raw=False, strict_map_key=False)

    def __repr__(self) -> str:
        return "MsgPackSerializer()"


class CborSerializer:
    """CBOR after a ``0x02`` tag byte: big ints, timezone-aware datetimes, bytes and
    ``Decimal`` survive; tuples come back as lists. Needs ``cbor2`` (``taskito[cbor]``)."""

    def __init__(self) -> None:
        self._cbor = optional_module("cbor2", "cbor")

    def dumps(self, obj: Any) -> bytes:
        try:
            return bytes((TAG_CBOR,)) + self._cbor.dumps(obj)
        except Exception as exc:  # cbor2 raises CBOREncodeError (a ValueError) and others
            raise SerializationError(f"not CBOR-serializable: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        if not data or data[0] != TAG_CBOR:
            raise SerializationError("not a CBOR payload (missing the 0x02 tag byte)")
        return self._cbor.loads(data[1:])

    def __repr__(self) -> str:
        return "CborSerializer()"


class SignedSerializer:
    """``inner``, then HMAC-SHA256 over its bytes (:class:`~taskito.codecs.HmacCodec`, with
    a key of 32 bytes or more). Bytes whose signature does not verify raise
    :class:`~taskito.exceptions.CryptoError` before ``inner`` sees them."""

    def __init__(self, inner: Serializer, key: bytes) -> None:
        from taskito.codecs import CodecSerializer, HmacCodec, check_key

        key = check_key("key", key)
        if len(key) < 32:
            raise ValueError(f"key must be at least 32 bytes for SignedSerializer, got {len(key)}")
        self.inner = check_serializer("inner", inner)
        self._chain = CodecSerializer(inner, [HmacCodec(key)])

    def dumps(self, obj: Any) -> bytes:
        return self._chain.dumps(obj)

    def loads(self, data: bytes) -> Any:
        return self._chain.loads(data)

    def __repr__(self) -> str:
        return f"SignedSerializer({self.inner!r})"


class EncryptedSerializer:
    """``inner``, then AES-GCM (:class:`~taskito.codecs.AesGcmCodec`; a key of 16, 24 or 32
    bytes). Bytes that do not decrypt raise :class:`~taskito.exceptions.CryptoError`."""

    def __init__(self, inner: Serializer, key: bytes) -> None:
        from taskito.codecs import AesGcmCodec, CodecSerializer

        self.inner = check_serializer("inner", inner)
        self._chain = CodecSerializer(inner, [AesGcmCodec(key)])

    def dumps(self, obj: Any) -> bytes:
        return self._chain.dumps(obj)

    def loads(self, data: bytes) -> Any:
        return self._chain.loads(data)

    def __repr__(self) -> str:
        return f"EncryptedSerializer({self.inner!r})"

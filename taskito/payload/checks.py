"""The checks serializers and codecs share: what counts as a serializer, a codec and key
material, and importing an optional dependency. ``taskito.serializers`` and
``taskito.codecs`` both import them from here, so neither imports the other to check its
arguments."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any


def optional_module(name: str, extra: str) -> Any:
    """Imports an optional dependency, or says which extra installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        package = name.split(".")[0]
        raise ImportError(
            f"this needs the {package!r} package: pip install 'taskito[{extra}]' (or pip install {package})"
        ) from None


def check_serializer(option: str, value: Any) -> Any:
    """A serializer or None; anything else is a ValueError naming the option."""
    if value is None:
        return None
    if isinstance(value, type):
        raise ValueError(f"{option} must be a serializer instance, got the class {value.__name__}")
    if not (callable(getattr(value, "dumps", None)) and callable(getattr(value, "loads", None))):
        raise ValueError(f"{option} must have dumps(obj) -> bytes and loads(data), got {value!r}")
    return value


def check_key(option: str, key: Any) -> bytes:
    """Key material as bytes, or a ValueError naming the option."""
    if isinstance(key, (bytearray, memoryview)):
        key = bytes(key)
    if not isinstance(key, bytes):
        raise ValueError(f"{option} must be bytes, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{option} must not be empty")
    return key


def check_codec(option: str, codec: Any) -> Any:
    if isinstance(codec, type):
        raise ValueError(f"{option} must be a codec instance, got the class {codec.__name__}")
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise ValueError(f"{option} must have encode(bytes) and decode(bytes), got {codec!r}")
    return codec


def codec_list(option: str, value: Any) -> list[Any]:
    """One codec, or an iterable of them, as a checked list (None gives [])."""
    if value is None:
        return []
    if callable(getattr(value, "encode", None)) and not isinstance(value, (str, bytes)):
        return [check_codec(option, value)]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{option} must be a codec or a list of codecs, got {value!r}")
    return [check_codec(option, c) for c in value]

"""How a task's calls and results become the bytes the engine stores, and back.

Each task has a :class:`Plan`: its serializer, then its named codecs (arguments only), then
the queue's codec chain (arguments and results; ``secret_key`` is an :class:`HmacCodec` at
the end of that chain, so its signature is checked first and covers everything inside). The
plan of a queue that configures nothing is a pair of plain functions around ``pickle``: the
worker's hot path pays nothing for transforms it does not use.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from taskito._signing import args_context, binds_context, idempotency_digest, key_list, result_context
from taskito.codecs import HmacCodec
from taskito.exceptions import SerializationError
from taskito.flow_control import idempotency_key
from taskito.payload.checks import check_codec, check_serializer, codec_list
from taskito.serializers import (
    TAG_PICKLE,
    SmartSerializer,
    pickle_dumps,
    smart_loads,
)


def _default_load(data: bytes, _where: str = "") -> Any:
    # The common case first: a pickle stream, read without a second call.
    if data and data[0] == TAG_PICKLE:
        return pickle.loads(data)
    return smart_loads(data)


def _default_dump(obj: Any, _where: str = "") -> bytes:
    return pickle_dumps(obj)


def _steps(codecs: list[Any], decode: bool) -> tuple[tuple[Callable[..., bytes], bool], ...]:
    # Each codec's transform, and whether it takes the context (a signature or AES-GCM tag
    # that covers where the bytes belong).
    order = reversed(codecs) if decode else codecs
    out = []
    for c in order:
        if binds_context(c):
            out.append((c.decode_bound if decode else c.encode_bound, True))
        else:
            out.append((c.decode if decode else c.encode, False))
    return tuple(out)


def _chain(
    first: Callable[[Any], bytes], codecs: list[Any], context_of: Callable[[str], bytes]
) -> Callable[[Any, str], bytes]:
    """``dumps(obj, where)``: the serializer, then each codec; ``where`` (a task name or a
    job id) becomes the context of the codecs that bind one."""
    if not codecs:
        if first is pickle_dumps:
            return _default_dump
        return lambda obj, _where="": first(obj)
    steps = _steps(codecs, decode=False)

    def dumps(obj: Any, where: str) -> bytes:
        data = first(obj)
        context = None
        for encode, bound in steps:
            if bound:
                if context is None:
                    context = context_of(where)
                data = encode(data, context)
            else:
                data = encode(data)
        return data

    return dumps


def _unchain(
    last: Callable[[bytes], Any], codecs: list[Any], context_of: Callable[[str], bytes]
) -> Callable[[bytes, str], Any]:
    """``loads(data, where)``: each codec in reverse (a signature is checked before anything
    reads the bytes), then the serializer."""
    if not codecs:
        if last is _default_load:
            return _default_load
        return lambda data, _where="": last(data)
    steps = _steps(codecs, decode=True)

    def loads(data: bytes, where: str) -> Any:
        context = None
        for decode, bound in steps:
            if bound:
                if context is None:
                    context = context_of(where)
                data = decode(data, context)
            else:
                data = decode(data)
        return last(data)

    return loads


class Plan:
    """The byte transforms of one task. ``load_call(data, task_name)`` and
    ``dump_result(value, job_id)`` run on the worker thread, once per job; ``dump_call`` at
    enqueue; ``load_result(data, job_id)`` in ``result()``. Arguments are bound to their
    task name and results to their job id by every codec that binds a context."""

    __slots__ = (
        "serializer",
        "load_call",
        "dump_result",
        "load_result",
        "_dump_args",
        "_unwrap_args",
        "_unwrap_result",
        "_idem_secret",
        "_max_bytes",
    )

    def __init__(
        self,
        serializer: Any,
        arg_codecs: list[Any],
        chain: list[Any],
        idem_secret: bytes | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.serializer = serializer
        if type(serializer) is SmartSerializer:
            dumps, loads = pickle_dumps, _default_load
        else:
            dumps, loads = serializer.dumps, serializer.loads
        self._dump_args = _chain(dumps, arg_codecs + chain, args_context)
        self.load_call: Callable[[bytes, str], Any] = _unchain(loads, arg_codecs + chain, args_context)
        self.dump_result: Callable[[Any, str], bytes] = _chain(dumps, chain, result_context)
        self.load_result: Callable[[bytes, str], Any] = _unchain(loads, chain, result_context)
        self._unwrap_args = _unchain(bytes, arg_codecs + chain, args_context)
        self._unwrap_result = _unchain(bytes, chain, result_context)
        self._idem_secret = idem_secret
        self._max_bytes = max_bytes

    def dump_call(self, task_name: str, args: Any, kwargs: Any) -> bytes:
        """Encodes a call's arguments, or raises SerializationError naming the task (and
        ValueError past ``max_payload_bytes``)."""
        try:
            data = self._dump_args((tuple(args), dict(kwargs)), task_name)
        except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError...
            raise SerializationError(
                f"cannot serialize the arguments of task {task_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if self._max_bytes is not None and len(data) > self._max_bytes:
            raise ValueError(
                f"the arguments of task {task_name!r} are {len(data)} bytes once encoded, "
                f"past max_payload_bytes={self._max_bytes}"
            )
        return data

    def unwrap_call(self, payload: bytes, task_name: str) -> bytes:
        """A call's stored bytes with every codec undone: what the serializer wrote."""
        return self._unwrap_args(payload, task_name)

    def unwrap_result(self, data: bytes, job_id: str) -> bytes:
        return self._unwrap_result(data, job_id)

    def idempotency_key(self, task_name: str, payload: bytes) -> str:
        """The unique key of an idempotent call, from its arguments as the serializer wrote
        them (before any codec, so a randomized codec still maps equal calls to one key)."""
        plain = self._unwrap_args(payload, task_name)
        if self._idem_secret is None:
            return idempotency_key(task_name, plain)
        return idempotency_digest(self._idem_secret, task_name, plain)


def check_secret_key(value: Any) -> list[bytes]:
    """``secret_key``: one key or a list (the first signs, any verifies), each >= 32 bytes."""
    if isinstance(value, (list, tuple)):
        for v in value:
            if not isinstance(v, (str, bytes, bytearray, memoryview)):
                raise ValueError(f"secret_key entries must be bytes or str, got {type(v).__name__}")
    elif not isinstance(value, (str, bytes, bytearray, memoryview)):
        raise ValueError(f"secret_key must be bytes, str or a list of them, got {type(value).__name__}")
    return key_list("secret_key", value)


class Payloads:
    """A queue's serializer, global codec chain and named codecs; makes each task's plan."""

    def __init__(
        self,
        serializer: Any,
        codec: Any,
        codecs: Any,
        secret_key: Any,
        max_payload_bytes: int | None = None,
        max_metadata_bytes: int | None = None,
    ) -> None:
        self.serializer = check_serializer("serializer", serializer) or SmartSerializer()
        self.chain = codec_list("codec", codec)
        self.secret: bytes | None = None
        if secret_key is not None:
            keys = check_secret_key(secret_key)
            self.secret = keys[0]
            self.chain.append(HmacCodec(keys))
        if codecs is None:
            codecs = {}
        if not isinstance(codecs, dict):
            raise ValueError(f"codecs must be a dict of name -> codec, got {codecs!r}")
        for name, c in codecs.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"codecs: names must be non-empty strings, got {name!r}")
            check_codec(f"codecs[{name!r}]", c)
        self.named: dict[str, Any] = dict(codecs)
        self.max_payload_bytes = _check_limit("max_payload_bytes", max_payload_bytes)
        self.max_metadata_bytes = _check_limit("max_metadata_bytes", max_metadata_bytes)
        self.queue_plan = Plan(self.serializer, [], self.chain, self.secret, self.max_payload_bytes)
        # Whether results are bound to their job id (a canvas step then reads its parents' ids).
        self.binds_results = any(binds_context(c) for c in self.chain)
        # Whether some task has a serializer of its own: only then does reading a result
        # need the job's task name.
        self.per_task_serializer = False

    def for_task(self, serializer: Any, codecs: Any) -> Plan:
        serializer = check_serializer("serializer", serializer)
        names = self._names(codecs)
        if serializer is None and not names:
            return self.queue_plan
        if serializer is not None:
            self.per_task_serializer = True
        return Plan(
            serializer or self.serializer,
            [self.named[n] for n in names],
            self.chain,
            self.secret,
            self.max_payload_bytes,
        )

    def metadata(self, text: str | None) -> str | None:
        """A job's metadata text, or ValueError past ``max_metadata_bytes``."""
        if text is not None and self.max_metadata_bytes is not None:
            size = len(text.encode())
            if size > self.max_metadata_bytes:
                raise ValueError(
                    f"metadata is {size} bytes, past max_metadata_bytes={self.max_metadata_bytes}"
                )
        return text

    def _names(self, codecs: Any) -> list[str]:
        if codecs is None:
            return []
        names = [codecs] if isinstance(codecs, str) else codecs
        try:
            names = list(names)
        except TypeError:
            raise ValueError(f"codecs must be a list of codec names, got {codecs!r}") from None
        for n in names:
            if n not in self.named:
                known = ", ".join(sorted(self.named)) or "none (pass Queue(codecs={name: codec}))"
                raise ValueError(f"codecs: unknown codec name {n!r} (known: {known})")
        return names


def _check_limit(option: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a positive integer or None, got {value!r}")
    return value


# Module-level calls with the default plan (SmartSerializer, no codec), for code that has no
# Queue at hand. Code that has one should use ``queue._plan_for(task_name)`` instead, so that
# the queue's serializer, codecs and secret key apply.
_DEFAULT_PLAN = Plan(SmartSerializer(), [], [])
dump_call = _DEFAULT_PLAN.dump_call


def load_call(data: bytes) -> Any:
    return _DEFAULT_PLAN.load_call(data, "")


def dump_result(value: Any) -> bytes:
    return _DEFAULT_PLAN.dump_result(value, "")


def load_result(data: bytes | None) -> Any:
    return None if data is None else _DEFAULT_PLAN.load_result(data, "")

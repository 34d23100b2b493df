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

from taskito._settings import MIN_SECRET_KEY_BYTES
from taskito.codecs import HmacCodec
from taskito.exceptions import SerializationError
from taskito.payload.checks import check_codec, check_key, check_serializer, codec_list
from taskito.serializers import (
    TAG_PICKLE,
    SmartSerializer,
    pickle_dumps,
    smart_loads,
)


def _default_load(data: bytes) -> Any:
    # The common case first: a pickle stream, read without a second call.
    if data and data[0] == TAG_PICKLE:
        return pickle.loads(data)
    return smart_loads(data)


def _chain(first: Callable[[Any], bytes], codecs: list[Any]) -> Callable[[Any], bytes]:
    if not codecs:
        return first
    encoders = tuple(c.encode for c in codecs)

    def dumps(obj: Any) -> bytes:
        data = first(obj)
        for encode in encoders:
            data = encode(data)
        return data

    return dumps


def _unchain(last: Callable[[bytes], Any], codecs: list[Any]) -> Callable[[bytes], Any]:
    if not codecs:
        return last
    decoders = tuple(c.decode for c in reversed(codecs))

    def loads(data: bytes) -> Any:
        for decode in decoders:
            data = decode(data)
        return last(data)

    return loads


class Plan:
    """The byte transforms of one task. ``load_call`` and ``dump_result`` run on the worker
    thread, once per job; ``dump_call`` at enqueue; ``load_result`` in ``result()``."""

    __slots__ = ("serializer", "load_call", "dump_result", "load_result", "_dump_args")

    def __init__(self, serializer: Any, arg_codecs: list[Any], chain: list[Any]) -> None:
        self.serializer = serializer
        if type(serializer) is SmartSerializer:
            dumps, loads = pickle_dumps, _default_load
        else:
            dumps, loads = serializer.dumps, serializer.loads
        self._dump_args = _chain(dumps, arg_codecs + chain)
        self.load_call: Callable[[bytes], Any] = _unchain(loads, arg_codecs + chain)
        self.dump_result: Callable[[Any], bytes] = _chain(dumps, chain)
        self.load_result = _unchain(loads, chain)

    def dump_call(self, task_name: str, args: Any, kwargs: Any) -> bytes:
        """Encodes a call's arguments, or raises SerializationError naming the task."""
        try:
            return self._dump_args((tuple(args), dict(kwargs)))
        except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError...
            raise SerializationError(
                f"cannot serialize the arguments of task {task_name!r}: {type(exc).__name__}: {exc}"
            ) from exc


def check_secret_key(value: Any) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    key = check_key("secret_key", value)
    if len(key) < MIN_SECRET_KEY_BYTES:
        raise ValueError(
            f"secret_key must be at least {MIN_SECRET_KEY_BYTES} bytes (32 random bytes are best), "
            f"got {len(key)}"
        )
    return key


class Payloads:
    """A queue's serializer, global codec chain and named codecs; makes each task's plan."""

    def __init__(self, serializer: Any, codec: Any, codecs: Any, secret_key: Any) -> None:
        self.serializer = check_serializer("serializer", serializer) or SmartSerializer()
        self.chain = codec_list("codec", codec)
        if secret_key is not None:
            self.chain.append(HmacCodec(check_secret_key(secret_key)))
        if codecs is None:
            codecs = {}
        if not isinstance(codecs, dict):
            raise ValueError(f"codecs must be a dict of name -> codec, got {codecs!r}")
        for name, c in codecs.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"codecs: names must be non-empty strings, got {name!r}")
            check_codec(f"codecs[{name!r}]", c)
        self.named: dict[str, Any] = dict(codecs)
        self.queue_plan = Plan(self.serializer, [], self.chain)
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
        return Plan(serializer or self.serializer, [self.named[n] for n in names], self.chain)

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


# Module-level calls with the default plan (SmartSerializer, no codec), for code that has no
# Queue at hand. Code that has one should use ``queue._plan_for(task_name)`` instead, so that
# the queue's serializer, codecs and secret key apply.
_DEFAULT_PLAN = Plan(SmartSerializer(), [], [])
dump_call = _DEFAULT_PLAN.dump_call
load_call = _DEFAULT_PLAN.load_call
dump_result = _DEFAULT_PLAN.dump_result


def load_result(data: bytes | None) -> Any:
    return None if data is None else _DEFAULT_PLAN.load_result(data)

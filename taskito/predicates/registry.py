"""The registry of predicate ops: the name in ``{"op": ...}`` and in the text form, mapped
to the class that builds it; and ``build``, which turns a serialized predicate back into
objects through it."""

from __future__ import annotations

import threading
from typing import Any, Callable

from taskito.predicates.core import (
    AndPredicate,
    NotPredicate,
    OrPredicate,
    Predicate,
    PredicateValidationError,
)

# Serialized predicates are untrusted input: nesting is bounded so a hostile document cannot
# exhaust the stack.
MAX_DEPTH = 64


class PredicateRegistry:
    """Op names to ``Predicate`` classes."""

    def __init__(self) -> None:
        self._ops: dict[str, type[Predicate]] = {}
        self._lock = threading.Lock()

    def register(self, op: str, cls: type[Predicate], *, replace: bool = False) -> type[Predicate]:
        """Registers ``cls`` under ``op`` (setting ``cls.OP`` if it had none); returns it.
        ``PredicateValidationError`` if ``cls`` is not a Predicate subclass, its ``OP`` is
        another name, or ``op`` is taken and ``replace`` is False."""
        if not isinstance(op, str) or not op.isidentifier():
            raise PredicateValidationError(f"predicate op must be an identifier, got {op!r}")
        if op in ("and", "or", "not"):
            raise PredicateValidationError(f"predicate op {op!r} is reserved")
        if not (isinstance(cls, type) and issubclass(cls, Predicate)):
            raise PredicateValidationError(
                f"register_predicate({op!r}) needs a Predicate subclass, got {cls!r}"
            )
        own = cls.__dict__.get("OP")
        if own is not None and own != op:
            raise PredicateValidationError(f"{cls.__name__}.OP is {own!r}, not {op!r}")
        with self._lock:
            if op in self._ops and self._ops[op] is not cls and not replace:
                raise PredicateValidationError(
                    f"predicate op {op!r} is already registered (pass replace=True to replace it)"
                )
            # Its own OP: one inherited from a registered parent would name the parent.
            cls.OP = op
            self._ops[op] = cls
        return cls

    def lookup(self, op: str) -> type[Predicate] | None:
        """The class registered as ``op``, or None."""
        return self._ops.get(op)

    def names(self) -> list[str]:
        """Registered op names, sorted (the combinators ``and or not`` are built in)."""
        return sorted(self._ops)


_default = PredicateRegistry()


def default_registry() -> PredicateRegistry:
    """The registry ``Predicate.from_dict`` and ``parse`` use unless given another."""
    return _default


def register_predicate(op: str, cls: type[Predicate] | None = None, *, replace: bool = False) -> Any:
    """Registers a custom op in the default registry: ``register_predicate("op", Cls)``, or
    as a class decorator ``@register_predicate("op")``."""
    if cls is None:

        def decorate(c: type[Predicate]) -> type[Predicate]:
            return _default.register(op, c, replace=replace)

        return decorate
    return _default.register(op, cls, replace=replace)


def build(data: Any, registry: PredicateRegistry | None = None, depth: int = 0) -> Predicate:
    """The predicate a ``to_dict()`` document describes."""
    reg = registry or _default
    if depth > MAX_DEPTH:
        raise PredicateValidationError(f"predicate nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise PredicateValidationError(f"a serialized predicate must be a dict, got {type(data).__name__}")
    op = data.get("op")
    if op is None:
        raise PredicateValidationError("a serialized predicate needs an 'op'")
    if not isinstance(op, str):
        raise PredicateValidationError(f"predicate op must be a string, got {op!r}")
    rest = {k: v for k, v in data.items() if k != "op"}
    if op in ("and", "or"):
        args = rest.pop("args", None)
        if rest or not isinstance(args, list) or len(args) != 2:
            raise PredicateValidationError(f"{op!r} takes exactly 'args': [left, right]")
        combine: Callable[..., Predicate] = AndPredicate if op == "and" else OrPredicate
        return combine(build(args[0], reg, depth + 1), build(args[1], reg, depth + 1))
    if op == "not":
        if set(rest) != {"arg"}:
            raise PredicateValidationError("'not' takes exactly 'arg'")
        return NotPredicate(build(rest["arg"], reg, depth + 1))
    cls = reg.lookup(op)
    if cls is None:
        raise PredicateValidationError(f"unknown predicate op {op!r} (known: {', '.join(reg.names())})")
    built = cls._from_kwargs(rest)
    if not isinstance(built, Predicate):
        raise PredicateValidationError(f"{cls.__name__}._from_kwargs returned {built!r}, not a Predicate")
    return built

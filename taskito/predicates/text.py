"""The text form of predicates: ``is_business_hours(tz="Europe/Paris") & !queue_paused()``.

Operators ``&``/``and``, ``|``/``or``, ``!``/``not`` (tightest first: not, and, or),
parentheses, and calls ``name(kw=literal, ...)`` whose literals are strings (single or double
quotes), ints, floats, ``true``/``false``/``null`` and lists of those. ``format_predicate``
writes the same form, leaving out arguments at their default; ``parse(format_predicate(p))``
rebuilds ``p``.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from typing import Any

from taskito.predicates.core import (
    AndPredicate,
    NotPredicate,
    OrPredicate,
    Predicate,
    PredicateValidationError,
)
from taskito.predicates.registry import MAX_DEPTH, PredicateRegistry, build, default_registry

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>[&|!(),=\[\]])
    )""",
    re.VERBOSE,
)
_WORDS = {"and": "&", "or": "|", "not": "!"}
# A text predicate is untrusted input too; it is bounded before it is read.
MAX_TEXT = 64 * 1024


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise PredicateValidationError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos}")
        pos = m.end()
        if m.group("num") is not None:
            raw = m.group("num")
            out.append(("lit", float(raw) if any(c in raw for c in ".eE") else int(raw)))
        elif m.group("str") is not None:
            out.append(("lit", _unquote(m.group("str"))))
        elif m.group("name") is not None:
            word = m.group("name")
            if word in _WORDS:
                out.append(("op", _WORDS[word]))
            else:
                out.append(("name", word))
        else:
            out.append(("op", m.group("op")))
    return out


def _unquote(quoted: str) -> str:
    body = quoted[1:-1]
    if quoted[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    try:
        return str(json.loads(f'"{body}"'))
    except ValueError:
        raise PredicateValidationError(f"bad string literal {quoted}") from None


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], registry: PredicateRegistry) -> None:
        self.tokens, self.pos, self.registry, self.depth = tokens, 0, registry, 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> Any:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            want = value or kind
            got = "the end" if tok is None else repr(tok[1])
            raise PredicateValidationError(f"expected {want!r}, got {got}")
        self.pos += 1
        return tok[1]

    def at(self, kind: str, value: Any) -> bool:
        tok = self.peek()
        return tok is not None and tok == (kind, value)

    def expr(self) -> Predicate:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PredicateValidationError(f"predicate nested deeper than {MAX_DEPTH} levels")
        left = self.conj()
        while self.at("op", "|"):
            self.pos += 1
            left = OrPredicate(left, self.conj())
        self.depth -= 1
        return left

    def conj(self) -> Predicate:
        left = self.unary()
        while self.at("op", "&"):
            self.pos += 1
            left = AndPredicate(left, self.unary())
        return left

    def unary(self) -> Predicate:
        if self.at("op", "!"):
            self.pos += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise PredicateValidationError(f"predicate nested deeper than {MAX_DEPTH} levels")
            inner = self.unary()
            self.depth -= 1
            return NotPredicate(inner)
        if self.at("op", "("):
            self.pos += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        return self.call()

    def call(self) -> Predicate:
        name = self.take("name")
        kwargs: dict[str, Any] = {}
        if self.at("op", "("):
            self.pos += 1
            while not self.at("op", ")"):
                key = self.take("name")
                self.take("op", "=")
                if key in kwargs:
                    raise PredicateValidationError(f"argument {key!r} given twice to {name}()")
                kwargs[key] = self.literal()
                if not self.at("op", ")"):
                    self.take("op", ",")
            self.pos += 1
        return build({"op": name, **kwargs}, self.registry)

    def literal(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise PredicateValidationError("expected a value, got the end")
        self.pos += 1
        if tok[0] == "lit":
            return tok[1]
        if tok[0] == "name" and tok[1] in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok[1]]
        if tok == ("op", "["):
            items = []
            while not self.at("op", "]"):
                items.append(self.literal())
                if not self.at("op", "]"):
                    self.take("op", ",")
            self.pos += 1
            return items
        raise PredicateValidationError(f"expected a value, got {tok[1]!r}")


def parse(text: str, registry: PredicateRegistry | None = None) -> Predicate:
    """The predicate written as ``text``; ``PredicateValidationError`` for bad syntax, an
    unknown op or an unknown argument."""
    if not isinstance(text, str):
        raise PredicateValidationError(f"parse() takes a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise PredicateValidationError(f"predicate text longer than {MAX_TEXT} characters")
    parser = _Parser(_tokens(text), registry or default_registry())
    if parser.peek() is None:
        raise PredicateValidationError("empty predicate")
    result = parser.expr()
    if parser.peek() is not None:
        raise PredicateValidationError(f"unexpected {parser.peek()[1]!r} after the predicate")  # type: ignore[index]
    return result


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PredicateValidationError(f"{value!r} has no text form")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise PredicateValidationError(f"a {type(value).__name__} argument has no text form: {value!r}")


def _defaults(p: Predicate) -> dict[str, Any]:
    params = inspect.signature(type(p).__init__).parameters.values()
    return {q.name: q.default for q in params if q.default is not inspect.Parameter.empty}


def format_predicate(p: Predicate) -> str:
    """``p`` in the text form (``PredicateValidationError`` if it has none)."""
    if isinstance(p, (AndPredicate, OrPredicate)):
        sign = " & " if isinstance(p, AndPredicate) else " | "
        return _operand(p.left, type(p), False) + sign + _operand(p.right, type(p), True)
    if isinstance(p, NotPredicate):
        inner = format_predicate(p.arg)
        return "!" + (f"({inner})" if isinstance(p.arg, (AndPredicate, OrPredicate)) else inner)
    data = p.to_dict()
    op = data.pop("op")
    defaults = _defaults(p)
    args = ", ".join(
        f"{k}={_literal(v)}"
        for k, v in data.items()
        if not (k in defaults and defaults[k] == v and type(defaults[k]) is type(v))
    )
    return f"{op}({args})"


def _operand(side: Predicate, parent: type, right: bool) -> str:
    # Operators group to the left when read back, so a nested right operand keeps its
    # parentheses; a left one needs them only under the other operator.
    text = format_predicate(side)
    if isinstance(side, (AndPredicate, OrPredicate)) and (right or type(side) is not parent):
        return f"({text})"
    return text

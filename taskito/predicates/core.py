"""The predicate model: ``Predicate`` and its combinators, the outcomes ``Defer`` and
``Cancel``, the context a predicate is asked about, and how one evaluation is counted."""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Union

if TYPE_CHECKING:
    from taskito.predicates.registry import PredicateRegistry

log = logging.getLogger("taskito")


class PredicateValidationError(ValueError):
    """A predicate that cannot be built, registered, serialized or parsed."""


class PredicateAction(str, enum.Enum):
    """What a task does when its predicate answers False (``on_false=``)."""

    DEFER = "defer"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Defer:
    """Run the job later: ``seconds`` from now."""

    seconds: float

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s) or s < 0 or math.isinf(s):
            raise ValueError(f"Defer seconds must be a finite number >= 0, got {s!r}")


@dataclass(frozen=True)
class Cancel:
    """Do not run the job at all; ``reason`` says why."""

    reason: str = ""


Outcome = Union[bool, Defer, Cancel]


@dataclass
class PredicateContext:
    """What a predicate is asked about: the job (``job_id`` is None at enqueue, where the
    job does not exist yet), its payload size in bytes, and the task's ``predicate_extras``.
    ``scheduled_at`` and ``created_at`` are UTC datetimes."""

    task_name: str
    queue: str
    priority: int = 0
    retry_count: int = 0
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    scheduled_at: datetime | None = None
    created_at: datetime | None = None
    payload_size: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    _queue: Any = field(default=None, repr=False, compare=False)

    def now(self) -> datetime:
        """The current time, in UTC."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def _need_queue(self) -> Any:
        if self._queue is None:
            raise RuntimeError("this PredicateContext is not attached to a Queue")
        return self._queue

    def queue_size(self, q: str | None = None) -> int:
        """Pending jobs of queue ``q`` (default: the job's queue)."""
        stats = self._need_queue().stats(queue=q or self.queue)
        return int(stats.get("pending", 0))

    def queue_paused(self, q: str | None = None) -> bool:
        """True if queue ``q`` (default: the job's queue) is paused."""
        return (q or self.queue) in self._need_queue().paused_queues()

    def stats(self) -> dict[str, int]:
        """The queue's job counts by status (``Queue.stats()``)."""
        return dict(self._need_queue().stats())


class Predicate:
    """A condition a job must meet to be enqueued or run. Subclasses implement
    ``evaluate(ctx)`` (returning a bool, ``Defer``, ``Cancel`` or a coroutine of one),
    ``to_dict()`` and the classmethod ``_from_kwargs(kwargs)``, and set ``OP``."""

    OP: ClassVar[str | None] = None

    def evaluate(self, ctx: PredicateContext) -> Any:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        if self.OP is None:
            raise PredicateValidationError(f"{type(self).__name__} has no OP: it cannot be serialized")
        return {"op": self.OP, **self._fields()}

    def _fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_kwargs(cls, kwargs: dict[str, Any]) -> Predicate:
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise PredicateValidationError(f"bad arguments for predicate {cls.OP!r}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any, registry: PredicateRegistry | None = None) -> Predicate:
        """The predicate ``to_dict()`` described; ``PredicateValidationError`` for anything
        else (the input is treated as untrusted)."""
        from taskito.predicates.registry import build

        return build(data, registry)

    def __and__(self, other: Any) -> AndPredicate:
        return AndPredicate(self, coerce_predicate(other))

    def __or__(self, other: Any) -> OrPredicate:
        return OrPredicate(self, coerce_predicate(other))

    def __invert__(self) -> NotPredicate:
        return NotPredicate(self)

    def __repr__(self) -> str:
        try:
            from taskito.predicates.text import format_predicate

            return f"<Predicate {format_predicate(self)}>"
        except PredicateValidationError:
            return f"<{type(self).__name__}>"


def _strength(outcome: Outcome) -> int:
    if isinstance(outcome, Cancel):
        return 3
    if isinstance(outcome, Defer):
        return 2
    return 1


class AndPredicate(Predicate):
    """Both must allow; stops at the first answer that is not True and returns it."""

    OP = "and"

    def __init__(self, left: Predicate, right: Predicate) -> None:
        self.left, self.right = coerce_predicate(left), coerce_predicate(right)

    def evaluate(self, ctx: PredicateContext) -> Outcome:
        first = resolve(self.left.evaluate(ctx))
        if first is not True:
            return first
        return resolve(self.right.evaluate(ctx))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "and", "args": [self.left.to_dict(), self.right.to_dict()]}


class OrPredicate(Predicate):
    """Either may allow; stops at True. When both deny the stronger denial wins
    (Cancel over Defer over False); of two Defers, the shorter (the sooner one side may
    allow)."""

    OP = "or"

    def __init__(self, left: Predicate, right: Predicate) -> None:
        self.left, self.right = coerce_predicate(left), coerce_predicate(right)

    def evaluate(self, ctx: PredicateContext) -> Outcome:
        first = resolve(self.left.evaluate(ctx))
        if first is True:
            return True
        second = resolve(self.right.evaluate(ctx))
        if second is True:
            return True
        if isinstance(first, Defer) and isinstance(second, Defer):
            return first if first.seconds <= second.seconds else second
        return first if _strength(first) >= _strength(second) else second

    def to_dict(self) -> dict[str, Any]:
        return {"op": "or", "args": [self.left.to_dict(), self.right.to_dict()]}


class NotPredicate(Predicate):
    """Flips a bool; ``Defer`` and ``Cancel`` pass through unchanged."""

    OP = "not"

    def __init__(self, arg: Predicate) -> None:
        self.arg = coerce_predicate(arg)

    def evaluate(self, ctx: PredicateContext) -> Outcome:
        inner = resolve(self.arg.evaluate(ctx))
        return (not inner) if isinstance(inner, bool) else inner

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not", "arg": self.arg.to_dict()}


class CallablePredicate(Predicate):
    """A plain function ``fn(ctx)`` used as a predicate; it has no serialized form."""

    def __init__(self, fn: Callable[[PredicateContext], Any]) -> None:
        self.fn = fn

    def evaluate(self, ctx: PredicateContext) -> Any:
        return self.fn(ctx)

    def to_dict(self) -> dict[str, Any]:
        raise PredicateValidationError(
            f"predicate {getattr(self.fn, '__qualname__', self.fn)!r} is a plain callable: it has no "
            "serialized form (subclass Predicate to get one)"
        )

    def __repr__(self) -> str:
        return f"<Predicate {getattr(self.fn, '__qualname__', self.fn)!r}>"


def coerce_predicate(value: Any, *, str_callable: bool = False) -> Predicate:
    """``value`` as a ``Predicate``: a predicate as is, a callable wrapped; with
    ``str_callable`` a string is parsed as the text form. ``TypeError`` for anything else."""
    if isinstance(value, Predicate):
        return value
    if str_callable and isinstance(value, str):
        from taskito.predicates.text import parse

        return parse(value)
    if callable(value):
        return CallablePredicate(value)
    raise TypeError(f"a predicate must be a Predicate or a callable taking a PredicateContext, got {value!r}")


def _run_coroutine(coro: Any) -> Any:
    """Awaits ``coro`` to its value from synchronous code, even inside a running loop (there
    it runs on a short-lived thread with a loop of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(coro))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_awaited(coro))
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="taskito-predicate", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def resolve(answer: Any) -> Outcome:
    """A predicate's answer as an outcome: a coroutine awaited, a Defer or Cancel as is,
    anything else by its truth."""
    if inspect.isawaitable(answer):
        answer = _run_coroutine(answer)
    if isinstance(answer, (Defer, Cancel)):
        return answer
    return bool(answer)


class PredicateMetrics:
    """Counts of evaluations by outcome: ``allowed``, ``denied`` (False), ``deferred``,
    ``cancelled`` and ``errors`` (a predicate that raised counts as an error and a denial)."""

    _KEYS = ("allowed", "denied", "deferred", "cancelled", "errors")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._KEYS, 0)

    def record(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._KEYS, 0)


def evaluate_predicate(
    predicate: Predicate | Callable[..., Any],
    ctx: PredicateContext,
    *,
    metrics: PredicateMetrics | None = None,
) -> Outcome:
    """Evaluates ``predicate`` for ``ctx``: True, False, ``Defer`` or ``Cancel``. One that
    raises answers False (logged, and counted as an error and a denial)."""
    p = coerce_predicate(predicate)
    try:
        outcome = resolve(p.evaluate(ctx))
    except Exception:
        log.exception("predicate %r of task %s raised; treated as False", p, ctx.task_name)
        if metrics is not None:
            metrics.record("errors")
            metrics.record("denied")
        return False
    if metrics is not None:
        if outcome is True:
            metrics.record("allowed")
        elif isinstance(outcome, Defer):
            metrics.record("deferred")
        elif isinstance(outcome, Cancel):
            metrics.record("cancelled")
        else:
            metrics.record("denied")
    return outcome

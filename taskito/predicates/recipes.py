"""The built-in predicates: time of day and week, absolute times, payload matching, queue
state, environment variables and feature flags. Bad arguments raise
``PredicateValidationError`` when the predicate is built, not when it is evaluated."""

from __future__ import annotations

import inspect
import os
import re
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskito.predicates.core import Defer, Predicate, PredicateContext, PredicateValidationError
from taskito.predicates.registry import default_registry

__all__ = [
    "is_business_hours",
    "is_weekend",
    "in_time_window",
    "after",
    "before",
    "in_timezone",
    "payload_matches",
    "queue_paused",
    "env_var_truthy",
    "feature_flag",
    "register_feature_flag_provider",
    "env_feature_flag_provider",
    "FeatureFlagProvider",
]


def _zone(tz: Any) -> tzinfo:
    if tz is None:
        return timezone.utc
    if not isinstance(tz, str) or not tz:
        raise PredicateValidationError(f"tz must be an IANA time zone name, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise PredicateValidationError(f"unknown time zone {tz!r}") from None


def _hhmm(name: str, value: Any) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise PredicateValidationError(f"{name} must be a 'HH:MM' string, got {value!r}")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 23 or minutes > 59:
        raise PredicateValidationError(f"{name} is not a time of day: {value!r}")
    return time(hours, minutes)


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PredicateValidationError(f"not an ISO 8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise PredicateValidationError(f"a time must be a datetime or an ISO string, got {value!r}")
    # A naive time is read as UTC, like every time taskito reports.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class _Recipe(Predicate):
    """Fields are the constructor's parameters, in order, as given (JSON values)."""

    _values: dict[str, Any]

    def _fields(self) -> dict[str, Any]:
        return dict(self._values)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Parameter defaults, which the text form leaves out."""
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


class IsBusinessHours(_Recipe):
    """Allows from ``start_hour`` to ``end_hour`` (on weekdays only, unless
    ``weekdays_only=False``) in ``tz`` (default UTC); otherwise defers until opening."""

    OP = "is_business_hours"

    def __init__(
        self, start_hour: int = 9, end_hour: int = 17, *, tz: str | None = None, weekdays_only: bool = True
    ):
        for name, v in (("start_hour", start_hour), ("end_hour", end_hour)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 24:
                raise PredicateValidationError(f"{name} must be an hour from 0 to 24, got {v!r}")
        if start_hour >= end_hour:
            raise PredicateValidationError(f"start_hour ({start_hour}) must be before end_hour ({end_hour})")
        if not isinstance(weekdays_only, bool):
            raise PredicateValidationError(f"weekdays_only must be True or False, got {weekdays_only!r}")
        self._zone = _zone(tz)
        self.start_hour, self.end_hour, self.weekdays_only = start_hour, end_hour, weekdays_only
        self._values = {
            "start_hour": start_hour,
            "end_hour": end_hour,
            "tz": tz,
            "weekdays_only": weekdays_only,
        }

    def _open_day(self, day: datetime) -> bool:
        return not self.weekdays_only or day.weekday() < 5

    def evaluate(self, ctx: PredicateContext) -> bool | Defer:
        now = ctx.now().astimezone(self._zone)
        if self._open_day(now) and self.start_hour <= now.hour < self.end_hour:
            return True
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(8):
            opening = (day + timedelta(days=offset)).replace(hour=self.start_hour)
            if opening > now and self._open_day(opening):
                return Defer(max(0.0, (opening - now).total_seconds()))
        return False  # unreachable: some day of the next week opens


class IsWeekend(_Recipe):
    """True on Saturday and Sunday in ``tz`` (default UTC)."""

    OP = "is_weekend"

    def __init__(self, *, tz: str | None = None):
        self._zone = _zone(tz)
        self._values = {"tz": tz}

    def evaluate(self, ctx: PredicateContext) -> bool:
        return ctx.now().astimezone(self._zone).weekday() >= 5


class InTimeWindow(_Recipe):
    """Allows inside ``[start, end)`` (``"HH:MM"``, in ``tz``; a window may wrap past
    midnight); outside it defers until ``start``."""

    OP = "in_time_window"

    def __init__(self, start: str, end: str, *, tz: str | None = None):
        self._start, self._end = _hhmm("start", start), _hhmm("end", end)
        if self._start == self._end:
            raise PredicateValidationError(f"the window {start}-{end} is empty")
        self._zone = _zone(tz)
        self._values = {"start": start, "end": end, "tz": tz}

    def evaluate(self, ctx: PredicateContext) -> bool | Defer:
        now = ctx.now().astimezone(self._zone)
        t = now.time().replace(tzinfo=None)
        if self._start < self._end:
            inside = self._start <= t < self._end
        else:
            inside = t >= self._start or t < self._end
        if inside:
            return True
        start = now.replace(hour=self._start.hour, minute=self._start.minute, second=0, microsecond=0)
        if start <= now:
            start += timedelta(days=1)
        return Defer((start - now).total_seconds())


class After(_Recipe):
    """Allows from ``t`` on; before it, defers until ``t``."""

    OP = "after"

    def __init__(self, t: Any):
        self._t = _instant(t)
        self._values = {"t": self._t.isoformat()}

    def evaluate(self, ctx: PredicateContext) -> bool | Defer:
        left = (self._t - ctx.now()).total_seconds()
        return True if left <= 0 else Defer(left)


class Before(_Recipe):
    """Allows only strictly before ``t``."""

    OP = "before"

    def __init__(self, t: Any):
        self._t = _instant(t)
        self._values = {"t": self._t.isoformat()}

    def evaluate(self, ctx: PredicateContext) -> bool:
        return ctx.now() < self._t


class InTimezone(_Recipe):
    """Always True; checks that ``tz`` names a time zone."""

    OP = "in_timezone"

    def __init__(self, tz: str):
        if tz is None:
            raise PredicateValidationError("in_timezone needs a time zone name")
        _zone(tz)
        self._values = {"tz": tz}

    def evaluate(self, ctx: PredicateContext) -> bool:
        return True


_MISSING = object()


class PayloadMatches(_Recipe):
    """True if the value at the dotted ``path`` into ``{"args": [...], "kwargs": {...}}``
    (``kwargs.tenant``, ``args.0``) equals ``expected``; a missing path is False."""

    OP = "payload_matches"

    def __init__(self, path: str, expected: Any):
        if not isinstance(path, str) or not path or path.split(".")[0] not in ("args", "kwargs"):
            raise PredicateValidationError(f"path must start with 'args' or 'kwargs', got {path!r}")
        self._path = path.split(".")
        self._values = {"path": path, "expected": expected}

    def evaluate(self, ctx: PredicateContext) -> bool:
        node: Any = {"args": list(ctx.args), "kwargs": ctx.kwargs}
        for part in self._path:
            if isinstance(node, dict):
                node = node.get(part, _MISSING)
            elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                node = getattr(node, part, _MISSING) if not part.startswith("_") else _MISSING
            if node is _MISSING:
                return False
        return bool(node == self._values["expected"])


class QueuePaused(_Recipe):
    """True while ``queue`` (default: the job's queue) is paused."""

    OP = "queue_paused"

    def __init__(self, queue: str | None = None):
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise PredicateValidationError(f"queue must be a queue name, got {queue!r}")
        self._values = {"queue": queue}

    def evaluate(self, ctx: PredicateContext) -> bool:
        return ctx.queue_paused(self._values["queue"])


_TRUTHY = frozenset({"1", "true", "t", "yes", "y", "on"})


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUTHY


class EnvVarTruthy(_Recipe):
    """True if the environment variable ``name`` is 1/true/t/yes/y/on (any case)."""

    OP = "env_var_truthy"

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise PredicateValidationError(f"name must be an environment variable name, got {name!r}")
        self._values = {"name": name}

    def evaluate(self, ctx: PredicateContext) -> bool:
        return _truthy(os.environ.get(self._values["name"]))


class FeatureFlagProvider(Protocol):
    """Answers whether a flag is on for a job."""

    def is_enabled(self, name: str, ctx: PredicateContext) -> bool: ...


class _EnvFlags:
    """Flags from the environment: flag ``beta-x`` reads ``<prefix>BETA_X``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def is_enabled(self, name: str, ctx: PredicateContext) -> bool:
        key = self.prefix + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        return _truthy(os.environ.get(key))

    def __repr__(self) -> str:
        return f"env_feature_flag_provider(prefix={self.prefix!r})"


def env_feature_flag_provider(prefix: str = "FF_") -> FeatureFlagProvider:
    """The provider that reads flag ``name`` from the environment variable
    ``<prefix><NAME>`` (upper case, other characters as ``_``)."""
    if not isinstance(prefix, str):
        raise PredicateValidationError(f"prefix must be a string, got {prefix!r}")
    return _EnvFlags(prefix)


_providers: dict[str, FeatureFlagProvider] = {"env": env_feature_flag_provider()}


def register_feature_flag_provider(name: str, provider: FeatureFlagProvider) -> None:
    """Makes ``provider`` (an object with ``is_enabled(name, ctx)``) available to
    ``feature_flag(..., provider=name)``."""
    if not isinstance(name, str) or not name:
        raise PredicateValidationError(f"provider name must be a non-empty string, got {name!r}")
    if not callable(getattr(provider, "is_enabled", None)):
        raise PredicateValidationError(
            f"a feature flag provider needs is_enabled(name, ctx), got {provider!r}"
        )
    _providers[name] = provider


class FeatureFlag(_Recipe):
    """True if the flag is on according to ``provider`` (default: the environment,
    ``FF_<NAME>``)."""

    OP = "feature_flag"

    def __init__(self, flag: str, provider: str | None = None):
        if not isinstance(flag, str) or not flag:
            raise PredicateValidationError(f"flag must be a non-empty string, got {flag!r}")
        if provider is not None and provider not in _providers:
            raise PredicateValidationError(
                f"unknown feature flag provider {provider!r} (registered: {', '.join(sorted(_providers))})"
            )
        self._values = {"flag": flag, "provider": provider}

    def evaluate(self, ctx: PredicateContext) -> bool:
        provider = _providers[self._values["provider"] or "env"]
        return bool(provider.is_enabled(self._values["flag"], ctx))


for _cls in (
    IsBusinessHours,
    IsWeekend,
    InTimeWindow,
    After,
    Before,
    InTimezone,
    PayloadMatches,
    QueuePaused,
    EnvVarTruthy,
    FeatureFlag,
):
    default_registry().register(_cls.OP, _cls)  # type: ignore[arg-type]


def is_business_hours(
    start_hour: int = 9, end_hour: int = 17, *, tz: str | None = None, weekdays_only: bool = True
) -> Predicate:
    return IsBusinessHours(start_hour, end_hour, tz=tz, weekdays_only=weekdays_only)


def is_weekend(*, tz: str | None = None) -> Predicate:
    return IsWeekend(tz=tz)


def in_time_window(start: str, end: str, *, tz: str | None = None) -> Predicate:
    return InTimeWindow(start, end, tz=tz)


def after(t: datetime | str) -> Predicate:
    return After(t)


def before(t: datetime | str) -> Predicate:
    return Before(t)


def in_timezone(tz: str) -> Predicate:
    return InTimezone(tz)


def payload_matches(path: str, expected: Any) -> Predicate:
    return PayloadMatches(path, expected)


def queue_paused(queue: str | None = None) -> Predicate:
    return QueuePaused(queue)


def env_var_truthy(name: str) -> Predicate:
    return EnvVarTruthy(name)


def feature_flag(name: str, *, provider: str | None = None) -> Predicate:
    return FeatureFlag(name, provider)

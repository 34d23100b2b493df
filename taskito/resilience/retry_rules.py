"""A task's retry rules: which exceptions are retried, how long each retry waits and how
many retries its budget allows. Built only for a task that sets one of them; without rules
the engine's own retry policy decides and none of this runs."""

from __future__ import annotations

import math
import random
from typing import Any

from taskito import _settings as settings
from taskito.resilience.budget import RetryBudget

#: The dead letter's metadata when the retry budget refused a retry.
BUDGET_EXHAUSTED = "retry_budget_exhausted"
#: Longest wait before a retry, seconds, unless ``max_retry_delay`` says otherwise.
DEFAULT_MAX_RETRY_DELAY = 300.0

# Kinds of rule the engine reads (rust/retry_rule.rs `RetryRule::from_parts`).
RETRY_AFTER, DEAD_LETTER, POSTPONE = 0, 1, 2


def _exception_types(param: str, value: Any) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    items = tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValueError(f"{param} must be exception classes, got {item!r}")
    return items


class RetryRules:
    """The checked retry options of one task (see ``Queue.task``)."""

    __slots__ = ("task_name", "retry_on", "dont_retry_on", "delays", "max_delay", "budget_spec", "budget")

    def __init__(
        self,
        task_name: str,
        retry_on: tuple[type[BaseException], ...] | None,
        dont_retry_on: tuple[type[BaseException], ...] | None,
        delays: tuple[float, ...] | None,
        max_delay: float | None,
        budget_spec: str | None,
    ) -> None:
        self.task_name = task_name
        self.retry_on = retry_on
        self.dont_retry_on = dont_retry_on
        self.delays = delays
        self.max_delay = DEFAULT_MAX_RETRY_DELAY if max_delay is None else max_delay
        self.budget_spec = budget_spec
        self.budget: RetryBudget | None = None

    @classmethod
    def build(
        cls,
        task_name: str,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        retry_delays: Any = None,
        max_retry_delay: Any = None,
        retry_budget: Any = None,
    ) -> RetryRules | None:
        """The rules of a task, or None when it sets none. ``retry_budget`` is checked by
        ``check()`` when a worker starts, as 0.22 does."""
        if retry_on is None and dont_retry_on is None and retry_delays is None:
            if max_retry_delay is None and retry_budget is None:
                return None
        delays = None
        if retry_delays is not None:
            delays = tuple(settings.check_seconds("retry_delays", d) for d in retry_delays)
        if max_retry_delay is not None:
            max_retry_delay = settings.check_seconds("max_retry_delay", max_retry_delay)
        return cls(
            task_name,
            _exception_types("retry_on", retry_on),
            _exception_types("dont_retry_on", dont_retry_on),
            delays,
            max_retry_delay,
            retry_budget,
        )

    def check(self) -> None:
        """Parses the retry budget (``run_worker`` calls this for every task)."""
        if self.budget_spec is not None and self.budget is None:
            self.budget = RetryBudget(self.task_name, self.budget_spec)

    def retries(self, exc: BaseException) -> bool:
        """Whether the filters let ``exc`` be retried: the blacklist first, then the
        whitelist; subclasses match."""
        if self.dont_retry_on is not None and isinstance(exc, self.dont_retry_on):
            return False
        return self.retry_on is None or isinstance(exc, self.retry_on)

    def delay(self, retry_count: int, backoff: float) -> float:
        """Seconds before the retry that follows run ``retry_count`` (0-based):
        ``retry_delays[retry_count]`` or ``min(max_retry_delay, backoff * 2**retry_count)``,
        plus a uniform jitter in ``[0, backoff)``."""
        if self.delays is not None and retry_count < len(self.delays):
            base = self.delays[retry_count]
        else:
            base = min(self.max_delay, backoff * math.pow(2.0, min(retry_count, 62)))
        return base + random.uniform(0.0, backoff)

    def decide(
        self, core: Any, exc: BaseException, retry_count: int, max_retries: int, backoff: float
    ) -> tuple:
        """The rule for the engine: ``(kind, delay_ms, metadata)``."""
        if not self.retries(exc):
            return (DEAD_LETTER, 0, None)
        if retry_count >= max_retries:
            return (DEAD_LETTER, 0, None)
        if self.budget_spec is not None:
            self.check()
            assert self.budget is not None
            if not self.budget.take(core):
                return (DEAD_LETTER, 0, BUDGET_EXHAUSTED)
        return (RETRY_AFTER, int(self.delay(retry_count, backoff) * 1000), None)

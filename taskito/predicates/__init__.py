"""Predicates: conditions a job must meet to be enqueued and to run.

``@queue.task(predicate=is_business_hours(tz="Europe/Paris"), on_false="defer")`` asks the
predicate at every enqueue (``ctx.job_id`` is None there) and again when a worker is about to
run the job. An answer is True (go), False (``on_false`` decides), ``Defer(seconds)`` or
``Cancel(reason)``. Predicates combine with ``&``, ``|`` and ``~``, serialize with
``to_dict()``/``Predicate.from_dict`` and read and write a text form with
``parse``/``format_predicate``.
"""

from __future__ import annotations

from taskito.predicates.core import (
    AndPredicate,
    CallablePredicate,
    Cancel,
    Defer,
    NotPredicate,
    OrPredicate,
    Predicate,
    PredicateAction,
    PredicateContext,
    PredicateMetrics,
    PredicateValidationError,
    coerce_predicate,
    evaluate_predicate,
)
from taskito.predicates.recipes import (
    FeatureFlagProvider,
    after,
    before,
    env_feature_flag_provider,
    env_var_truthy,
    feature_flag,
    in_time_window,
    in_timezone,
    is_business_hours,
    is_weekend,
    payload_matches,
    queue_paused,
    register_feature_flag_provider,
)
from taskito.predicates.registry import PredicateRegistry, default_registry, register_predicate
from taskito.predicates.text import format_predicate, parse

__all__ = [
    "Predicate",
    "AndPredicate",
    "OrPredicate",
    "NotPredicate",
    "CallablePredicate",
    "Defer",
    "Cancel",
    "PredicateAction",
    "PredicateContext",
    "PredicateMetrics",
    "PredicateRegistry",
    "PredicateValidationError",
    "FeatureFlagProvider",
    "coerce_predicate",
    "evaluate_predicate",
    "default_registry",
    "register_predicate",
    "register_feature_flag_provider",
    "env_feature_flag_provider",
    "parse",
    "format_predicate",
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
]

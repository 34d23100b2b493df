"""Webhook subscriptions, kept in the queue's shared settings store (one row each, key
``webhook:<id>``) so that every process of the queue sees and delivers them."""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import time
import uuid
from typing import Any

from taskito.dashboard.url_safety import check_webhook_url
from taskito.events import EventType

KEY_PREFIX = "webhook:"
#: The fields ``update_webhook`` may change.
EDITABLE = (
    "url",
    "events",
    "task_filter",
    "headers",
    "secret",
    "max_retries",
    "timeout_seconds",
    "retry_backoff",
    "enabled",
    "description",
)


@dataclasses.dataclass
class WebhookSubscription:
    """One webhook: where to POST which events. ``events`` None means every event;
    ``task_filter`` None means every task."""

    id: str
    url: str
    events: list[str] | None = None
    task_filter: list[str] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    secret: str | None = None
    max_retries: int = 3
    timeout_seconds: float = 10.0
    retry_backoff: float = 2.0
    enabled: bool = True
    description: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def wants(self, event: str, task_name: str | None) -> bool:
        if not self.enabled:
            return False
        if self.events is not None and event not in self.events:
            return False
        return self.task_filter is None or task_name is None or task_name in self.task_filter

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The checked, normalised form of subscription fields (ValueError naming a bad one)."""
    out = dict(fields)
    if "url" in out:
        out["url"] = check_webhook_url(out["url"])
    if out.get("events") is not None:
        names = []
        for e in out["events"]:
            try:
                names.append(EventType(e).value)
            except ValueError:
                raise ValueError(f"events: unknown event type {e!r}") from None
        out["events"] = names
    if out.get("task_filter") is not None:
        if isinstance(out["task_filter"], str) or not all(isinstance(t, str) for t in out["task_filter"]):
            raise ValueError("task_filter must be a list of task names")
        out["task_filter"] = list(out["task_filter"])
    if "headers" in out:
        headers = out["headers"] or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
            for k, v in headers.items()
        ):
            raise ValueError("headers must be a dict of single-line strings")
        out["headers"] = dict(headers)
    if out.get("secret") is not None and (not isinstance(out["secret"], str) or not out["secret"]):
        raise ValueError("secret must be a non-empty string")
    if "max_retries" in out:
        n = out["max_retries"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"max_retries must be an int >= 1 (the total attempts), got {n!r}")
    for name in ("timeout_seconds", "retry_backoff"):
        if name in out:
            v = out[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            out[name] = float(v)
    if "timeout_seconds" in out and out["timeout_seconds"] <= 0:
        raise ValueError("timeout_seconds must be > 0")
    if "enabled" in out and not isinstance(out["enabled"], bool):
        raise ValueError("enabled must be True or False")
    unknown = set(out) - set(EDITABLE)
    if unknown:
        raise ValueError(f"unknown webhook fields {sorted(unknown)}; allowed: {list(EDITABLE)}")
    return out


def _decode(text: str) -> WebhookSubscription | None:
    # Rows are shared with other processes: one that is not a subscription is skipped.
    try:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(WebhookSubscription)}
        return WebhookSubscription(**{k: v for k, v in data.items() if k in names})
    except (ValueError, TypeError):
        return None


class WebhookStore:
    """Create, read, update and delete subscriptions in the shared settings store."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def add(self, url: str, **fields: Any) -> WebhookSubscription:
        checked = check_fields({"url": url, **fields})
        now = time.time()
        sub = WebhookSubscription(id=uuid.uuid4().hex, created_at=now, updated_at=now, **checked)
        self._core.setting_put(KEY_PREFIX + sub.id, json.dumps(sub.to_dict()), 0)
        return sub

    def all(self) -> list[WebhookSubscription]:
        subs = (_decode(value) for _, value, _ in self._core.settings_list(KEY_PREFIX))
        return sorted((s for s in subs if s is not None), key=lambda s: (s.created_at, s.id))

    def get(self, sub_id: str) -> WebhookSubscription | None:
        stored = self._core.setting_get(KEY_PREFIX + str(sub_id))
        return None if stored is None else _decode(stored[0])

    def update(self, sub_id: str, **changes: Any) -> WebhookSubscription:
        checked = check_fields(changes)
        while True:
            stored = self._core.setting_get(KEY_PREFIX + str(sub_id))
            sub = None if stored is None else _decode(stored[0])
            if sub is None:
                raise KeyError(f"no webhook {sub_id!r}")
            updated = dataclasses.replace(sub, **checked, updated_at=time.time())
            if (
                self._core.setting_put(KEY_PREFIX + sub.id, json.dumps(updated.to_dict()), stored[1])
                is not None
            ):  # type: ignore[index]
                return updated

    def remove(self, sub_id: str) -> bool:
        return bool(self._core.setting_delete(KEY_PREFIX + str(sub_id)))

    def rotate_secret(self, sub_id: str) -> str:
        secret = secrets.token_hex(32)
        self.update(sub_id, secret=secret)
        return secret

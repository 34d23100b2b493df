"""The delivery log of webhooks: the newest ``max_per_webhook`` deliveries of each
subscription (oldest dropped first), in the queue's shared settings store so that every
process's deliveries show up in one place. Status: ``pending``, ``delivered``, ``failed``
(a 4xx or a refused URL) or ``dead`` (attempts ran out)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

KEY_PREFIX = "webhook_deliveries:"
#: Most characters of a response body kept in a record.
MAX_RESPONSE_BODY = 2048
STATUSES = ("pending", "delivered", "failed", "dead")
_MAX_ATTEMPTS = 64


class DeliveryStore:
    """``DeliveryStore(queue)``: the delivery records of the queue's webhooks."""

    def __init__(self, queue: Any, max_per_webhook: int = 200) -> None:
        if isinstance(max_per_webhook, bool) or not isinstance(max_per_webhook, int) or max_per_webhook < 1:
            raise ValueError(f"max_per_webhook must be an int >= 1, got {max_per_webhook!r}")
        self._core = queue._inner
        self.max_per_webhook = max_per_webhook

    def _edit(self, subscription_id: str, change: Any) -> Any:
        key = KEY_PREFIX + subscription_id
        for _ in range(_MAX_ATTEMPTS):
            stored = self._core.setting_get(key)
            records, version = ([], 0) if stored is None else (_load(stored[0]), stored[1])
            result = change(records)
            records = records[-self.max_per_webhook :]
            if self._core.setting_put(key, json.dumps(records, default=str), version) is not None:
                return result
        raise RuntimeError(f"the delivery log of webhook {subscription_id} is too contended to write")

    def record(
        self,
        subscription_id: str,
        event: str,
        payload: dict[str, Any],
        task_name: str | None,
        job_id: str | None,
    ) -> dict[str, Any]:
        """Adds a ``pending`` delivery and returns it."""
        entry = {
            "id": uuid.uuid4().hex,
            "subscription_id": subscription_id,
            "event": event,
            "payload": payload,
            "task_name": task_name,
            "job_id": job_id,
            "status": "pending",
            "attempts": 0,
            "response_code": None,
            "response_body": None,
            "latency_ms": None,
            "error": None,
            "created_at": time.time(),
            "completed_at": None,
        }
        self._edit(subscription_id, lambda records: records.append(entry))
        return entry

    def update(self, subscription_id: str, delivery_id: str, **fields: Any) -> None:
        """Changes fields of one record (a record already dropped from the log is left)."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")
        if isinstance(fields.get("response_body"), str):
            fields["response_body"] = fields["response_body"][:MAX_RESPONSE_BODY]

        def change(records: list[dict[str, Any]]) -> None:
            for r in records:
                if r.get("id") == delivery_id:
                    r.update(fields)

        self._edit(subscription_id, change)

    def list(self, subscription_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` records of a subscription, newest first."""
        stored = self._core.setting_get(KEY_PREFIX + subscription_id)
        records = [] if stored is None else _load(stored[0])
        return list(reversed(records))[:limit]

    def get(self, subscription_id: str, delivery_id: str) -> dict[str, Any] | None:
        return next(
            (r for r in self.list(subscription_id, self.max_per_webhook) if r.get("id") == delivery_id), None
        )

    def clear(self, subscription_id: str) -> None:
        self._core.setting_delete(KEY_PREFIX + subscription_id)


def _load(text: str) -> list[dict[str, Any]]:
    try:
        records = json.loads(text)
    except ValueError:
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []

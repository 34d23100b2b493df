"""Webhooks of ``Queue``: ``add_webhook``, ``list_webhooks``, ``get_webhook``,
``update_webhook``, ``remove_webhook``, ``rotate_webhook_secret`` (see ``taskito.webhooks``)."""

from __future__ import annotations

from typing import Any

from taskito.dashboard.webhook_store import WebhookStore, WebhookSubscription
from taskito.facets.base import QueueState


class Webhooks(QueueState):
    """Subscriptions live in the shared settings store, so every process delivers them."""

    _webhooks: Any = None

    @property
    def _webhook_manager(self) -> Any:
        if self._webhooks is None:
            from taskito.webhooks import WebhookManager

            with self._events_lock:
                if self._webhooks is None:
                    self._webhooks = WebhookManager(self)
        return self._webhooks

    def add_webhook(
        self,
        url: str,
        events: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        secret: str | None = None,
        max_retries: int = 3,
        timeout: float = 10.0,
        retry_backoff: float = 2.0,
        task_filter: list[str] | None = None,
        description: str | None = None,
    ) -> WebhookSubscription:
        """Subscribes ``url`` to ``events`` (None: all) of the tasks in ``task_filter``
        (None: all). ``max_retries`` is the total number of attempts; ``secret`` signs
        each body. Raises ``ValueError`` for a URL that is not http(s) and
        ``taskito.dashboard.url_safety.UnsafeWebhookUrl`` for one inside the network."""
        return self._webhook_manager.add_webhook(  # type: ignore[no-any-return]
            url,
            events=events,
            headers=headers or {},
            secret=secret,
            max_retries=max_retries,
            timeout_seconds=timeout,
            retry_backoff=retry_backoff,
            task_filter=task_filter,
            description=description,
        )

    def list_webhooks(self) -> list[WebhookSubscription]:
        return WebhookStore(self._inner).all()

    def get_webhook(self, webhook_id: str) -> WebhookSubscription | None:
        return WebhookStore(self._inner).get(webhook_id)

    def update_webhook(self, webhook_id: str, **changes: Any) -> WebhookSubscription:
        """Changes fields of a subscription (``timeout`` is accepted for ``timeout_seconds``);
        KeyError if there is none with this id."""
        if "timeout" in changes:
            changes["timeout_seconds"] = changes.pop("timeout")
        sub = WebhookStore(self._inner).update(webhook_id, **changes)
        self._webhook_manager.reload()
        return sub

    def remove_webhook(self, webhook_id: str) -> bool:
        removed = WebhookStore(self._inner).remove(webhook_id)
        if self._webhooks is not None:
            self._webhooks.reload()
        return removed

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """Gives the subscription a new random secret and returns it."""
        secret = WebhookStore(self._inner).rotate_secret(webhook_id)
        self._webhook_manager.reload()
        return secret

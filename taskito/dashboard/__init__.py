"""The taskito web dashboard (``pip install 'taskito[dashboard]'``).

``taskito dashboard --app module:queue`` serves it; in code, ``create_app(queue)`` returns
the ASGI application (Starlette) to mount or serve yourself. It reads and acts through the
public ``Queue`` methods only, so it works on any store a ``Queue`` works on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskito.scaler import build_scaler_response

if TYPE_CHECKING:
    from taskito.dashboard.app import create_app, serve

__all__ = ["create_app", "serve", "build_scaler_response"]


def __getattr__(name: str) -> Any:
    # The web app needs the dashboard extra; the stores beside it (webhooks, deliveries, the
    # URL guard) do not, and the core imports them: load the app only when it is asked for.
    if name in ("create_app", "serve"):
        from taskito.dashboard import app

        return getattr(app, name)
    raise AttributeError(f"module 'taskito.dashboard' has no attribute {name!r}")

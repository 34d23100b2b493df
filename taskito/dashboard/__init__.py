"""The taskito web dashboard (``pip install 'taskito[dashboard]'``).

``taskito dashboard --app module:queue`` serves it; in code, ``create_app(queue)`` returns
the ASGI application (Starlette) to mount or serve yourself. It reads and acts through the
public ``Queue`` methods only, so it works on any store a ``Queue`` works on.
"""

from __future__ import annotations

from taskito.dashboard.app import create_app, serve
from taskito.scaler import build_scaler_response

__all__ = ["create_app", "serve", "build_scaler_response"]

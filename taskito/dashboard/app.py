"""The dashboard's ASGI application: Starlette routes, Jinja2 templates (autoescaped), a
signed session cookie, the password gate and the CSRF check.

Safety: it binds 127.0.0.1 unless told otherwise; every action is a POST that must carry
the session's CSRF token; ``read_only`` hides the actions and refuses their POSTs with 403;
with a password (``TASKITO_DASHBOARD_PASSWORD``) every page, the JSON API and ``/metrics``
need a login (form + signed cookie) or HTTP Basic credentials.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

try:
    import jinja2
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the taskito dashboard needs {exc.name}: pip install 'taskito[dashboard]'") from exc

from taskito.dashboard import guard, views
from taskito.dashboard.routes import routes
from taskito.task_errors import readable

if TYPE_CHECKING:
    from taskito.app import Queue

HERE = Path(__file__).parent
# Paths a visitor reaches without being logged in.
_OPEN_PATHS = ("/login", "/static/")
SESSION_MAX_AGE = 12 * 3600


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every value, including anything a task returned, is escaped
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = views.when
    env.filters["ago"] = views.ago
    env.filters["error_summary"] = readable
    env.globals["urlquote"] = lambda s: quote(str(s), safe="")
    return Jinja2Templates(env=env)


def _basic_password(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                decoded = base64.b64decode(value[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2]
    return None


class PasswordGate:
    """Lets a request through when no password is set, for the login page and static
    files, with a logged-in session, or with HTTP Basic credentials carrying the password
    (for scrapers and scripts). Otherwise: a redirect to the login form for pages, 401 for
    the rest."""

    def __init__(
        self, app: ASGIApp, password: str | None, sessions: guard.Sessions, throttle: guard.LoginThrottle
    ) -> None:
        self.app = app
        self.password = password
        self.sessions = sessions
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.password:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/login" or path.startswith(_OPEN_PATHS[1]):
            await self.app(scope, receive, send)
            return
        if self.sessions.is_logged_in(scope["session"]):
            await self.app(scope, receive, send)
            return
        response: Response
        given = _basic_password(scope)
        if given is not None:
            client = guard.client_of(scope)
            wait = self.throttle.retry_after(client)
            if wait > 0:
                response = PlainTextResponse(
                    "too many failed logins: try again later",
                    status_code=429,
                    headers={"Retry-After": str(int(wait) + 1)},
                )
                await response(scope, receive, send)
                return
            if secrets.compare_digest(given.encode(), self.password.encode()):
                self.throttle.succeeded(client)
                await self.app(scope, receive, send)
                return
            self.throttle.failed(client)
        if scope["method"] == "GET" and not path.startswith(("/api/", "/metrics")):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            response = RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
        else:
            response = PlainTextResponse(
                "login required", status_code=401, headers={"WWW-Authenticate": 'Basic realm="taskito"'}
            )
        await response(scope, receive, send)


def create_app(
    queue: Queue,
    *,
    read_only: bool = False,
    password: str | None = None,
    secret_key: str | None = None,
    allowed_hosts: list[str] | None = None,
    unsafe_decode_pickles: bool = False,
) -> Starlette:
    """The dashboard for ``queue`` as an ASGI application.

    ``password``: require it (login form or HTTP Basic) for everything; failed logins
    are throttled, and a session ends at logout or when the password changes.
    ``secret_key`` signs the session cookie (default: ``TASKITO_DASHBOARD_SECRET``, at
    least 32 random bytes; else random per process, so restarting the dashboard logs
    everyone out). ``allowed_hosts``: the only ``Host`` names answered (default:
    ``TASKITO_DASHBOARD_ALLOWED_HOSTS``, else the loopback names).
    ``unsafe_decode_pickles``: without a queue
    ``secret_key`` the dashboard never unpickles stored arguments or results; this
    decodes them anyway, which runs code written by whoever can write the database."""
    key = guard.session_secret(secret_key)
    sessions = guard.Sessions(key, password or None)
    throttle = guard.LoginThrottle()
    app = Starlette(
        routes=[*routes(), Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=guard.allowed_hosts_from(allowed_hosts)),
            Middleware(guard.ResponseHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=key,
                session_cookie="taskito_dashboard",
                same_site="strict",
                max_age=SESSION_MAX_AGE,
            ),
            Middleware(PasswordGate, password=password or None, sessions=sessions, throttle=throttle),
        ],
    )
    app.state.queue = queue
    app.state.read_only = read_only
    app.state.password = password or None
    app.state.sessions = sessions
    app.state.throttle = throttle
    app.state.session_max_age = SESSION_MAX_AGE
    app.state.decode_pickles = bool(unsafe_decode_pickles)
    app.state.templates = _templates()
    app.state.metrics = _metrics(queue)
    # Counting a big table takes a while: polls share one count per interval, and the job
    # list's queue menu is refreshed now and then.
    app.state.overview = views.Recent(lambda: views.overview(queue), ttl=1.0)
    app.state.queue_names = views.Recent(lambda: sorted(queue.stats_all_queues()), ttl=30.0)
    return app


def _metrics(queue: Queue) -> Any:
    try:
        from taskito.metrics import Metrics
    except ImportError:
        return None  # /metrics answers 404 without taskito[metrics]
    return Metrics(queue)


def serve(
    queue: Queue,
    host: str = "127.0.0.1",
    port: int = 8080,
    read_only: bool = False,
    password: str | None = None,
    *,
    allowed_hosts: list[str] | None = None,
    decode_pickles: bool = False,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """Serves the dashboard with uvicorn until interrupted (over TLS with ``certfile`` and
    ``keyfile``). Without ``allowed_hosts`` it answers the loopback names and the address
    it binds, if that is not a wildcard."""
    import uvicorn

    if allowed_hosts is None and not os.environ.get("TASKITO_DASHBOARD_ALLOWED_HOSTS"):
        allowed_hosts = list(guard.LOOPBACK_HOSTS)
        if host not in ("0.0.0.0", "::", "") and host not in allowed_hosts:
            allowed_hosts.append(host if ":" not in host else f"[{host}]")
    app = create_app(
        queue,
        read_only=read_only,
        password=password,
        allowed_hosts=allowed_hosts,
        unsafe_decode_pickles=decode_pickles,
    )
    mode = " (read-only)" if read_only else ""
    scheme = "https" if certfile else "http"
    print(f"[taskito] Dashboard{mode} on {scheme}://{host}:{port}/ (database {queue.db_path})", flush=True)
    uvicorn.run(
        app, host=host, port=port, log_level="warning", ssl_certfile=certfile, ssl_keyfile=keyfile
    )

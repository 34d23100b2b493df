"""The dashboard's pages, JSON endpoint, actions and ``/metrics``.

Actions (retry a dead letter, cancel a pending job, pause or resume a queue, purge dead
letters) are two steps: a GET page that says what will happen, and the POST it submits,
which must carry the session's CSRF token and is refused (403) in read-only mode."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from taskito.dashboard import views

PAGE_SIZE = 50
# Only our own script and stylesheet run; no framing (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

# action -> (the form field it needs, what the confirm page says, the button text)
ACTIONS: dict[str, tuple[str | None, str, str]] = {
    "retry": ("dead_id", "Enqueue dead letter {target} again as a new job (full retries).", "Retry"),
    "cancel": ("job_id", "Cancel pending job {target}. It will never run.", "Cancel job"),
    "pause": ("queue", "Pause queue {target}: no worker starts its jobs until it is resumed.", "Pause"),
    "resume": ("queue", "Resume queue {target}: workers start its jobs again.", "Resume"),
    "purge": (None, "Delete every dead letter. They cannot be retried afterwards.", "Purge dead letters"),
}


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def _checked_form(request: Request) -> Any:
    """The POSTed form, once its CSRF token matches the session's (else 403)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not expected or not isinstance(sent, str) or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    state = request.app.state
    flash = request.session.pop("flash", None)
    context.update(
        read_only=state.read_only,
        csrf_token=csrf_token(request),
        flash=flash,
        logged_in=bool(state.password) and state.sessions.is_logged_in(request.session),
        db_path=state.queue.db_path,
    )
    response = state.templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


async def overview(request: Request) -> Response:
    data = await run_in_threadpool(request.app.state.overview.get)
    return _render(request, "overview.html", data=data, statuses=views.STATUSES)


async def api_overview(request: Request) -> Response:
    data = await run_in_threadpool(request.app.state.overview.get)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


async def api_scaler(request: Request) -> Response:
    """``taskito.scaler.build_scaler_response`` behind the dashboard's own login."""
    from taskito.scaler import build_scaler_response

    name = request.query_params.get("queue") or None
    data = await run_in_threadpool(build_scaler_response, request.app.state.queue, name)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in views.JOB_STATUSES:
        raise HTTPException(400, f"unknown status {status!r}")
    return {"status": status, "queue": q.get("queue") or None, "task_name": q.get("task") or None}


async def jobs(request: Request) -> Response:
    queue = request.app.state.queue
    filters = _filters(request)
    after = request.query_params.get("after") or None
    try:
        page = await run_in_threadpool(queue.list_jobs_after, limit=PAGE_SIZE, after=after, **filters)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    rows = [j._snapshot for j in page]
    kept = {"status": filters["status"], "queue": filters["queue"], "task": filters["task_name"]}
    kept = {k: v for k, v in kept.items() if v}
    next_url = "/jobs?" + urlencode({**kept, "after": page.next_cursor}) if page.next_cursor else None
    first_url = "/jobs?" + urlencode(kept) if after else None
    known_queues = await run_in_threadpool(request.app.state.queue_names.get)
    return _render(
        request,
        "jobs.html",
        rows=rows,
        filters=kept,
        statuses=views.JOB_STATUSES,
        queues=known_queues,
        next_url=next_url,
        first_url=first_url,
    )


async def job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    state = request.app.state
    detail = await run_in_threadpool(views.job_detail, state.queue, job_id, state.decode_pickles)
    if detail is None:
        return _render(request, "missing.html", status_code=404, what=f"job {job_id}")
    return _render(request, "job.html", **detail)


async def dead(request: Request) -> Response:
    queue = request.app.state.queue
    after = request.query_params.get("after") or None
    try:
        page = await run_in_threadpool(queue.dead_letters_after, limit=PAGE_SIZE, after=after)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    next_url = "/dead?" + urlencode({"after": page.next_cursor}) if page.next_cursor else None
    return _render(
        request, "dead.html", rows=list(page), next_url=next_url, first_url="/dead" if after else None
    )


def _action(request: Request) -> tuple[str, str | None, str, str]:
    name = request.path_params["action"]
    if name not in ACTIONS:
        raise HTTPException(404, f"no action {name!r}")
    if request.app.state.read_only:
        raise HTTPException(403, "the dashboard is read-only")
    field, text, button = ACTIONS[name]
    return name, field, text, button


async def confirm(request: Request) -> Response:
    name, field, text, button = _action(request)
    target = request.query_params.get(field, "") if field else ""
    if field and not target:
        raise HTTPException(400, f"missing {field}")
    return _render(
        request,
        "confirm.html",
        action=name,
        field=field,
        target=target,
        text=text.format(target=target),
        button=button,
    )


def _perform(queue: Any, name: str, target: str) -> tuple[str, str]:
    """Runs an action; returns (message, where to go next)."""
    if name == "retry":
        new_id = queue.retry_dead(target)
        return f"Dead letter {target} enqueued again as job {new_id}.", f"/jobs/{new_id}"
    if name == "cancel":
        done = queue.cancel_job(target)
        msg = f"Cancelled job {target}." if done else f"Job {target} was not cancelled: it is not pending."
        return msg, f"/jobs/{target}"
    if name == "pause":
        queue.pause(target)
        return f"Paused queue {target}.", "/"
    if name == "resume":
        queue.resume(target)
        return f"Resumed queue {target}.", "/"
    n = queue.purge_dead(older_than=0)
    return f"Purged {n} dead letter(s).", "/dead"


async def act(request: Request) -> Response:
    name, field, _text, _button = _action(request)
    form = await _checked_form(request)
    target = str(form.get(field, "")) if field else ""
    if field and not target:
        raise HTTPException(400, f"missing {field}")
    try:
        message, goto = await run_in_threadpool(_perform, request.app.state.queue, name, target)
    except (KeyError, ValueError, LookupError) as exc:
        message, goto = f"{ACTIONS[name][2]} failed: {exc}", "/"
    except Exception as exc:  # e.g. a dead letter already retried by someone else
        message, goto = f"{ACTIONS[name][2]} failed: {type(exc).__name__}: {exc}", "/"
    request.session["flash"] = message
    return RedirectResponse(goto, status_code=303)


async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    if m is None:
        return PlainTextResponse("metrics need prometheus_client: pip install 'taskito[metrics]'", 404)
    from taskito.metrics import CONTENT_TYPE

    body = await run_in_threadpool(m.exposition)
    return Response(body, media_type=CONTENT_TYPE)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login(request: Request) -> Response:
    password = request.app.state.password
    if not password:
        return RedirectResponse("/", status_code=303)
    nxt = _safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return _render(request, "login.html", next=nxt, error=None)
    form = await _checked_form(request)
    given = str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    throttle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client)
    if wait > 0:
        # Refused without checking the password, so guessing goes no faster.
        response = _render(
            request, "login.html", status_code=429, next=nxt, error="Too many failed logins: try again later."
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if secrets.compare_digest(given.encode(), password.encode()):
        throttle.succeeded(client)
        request.app.state.sessions.log_in(request.session)
        request.session["csrf"] = secrets.token_urlsafe(32)  # a fresh token once logged in
        return RedirectResponse(nxt, status_code=303)
    throttle.failed(client)
    return _render(request, "login.html", status_code=401, next=nxt, error="Wrong password.")


async def logout(request: Request) -> Response:
    await _checked_form(request)
    state = request.app.state
    state.sessions.log_out(request.session, state.session_max_age)
    return RedirectResponse("/login", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/", overview),
        Route("/api/overview", api_overview),
        Route("/api/scaler", api_scaler),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", job),
        Route("/dead", dead),
        Route("/actions/{action}", confirm, methods=["GET"]),
        Route("/actions/{action}", act, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]

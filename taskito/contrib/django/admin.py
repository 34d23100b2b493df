"""Admin pages of the queue: an overview, jobs (filtered by status, queue and task; paged),
a job's detail and the dead letters (retry). Viewing needs ``taskito.view_jobs``, retrying
``taskito.retry_dead_letters`` (superusers have both).

Either ``register_taskito_admin()`` (adds the pages to ``django.contrib.admin.site``, or to
the site given) or ``TaskitoAdminSite`` (an ``AdminSite`` with them). URL names, in the
site's namespace: ``taskito_dashboard``, ``taskito_jobs``, ``taskito_job_detail``,
``taskito_dead_letters``.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from taskito.contrib.django.settings import get_queue, setting

__all__ = ["TaskitoAdminSite", "register_taskito_admin", "taskito_urls"]

_STATUSES = ("pending", "running", "complete", "failed", "dead", "cancelled")
_VIEW = "taskito.view_jobs"
_RETRY = "taskito.retry_dead_letters"


def _when(ms: Any) -> Any:
    if not ms:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


class _Views:
    def __init__(self, site: admin.AdminSite) -> None:
        self.site = site

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        context = dict(self.site.each_context(request))
        context.update(
            title=title,
            taskito_title=setting("TASKITO_ADMIN_TITLE"),
            taskito_header=setting("TASKITO_ADMIN_HEADER"),
            site_ns=self.site.name,
            **extra,
        )
        return context

    def _need(self, request: HttpRequest, perm: str) -> None:
        if not request.user.has_perm(perm):
            raise PermissionDenied(f"needs the {perm} permission")

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        self._need(request, _VIEW)
        info = get_queue().info()
        return TemplateResponse(
            request, "taskito/admin/dashboard.html",
            self._context(request, setting("TASKITO_ADMIN_TITLE"), info=info,
                          queues=sorted(info["queues"].items())),
        )  # fmt: skip

    def jobs(self, request: HttpRequest) -> HttpResponse:
        self._need(request, _VIEW)
        status = request.GET.get("status") or None
        if status is not None and status not in _STATUSES:
            status = None
        queue_name = request.GET.get("queue") or None
        task_name = request.GET.get("task") or None
        per_page = int(setting("TASKITO_ADMIN_PER_PAGE"))
        try:
            page_number = max(1, int(request.GET.get("page", "1")))
        except ValueError:
            page_number = 1
        queue = get_queue()
        # One row past the page tells whether a next page exists.
        rows = queue.list_jobs(status=status, queue=queue_name, task_name=task_name,
                               limit=per_page + 1, offset=(page_number - 1) * per_page)  # fmt: skip
        jobs = [dict(j.to_dict(), created=_when(j.to_dict().get("created_at"))) for j in rows[:per_page]]
        return TemplateResponse(
            request, "taskito/admin/jobs.html",
            self._context(request, "Jobs", jobs=jobs, statuses=_STATUSES, status=status or "",
                          queue_filter=queue_name or "", task_filter=task_name or "",
                          page=page_number, has_next=len(rows) > per_page),
        )  # fmt: skip

    def job_detail(self, request: HttpRequest, job_id: str) -> HttpResponse:
        self._need(request, _VIEW)
        queue = get_queue()
        job = queue.get_job(job_id)
        if job is None:
            raise Http404(f"no job {job_id}")
        data = job.to_dict()
        for key in ("created_at", "scheduled_at", "started_at", "completed_at"):
            data[key.replace("_at", "")] = _when(data.get(key))
        return TemplateResponse(
            request, "taskito/admin/job_detail.html",
            self._context(request, f"Job {job_id}", job=data, errors=queue.job_errors(job_id),
                          logs=queue.task_logs(job_id)),
        )  # fmt: skip

    def dead_letters(self, request: HttpRequest) -> HttpResponse:
        self._need(request, _VIEW)
        queue = get_queue()
        if request.method == "POST":
            self._need(request, _RETRY)
            if request.POST.get("action") != "retry" or not request.POST.get("dead_id"):
                messages.error(request, "unknown action")
            else:
                try:
                    new_id = queue.retry_dead(request.POST["dead_id"])
                except Exception as exc:
                    messages.error(request, f"retry failed: {exc}")
                else:
                    messages.success(request, f"retried as job {new_id}")
            return HttpResponseRedirect(reverse(f"{self.site.name}:taskito_dead_letters"))
        per_page = int(setting("TASKITO_ADMIN_PER_PAGE"))
        paginator = Paginator(queue.dead_letters(limit=10_000), per_page)
        page = paginator.get_page(request.GET.get("page"))
        return TemplateResponse(
            request, "taskito/admin/dead_letters.html",
            self._context(request, "Dead letters", page=page,
                          can_retry=request.user.has_perm(_RETRY)),
        )  # fmt: skip


def taskito_urls(site: admin.AdminSite) -> list[Any]:
    """The pages' URL patterns, each wrapped by ``site.admin_view`` (staff login)."""
    views = _Views(site)
    wrap: Callable[[Any], Any] = site.admin_view
    return [
        path("taskito/", wrap(views.dashboard), name="taskito_dashboard"),
        path("taskito/jobs/", wrap(views.jobs), name="taskito_jobs"),
        path("taskito/jobs/<str:job_id>/", wrap(views.job_detail), name="taskito_job_detail"),
        path("taskito/dead-letters/", wrap(views.dead_letters), name="taskito_dead_letters"),
    ]


class TaskitoAdminSite(admin.AdminSite):
    """An admin site with the taskito pages."""

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self.site_title = setting("TASKITO_ADMIN_TITLE")
        self.site_header = setting("TASKITO_ADMIN_HEADER")

    def get_urls(self) -> list[Any]:
        return taskito_urls(self) + super().get_urls()


def register_taskito_admin(site: admin.AdminSite | None = None) -> admin.AdminSite:
    """Adds the taskito pages to ``site`` (default ``django.contrib.admin.site``); call it
    before the site's URLs are included."""
    site = site if site is not None else admin.site
    if getattr(site, "_taskito_registered", False):
        return site
    original = site.get_urls

    def get_urls() -> list[Any]:
        return taskito_urls(site) + original()

    site.get_urls = get_urls  # type: ignore[method-assign]
    site._taskito_registered = True  # type: ignore[attr-defined]
    return site

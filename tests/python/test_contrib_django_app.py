"""The Django app without ``django.tasks`` (Django 5.2, the oldest supported): the queue from
the ``TASKITO_*`` settings, tasks found in an app's ``tasks`` module, the commands, the
system checks and the admin pages. (The ``django.tasks`` backend, Django >= 6, has its own
test project: tests/django_project.)"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

HERE = Path(__file__).resolve().parent
DB_DIR = tempfile.mkdtemp(prefix="taskito-django-app-")

if not settings.configured:
    sys.path.insert(0, str(HERE))
    settings.configure(
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="django52_app.urls",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "taskito.contrib.django",
            "django52_app",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        TASKITO_DB_PATH=f"{DB_DIR}/q.db",
        TASKITO_DEFAULT_RETRY=0,
        TASKITO_WORKERS=1,
        TASKITO_ADMIN_PER_PAGE=2,
    )
    django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402

from taskito.contrib.django.checks import check_settings  # noqa: E402
from taskito.contrib.django.settings import get_queue  # noqa: E402


@pytest.fixture(scope="module")
def admin_client():
    call_command("migrate", verbosity=0)
    User.objects.create_superuser("root", "r@example.org", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def test_queue_from_settings_and_autodiscovered_tasks():
    queue = get_queue()
    assert queue is get_queue()
    assert queue.db_path.endswith("q.db") and queue.default_retry == 0
    assert "django52_app.tasks.ping" in queue.tasks


def test_info_command_and_checks():
    get_queue().enqueue("django52_app.tasks.ping", args=(1,), queue="reports")
    out = io.StringIO()
    call_command("taskito_info", stdout=out)
    assert "reports" in out.getvalue()
    assert check_settings() == []
    with override_settings(TASKITO_DASHBOARD_PORT=-1, TASKITO_BACKEND="redis"):
        assert sorted(e.id for e in check_settings()) == ["taskito.E101", "taskito.E104"]


def test_admin_pages_paging_and_dead_letter_retry(admin_client):
    queue = get_queue()
    from django52_app.tasks import ping

    jobs = [ping.delay(i) for i in range(3)]
    bad = ping.delay(-1)
    queue.run_worker(run_once=True)
    assert bad.status == "dead"
    first = admin_client.get(reverse("admin:taskito_jobs"), {"status": "complete"})
    assert first.status_code == 200
    assert first.content.decode().count('class="job"') == 2
    assert "next</a>" in first.content.decode()
    second = admin_client.get(reverse("admin:taskito_jobs"), {"status": "complete", "page": 2})
    assert second.content.decode().count('class="job"') >= 1
    detail = admin_client.get(reverse("admin:taskito_job_detail", args=[jobs[0].id]))
    assert jobs[0].id in detail.content.decode()
    dead = queue.dead_letters()
    page = admin_client.get(reverse("admin:taskito_dead_letters"))
    assert dead[0]["id"] in page.content.decode()
    retry = {"action": "retry", "dead_id": dead[0]["id"]}
    done = admin_client.post(reverse("admin:taskito_dead_letters"), retry)
    assert done.status_code == 302
    assert queue.dead_letters() == []
    anonymous = Client().get(reverse("admin:taskito_jobs"))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]

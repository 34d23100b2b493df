"""``django.tasks`` on taskito, in one file (Django >= 6.0): the backend is set in
``TASKS``, the task is declared with Django's own decorator, a worker runs it and the
result is read back. In a project, ``manage.py taskito_worker`` is the worker."""

import tempfile

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["taskito.contrib.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
    TASKS={
        "default": {
            "BACKEND": "taskito.contrib.django.TaskitoBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"db_path": f"{tempfile.mkdtemp()}/tasks.db"},
        }
    },
)
django.setup()

from django.db import transaction  # noqa: E402
from django.tasks import default_task_backend, task  # noqa: E402


@task()
def welcome(email: str) -> str:
    return f"welcome mail sent to {email}"


if __name__ == "__main__":
    with transaction.atomic():
        result = welcome.enqueue("ann@example.org")  # stored when the transaction commits
    default_task_backend.queue.run_worker(run_once=True)
    result.refresh()
    print(result.status, result.return_value, "attempts:", result.attempts)

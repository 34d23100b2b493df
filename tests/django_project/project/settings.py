"""Settings of the test project. The queue's store comes from the environment that
``runtests.py`` sets: a SQLite file, or a PostgreSQL schema of ``TASKITO_TEST_PG_URL``."""

import os

BASE = os.environ.get("DEMO_DIR") or os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "project.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "taskito.contrib.django",
    "demo",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
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
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE, "django.sqlite3")}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("DEMO_STORE") == "postgres":
    TASKITO_BACKEND = "postgres"
    TASKITO_DB_URL = os.environ["TASKITO_TEST_PG_URL"]
    TASKITO_SCHEMA = os.environ["DEMO_SCHEMA"]
else:
    TASKITO_DB_PATH = os.path.join(BASE, "taskito.sqlite3")
TASKITO_DEFAULT_RETRY = 0
TASKITO_WORKERS = 2
TASKITO_ADMIN_PER_PAGE = 5

TASKS = {
    "default": {
        "BACKEND": "taskito.contrib.django.TaskitoBackend",
        "QUEUES": ["default", "urgent"],
    }
}

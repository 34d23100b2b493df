"""Runs the Django test project's tests with Django's test runner: on a SQLite store, then,
if ``TASKITO_TEST_PG_URL`` is set, on a PostgreSQL schema of it. Needs Django >= 6.0."""

import os
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def run(store: str) -> int:
    with tempfile.TemporaryDirectory(prefix="taskito-django-") as tmp:
        env = dict(os.environ, DEMO_DIR=tmp, DEMO_STORE=store, DJANGO_SETTINGS_MODULE="project.settings",
                   DEMO_SCHEMA=f"django_{uuid.uuid4().hex[:10]}")  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")])
        print(f"== Django tests, queue store: {store}", flush=True)
        return subprocess.call([sys.executable, os.path.join(HERE, "manage.py"), "test", "demo", "-v", "2"],
                               env=env, cwd=HERE)  # fmt: skip


if __name__ == "__main__":
    stores = ["sqlite"] + (["postgres"] if os.environ.get("TASKITO_TEST_PG_URL") else [])
    codes = [run(store) for store in stores]
    sys.exit(max(codes))

"""Every example of the integration and typing docs runs as written: each page's code block
is the file under ``examples/integrations/``, and each file runs and prints what the page
says. (The Django example needs Django >= 6; the Django test project runs it.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

EXAMPLES = ROOT / "examples" / "integrations"
PAGES = {
    "otel_tracing.py": "docs/integrations/opentelemetry.md",
    "sentry_reporting.py": "docs/integrations/sentry.md",
    "fastapi_app.py": "docs/integrations/fastapi.md",
    "flask_app.py": "docs/integrations/flask.md",
    "typed_tasks.py": "docs/guides/typing.md",
    "django_tasks.py": "docs/integrations/django.md",
}
EXPECTED = {
    "otel_tracing.py": [
        r"result: cat\.png@320",
        r"PRODUCER +taskito\.enqueue",
        r"CONSUMER +taskito\.execute",
    ],
    "sentry_reporting.py": [
        r"event: RuntimeError card declined for order 42",
        r"'taskito\.final_failure': True",
    ],
    "fastapi_app.py": [r"'result': 5", r"'status': 'complete'"],
    "flask_app.py": [r"'result': 'hello ann'"],
    "typed_tasks.py": [r"total: 7\.5 shout: HI"],
}


def code_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("example", sorted(PAGES))
def test_page_shows_the_example_file(example):
    blocks = code_blocks(ROOT / PAGES[example])
    assert (EXAMPLES / example).read_text() in blocks


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(example, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / example)], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for pattern in EXPECTED[example]:
        assert re.search(pattern, done.stdout), (pattern, done.stdout)

"""The programs of docs/guides/retries.md and docs/guides/events-webhooks.md (also under
examples/) run as written."""

from __future__ import annotations

import os
import subprocess
import sys

from cli_support import ROOT


def _run(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_webhooks_example() -> None:
    out = _run("webhooks.py")
    assert "result: 320" in out
    assert "webhook: job.completed True signed" in out
    assert "event: job.completed" in out


def test_retries_example() -> None:
    out = _run("retries.py")
    assert "fetched https://example.com after 3 attempts" in out
    assert "validate: dead - dead letters: 1" in out
    assert "breakers: [('call_partner', 'closed')]" in out
    assert "stopped early after" in out


def test_the_docs_show_the_examples_verbatim() -> None:
    for page, example in (("retries.md", "retries.py"), ("events-webhooks.md", "webhooks.py")):
        text = (ROOT / "docs" / "guides" / page).read_text()
        assert (ROOT / "examples" / example).read_text().strip() in text, page

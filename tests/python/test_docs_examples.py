"""Every code example of the documentation runs as written.

The site includes its Python examples from docs/examples/*.py; each runs here as a program of
its own, in a fresh folder, and what it prints is checked. The quickstart's commands and the
README's example run too, so a renamed argument fails this suite before it misleads a reader.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
TIMEOUT = 90

# What each example must print (substrings of its stdout, in order). Every file in
# docs/examples has an entry, so a new example cannot go unchecked.
EXPECTED: dict[str, list[str]] = {
    "tasks.py": [],
    "enqueue.py": ["enqueued", "3 pending"],
    "results.py": [],
    "first_job.py": ["pending", "complete cat.png@200", "dog.png@100"],
    "enqueue_options.py": ["Hi -> ann@example.com Welcome -> cy@example.com", "pending"],
    "retries.py": [
        "1\n", "0 ", "1 ", "2 ", "MaxRetriesExceededError ConnectionError True False", "1 dead letter",
    ],
    "run_once.py": ["1\n", "False"],
    "worker_identity.py": ["billing-1-", "1\n", "billing-1"],
    "hooks.py": [],
    "middleware_timing.py": [
        "after_task resize cat.png None", "resize took", 'cat.png {"enqueued_by": "web"}',
    ],
    "pools.py": ["4950 dead TaskTimeoutError"],
    "several_processes.py": ["2646700 computed by", "[0, 0]"],
    "postgres_queue.py": ["5 0"],
    "periodic_jobs.py": ["nightly 0 30 2 * * * Europe/Paris False", "True beat"],
    "dedup.py": ["one job per key"],
    "flow_control.py": ["emails", "max_pending"],
    "dependencies.py": ["pending True", "report daily dead cancelled"],
    "canvas.py": ["10 6", "[1, 5, 4] [3, 7] [2, 4]"],
    "cancel_running.py": ["True", "cancelled"],
    "context_notes.py": ["__main__.resize default 0", '100 {"source": "upload"}', "{'customer': 'acme'"],
    "topics.py": ["['welcome 42', 'crm 42']"],
    "job_events.py": ["[('JOB_COMPLETED', '__main__.ping', 'default')]"],
    "replay_expiry.py": ["hello ada cancelled", "True hello ada {'why': 'demo'}"],
    "testing_mode.py": ["[3, None, 2, 12]", "3 nope", "dead 3", "0"],
    "in_memory.py": ["42"],
    "signed.py": ["hello ada 0o600"],
    "codecs_example.py": ["6000 6"],
    "serializer_choice.py": ["datetime tuple list function tuple"],
    "retention.py": ["report for mon", "0\n3\n", "complete"],
    "logging_setup.py": [],
    "task_logs.py": ["INFO starting", "WARNING 2 rows skipped", "1"],
    "settings_env.py": ["True ran", "TASKITO_WORKERS"],
    "execute_job.py": ["{'order': 7, 'charged': 3}"],
    "inspection.py": ["True", "'dead': 1", "1\n", "[True]", "pending 0", "0"],
    "pausing.py": ["True ['emails']", "0 pending", "True", "1 complete"],
    "paging.py": ["5\n", "0 None", "2"],
    "pytest_fixture.py": ["2 passed"],
    "metrics_serve.py": ["taskito_jobs_processed_total{", 'outcome="complete"'],
    "asyncio_api.py": ["42", "1"],
    "migration_celery.py": ["5 12 12 42"],
    "migration_rq.py": ["2 4 4 words pending", "complete"],
    "migration_huey.py": ["3\n", "3 9", "3"],
}

# What an example must write on stderr (the logging examples log there).
EXPECTED_STDERR: dict[str, list[str]] = {
    "hooks.py": ["worker starting", "starting charge(6, 12)", "charge returned 12", "worker stopped"],
    "logging_setup.py": ["taskito"],
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_") and k != "PYTHONPATH"}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _assert_in_order(text: str, parts: list[str], what: str) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{what}: {part!r} not found after offset {at} in:\n{text}"
        at = found + len(part)


def test_every_example_has_expectations() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert files, "no examples found"
    assert sorted(EXPECTED) == files


def test_every_example_is_on_a_page_and_every_include_exists() -> None:
    included: set[str] = set()
    for page in DOCS.rglob("*.md"):
        for ref in re.findall(r'--8<--\s+"([^"]+)"', page.read_text()):
            path = ROOT / ref
            assert path.is_file(), f"{page.relative_to(ROOT)} includes missing {ref}"
            included.add(path.name)
    assert set(EXPECTED) - included == set(), "examples that no page shows"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    env = _env()
    if name == "postgres_queue.py":
        url = os.environ.get("TASKITO_TEST_PG_URL")
        if not url:
            pytest.skip("no PostgreSQL server: set TASKITO_TEST_PG_URL (see tests/pg_server.sh)")
        env["TASKITO_DB_URL"] = url
    if name == "pools.py" and not sys.platform.startswith("linux"):
        pytest.skip("the prefork pool runs on Linux only")
    for example in EXAMPLES.glob("*.py"):  # examples import their siblings (tasks.py)
        shutil.copy(example, tmp_path / example.name)
    proc = _run([sys.executable, name], tmp_path, env)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    _assert_in_order(proc.stdout, EXPECTED[name], name)
    _assert_in_order(proc.stderr, EXPECTED_STDERR.get(name, []), f"{name} (stderr)")


def test_quickstart_commands(tmp_path: Path) -> None:
    """The quickstart's steps: enqueue from one process, a CLI worker on real jobs, read back."""
    for name in ("tasks.py", "enqueue.py", "results.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    env = _env()
    enqueued = _run([sys.executable, "enqueue.py"], tmp_path, env)
    assert enqueued.returncode == 0, enqueued.stderr
    assert "3 pending" in enqueued.stdout
    worker_cmd = [sys.executable, "-m", "taskito", "worker", "--app", "tasks:queue", "--run-once"]
    worker = _run(worker_cmd, tmp_path, env)
    assert worker.returncode == 0, worker.stderr
    _assert_in_order(worker.stdout, ["tasks.resize", "Processed 3 job(s).", "Worker stopped."], "worker")
    info = _run([sys.executable, "-m", "taskito", "info", "--app", "tasks:queue"], tmp_path, env)
    assert info.returncode == 0, info.stderr
    _assert_in_order(info.stdout, ["pending 0", "completed 3"], "info")
    results = _run([sys.executable, "results.py"], tmp_path, env)
    assert results.returncode == 0, results.stderr
    assert results.stdout.count(" complete photo-") == 3, results.stdout


def test_readme_example(tmp_path: Path) -> None:
    """The README's example is a complete program; it runs and prints what the README says."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "README has no python block under '## Example'"
    (tmp_path / "example.py").write_text(code.group(1))
    proc = _run([sys.executable, "example.py"], tmp_path, _env())
    assert proc.returncode == 0, proc.stderr
    for comment in re.findall(r"print\(.*\)\s+# (.+)", code.group(1)):
        assert comment.split(":")[0].strip() in proc.stdout, (comment, proc.stdout)

"""Smoke tests of an installed taskito: run against the wheel in a fresh environment with no
Rust toolchain (see .ci/run), they check that it imports, carries its stubs and license, and
runs real jobs through the CLI and in-process workers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

import taskito
from taskito import Queue

PACKAGE = Path(taskito.__file__).resolve().parent


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKITO_") and k != "PYTHONPATH"}


def test_imported_from_an_installed_package() -> None:
    if os.environ.get("TASKITO_SMOKE_INSTALLED") != "1":
        pytest.skip("set TASKITO_SMOKE_INSTALLED=1 when testing an installed wheel")
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    platlib = Path(sysconfig.get_paths()["platlib"]).resolve()
    assert PACKAGE.parent in (purelib, platlib), f"taskito imported from {PACKAGE}, not site-packages"
    assert shutil.which("cargo") is None and shutil.which("rustc") is None, "a Rust toolchain is on PATH"


def test_extension_is_built_for_the_stable_abi() -> None:
    names = [p.name for p in PACKAGE.glob("_taskito*") if p.suffix in (".so", ".pyd")]
    assert len(names) == 1, names
    if sys.platform != "win32":
        assert names[0] == "_taskito.abi3.so", names


def test_stubs_and_license_ship() -> None:
    assert (PACKAGE / "_taskito.pyi").is_file()
    assert (PACKAGE / "py.typed").is_file()
    dist = metadata.distribution("taskito")
    assert dist.version == taskito.__version__
    files = [str(f) for f in dist.files or []]
    assert any(f.endswith("LICENSE") for f in files), files
    assert "MIT" in (dist.metadata.get("License-Expression") or dist.metadata.get("License") or "")


def test_enqueue_and_run_in_process(tmp_path: Path) -> None:
    queue = Queue(db_path=str(tmp_path / "smoke.db"))

    @queue.task()
    def add(a: int, b: int) -> int:
        return a + b

    jobs = [add.delay(i, i) for i in range(20)]
    assert queue.run_worker(run_once=True) == 20
    assert [job.result(timeout=10) for job in jobs] == [2 * i for i in range(20)]
    queue.close()


def test_cli_worker_runs_real_jobs(tmp_path: Path) -> None:
    (tmp_path / "smokeapp.py").write_text(textwrap.dedent("""
        from taskito import Queue

        queue = Queue(db_path="smoke.db")


        @queue.task()
        def square(x):
            return x * x
    """))
    enqueue = "import smokeapp as a; a.queue.enqueue_many(a.square.name, [(i,) for i in range(50)])"
    subprocess.run(
        [sys.executable, "-c", enqueue],
        cwd=tmp_path, env=_env(), check=True, timeout=60,
    )
    worker = subprocess.run(
        [sys.executable, "-m", "taskito", "worker", "--app", "smokeapp:queue", "--run-once"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    assert "Processed 50 job(s)." in worker.stdout
    info = subprocess.run(
        ["taskito", "info", "--app", "smokeapp:queue", "--json"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["stats"]["completed"] == 50, info.stdout

"""The systems under test and the interpreter each one runs in.

Every system gets its own venv under benches/.venvs/, because ours and
taskito 0.22 share the import name `taskito`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import REPO, VENVS, WORK


@dataclass(frozen=True)
class System:
    key: str
    label: str
    driver: str
    requirement: str | None  # pip requirement of a peer; None for ours


SYSTEMS = {
    "huey": System("huey", "huey 3.5.4", "huey_driver.py", "huey==3.5.4"),
    "taskito022": System("taskito022", "taskito 0.22", "taskito_driver.py", "taskito==0.22.0"),
    "ours": System("ours", "ours", "taskito_driver.py", None),
    "celery": System("celery", "Celery 5.7 (Redis)", "celery_driver.py", "celery[redis]==5.7.0"),
    "rq": System("rq", "RQ 2.12 (Redis)", "rq_driver.py", "rq==2.12.0"),
}
PEERS = ("huey", "taskito022", "celery", "rq")
# Peers that need a local redis-server (started by the harness on loopback).
NEEDS_REDIS = ("celery", "rq")


class SetupError(Exception):
    """A venv could not be made; the message says where the log is."""


def _run_logged(cmd: list[str], log: Path, env: dict | None = None) -> None:
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        raise SetupError(f"`{' '.join(cmd[-3:])}` failed (exit {code}); see {log}")


def _venv(key: str, log: Path) -> Path:
    home = VENVS / key
    python = home / "bin" / "python"
    if not python.exists():
        _run_logged([sys.executable, "-m", "venv", str(home)], log)
        _run_logged([str(python), "-m", "pip", "install", "-q", "-U", "pip"], log)
    return python


def _stamp_ok(key: str, stamp: str) -> bool:
    path = VENVS / key / "bench-stamp"
    return path.exists() and path.read_text() == stamp


def _write_stamp(key: str, stamp: str) -> None:
    (VENVS / key / "bench-stamp").write_text(stamp)


def source_fingerprint() -> str:
    """Changes whenever a file that goes into our wheel changes."""
    digest = hashlib.sha1()
    paths = [REPO / name for name in ("pyproject.toml", "Cargo.toml", "Cargo.lock")]
    for folder in ("rust", "taskito"):
        paths += sorted(p for p in (REPO / folder).rglob("*") if p.is_file())
    for path in paths:
        if not path.exists() or "__pycache__" in path.parts or path.suffix in (".so", ".pyc"):
            continue
        info = path.stat()
        digest.update(f"{path.relative_to(REPO)}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def prepare_peer(system: System, log: Path, say) -> Path:
    python = _venv(system.key, log)
    if not _stamp_ok(system.key, system.requirement):
        say(f"installing {system.requirement} into benches/.venvs/{system.key}")
        _run_logged([str(python), "-m", "pip", "install", "-q", system.requirement], log)
        _write_stamp(system.key, system.requirement)
    return python


def prepare_ours(log: Path, rebuild: bool, say) -> Path:
    """pip install the repo (maturin release build) into benches/.venvs/ours."""
    if not (REPO / "pyproject.toml").exists():
        raise SetupError("no pyproject.toml in the repo yet, nothing to build")
    python = _venv("ours", log)
    stamp = source_fingerprint()
    if rebuild or not _stamp_ok("ours", stamp):
        say("building ours: pip install of the repo into benches/.venvs/ours (release build)")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        # A target dir of its own: incremental, and no lock shared with dev builds.
        env["CARGO_TARGET_DIR"] = str(VENVS / "ours-target")
        _run_logged([str(python), "-m", "pip", "install", "-q", "--force-reinstall", str(REPO)], log, env)
        _write_stamp("ours", stamp)
    return python


def prepare(keys: list[str], ours_python: str | None, rebuild: bool, say) -> dict:
    """Return {key: python path or SetupError} for every selected system."""
    VENVS.mkdir(exist_ok=True)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    ready: dict = {}
    for key in keys:
        system = SYSTEMS[key]
        log = WORK / "logs" / f"setup-{key}.log"
        log.unlink(missing_ok=True)
        try:
            if key in NEEDS_REDIS and not shutil.which("redis-server"):
                raise SetupError("no redis-server on PATH (apt-get install -y redis-server)")
            if key == "ours" and ours_python:
                ready[key] = Path(ours_python)
            elif key == "ours":
                ready[key] = prepare_ours(log, rebuild, say)
            else:
                ready[key] = prepare_peer(system, log, say)
        except SetupError as exc:
            ready[key] = exc
    return ready

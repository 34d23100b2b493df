"""Run one driver invocation: fresh process, fresh temp dir, one JSON line back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness import DRIVERS, WORK

RESULT_PREFIX = "BENCH_RESULT "


def driver_env(keep_pythonpath: bool) -> dict:
    """The drivers' directory on PYTHONPATH; the caller's kept only if asked."""
    env = dict(os.environ)
    inherited = env.pop("PYTHONPATH", "") if not keep_pythonpath else env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(DRIVERS), inherited) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _flags(args: dict) -> list[str]:
    flags = []
    for name, value in args.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def run_driver(
    python: Path,
    driver: str,
    system: str,
    workload: str,
    args: dict,
    timeout: float,
    keep_pythonpath: bool,
    log_name: str,
) -> dict:
    """Returns {"metrics": {...}}, {"na": reason} or {"error": message}."""
    WORK.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{workload}-{system}-", dir=WORK))
    # The driver's own waits give up a little before the harness kills it.
    cmd = [
        str(python),
        str(DRIVERS / driver),
        workload,
        "--workdir",
        str(workdir),
        "--system",
        system,
        "--timeout",
        str(max(10, timeout - 30)),
    ] + _flags(args)
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=driver_env(keep_pythonpath),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return {"error": f"cannot start {python}: {exc}"}
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\nharness: killed after {timeout:.0f}s\n".encode()
    finally:
        _kill_leftovers(proc.pid)
    elapsed = time.monotonic() - started
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    _keep_log(log_name, cmd, stdout, stderr, proc.returncode, elapsed)
    for name in ("worker.log", "cli.log"):
        if (workdir / name).exists():
            _append(log_name, f"--- {name} ---\n" + (workdir / name).read_text(errors="replace"))
    shutil.rmtree(workdir, ignore_errors=True)
    return _parse(stdout, stderr, proc.returncode, timeout)


def _parse(stdout: str, stderr: str, code: int, timeout: float) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        if code == -signal.SIGKILL:
            return {"error": f"timed out after {timeout:.0f}s"}
        return {"error": _last_error_line(stderr or stdout)}
    payload = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if "error" in payload or "na" in payload:
        return payload
    return {"metrics": payload}


def _kill_leftovers(pgid: int) -> None:
    """Worker processes a driver started die with it (same session)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _log_path(log_name: str) -> Path:
    folder = WORK / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{log_name}.log"


def _keep_log(log_name, cmd, stdout, stderr, code, elapsed) -> None:
    text = (
        f"$ {' '.join(cmd)}\nexit {code} after {elapsed:.1f}s\n"
        f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n"
    )
    _log_path(log_name).write_text(text)


def _append(log_name: str, text: str) -> None:
    with open(_log_path(log_name), "a") as handle:
        handle.write(text + "\n")

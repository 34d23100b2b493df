"""Facts about the machine and the tree, for the report header."""

from __future__ import annotations

import os
import platform
import subprocess

from harness import REPO


def _first(path: str, prefix: str) -> str:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if ":" in line else line
    except OSError:
        pass
    return "unknown"


def cpu_model() -> str:
    return _first("/proc/cpuinfo", "model name")


def memory_gib() -> str:
    total = _first("/proc/meminfo", "MemTotal")
    try:
        return f"{int(total.split()[0]) / 1024 / 1024:.1f} GiB"
    except (ValueError, IndexError):
        return "unknown"


def os_name() -> str:
    return _first("/etc/os-release", "PRETTY_NAME=").split("=", 1)[-1].strip('"')


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def git_revision() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    rev = head.stdout.strip() if head.returncode == 0 else "no commit yet"
    dirty = git("status", "--porcelain", "--", "rust", "taskito", "Cargo.toml", "pyproject.toml")
    return rev + (" + uncommitted changes" if dirty.stdout.strip() else "")


def facts() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": memory_gib(),
        "os": os_name(),
        "kernel": platform.release(),
        "harness python": platform.python_version(),
        "repo revision": git_revision(),
        "load average at start (1/5/15 min)": load_average(),
    }

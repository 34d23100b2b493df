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
                    return line[len(prefix) :].strip().lstrip(":").strip()
    except OSError:
        pass
    return "unknown"


def cpu_model() -> str:
    name = _first("/proc/cpuinfo", "model name")
    family, model = _first("/proc/cpuinfo", "cpu family"), _first("/proc/cpuinfo", "model\t")
    guest = " hypervisor" in f" {_first('/proc/cpuinfo', 'flags')} "
    return f"{name} (family {family}, model {model}{', virtual machine' if guest else ''})"


def memory_gib() -> str:
    total = _first("/proc/meminfo", "MemTotal")
    try:
        return f"{int(total.split()[0]) / 1024 / 1024:.1f} GiB"
    except (ValueError, IndexError):
        return "unknown"


def os_name() -> str:
    return _first("/etc/os-release", "PRETTY_NAME=").strip('"')


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
        "CPU": cpu_model(),
        "Cores (logical)": str(os.cpu_count()),
        "Memory": memory_gib(),
        "OS": os_name(),
        "Kernel": platform.release(),
        "Harness Python": platform.python_version(),
        "Repo revision": git_revision(),
        "Load average at start (1/5/15 min)": load_average(),
    }

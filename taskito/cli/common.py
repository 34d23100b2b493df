"""What every ``taskito`` subcommand shares: the errors that set the exit status, loading
the ``--app`` Queue, the ``--app``/``--json`` flags, and the table and time formats."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from taskito import _settings as settings
from taskito.app import Queue


class AppError(Exception):
    """A bad ``--app`` value."""


class CommandError(Exception):
    """An operation that cannot be done (unknown id, job failed); exits with status 1."""


def load_app(spec: str) -> Queue:
    """Imports ``module:attribute`` and checks that it is a Queue."""
    if ":" not in spec:
        raise AppError(f"--app must be module:attribute (e.g. myapp.tasks:queue), got {spec!r}")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AppError(f"--app must be module:attribute (e.g. myapp.tasks:queue), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except settings.EnvError:
        raise  # the Queue read a malformed TASKITO_* variable: report that, not the import
    except Exception as exc:
        raise AppError(f"could not import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AppError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Queue):
        raise AppError(f"{spec} is not a Queue instance (got {type(obj).__name__})")
    return obj


def load(args: argparse.Namespace) -> Queue:
    """The Queue named by ``--app``."""
    return load_app(args.app)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def ago(ms: int | None) -> str:
    if ms is None:
        return "-"
    return age(max(0.0, time.time() - ms / 1000)) + " ago"


def short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def app_flags(p: argparse.ArgumentParser, json_help: str = "print JSON for scripts") -> None:
    p.add_argument("--app", required=True, help="the Queue, as module:attribute")
    p.add_argument("--json", action="store_true", help=json_help)


def positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def not_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def env_help() -> str:
    return "\n".join(f"  {k:<26} {v}" for k, v in settings.ENV_VARS.items())

"""The ``taskito`` command: ``worker`` and ``info`` (more subcommands are added in ``_cli_ops``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any, Sequence

from taskito import _settings as settings
from taskito.app import Queue


class AppError(Exception):
    """A bad ``--app`` value."""


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


def _configure_logging(level: int | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[taskito] %(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("taskito")
    logger.addHandler(handler)
    logger.setLevel(level if level is not None else logging.INFO)
    logger.propagate = False


def _cmd_worker(args: argparse.Namespace) -> int:
    queue = load_app(args.app)
    queues = settings.check_queues(args.queues) if args.queues else None
    shown = ", ".join(queues) if queues else "all"
    print(f"[taskito] Starting worker (database {queue.db_path})", flush=True)
    print(f"[taskito] Registered tasks: {len(queue.tasks)}", flush=True)
    for name in sorted(queue.tasks):
        print(f"[taskito]   - {name}", flush=True)
    print(f"[taskito] Queues: {shown}", flush=True)
    try:
        n = queue.run_worker(
            queues=queues,
            workers=args.workers,
            worker_id=args.worker_id,
            run_once=args.run_once,
            max_jobs=args.max_jobs,
            drain_timeout=args.drain_timeout,
        )
    except KeyboardInterrupt:
        print("[taskito] Worker stopped (forced).", flush=True)
        return 130
    print(f"[taskito] Processed {n} job(s).", flush=True)
    print("[taskito] Worker stopped.", flush=True)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    queue = load_app(args.app)
    stats = queue.stats()
    for status in ("pending", "running", "completed", "failed", "dead", "cancelled"):
        print(f"{status} {stats[status]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {k:<26} {v}" for k, v in settings.ENV_VARS.items())
    parser = argparse.ArgumentParser(
        prog="taskito",
        description="taskito: run workers and inspect a taskito queue.",
        epilog="environment variables:\n" + env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser(
        "worker",
        help="run a worker",
        epilog="environment variables (a flag wins over its variable):\n" + env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("--app", required=True, help="the Queue to serve, as module:attribute")
    w.add_argument("--queues", help="comma-separated queues to serve (default: all)")
    w.add_argument("--workers", type=int, help="worker threads (0 = CPU count)")
    w.add_argument("--drain-timeout", type=float, help="seconds to wait for running jobs on shutdown")
    w.add_argument("--worker-id", help="this worker's id (default <hostname>-<pid>)")
    w.add_argument("--run-once", action="store_true", help="process what is ready now, then exit")
    w.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    w.set_defaults(func=_cmd_worker)

    i = sub.add_parser("info", help="job counts by status")
    i.add_argument("--app", required=True, help="the Queue, as module:attribute")
    i.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(settings.env_log_level())
        code = args.func(args)
    except AppError as exc:
        print(f"taskito: error: {exc}", file=sys.stderr)
        code = 2
    except ValueError as exc:
        print(f"taskito: error: {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads written off after a timeout may still be stuck in C code: leave without
    # interpreter teardown so they cannot hold the exit up.
    os._exit(code)

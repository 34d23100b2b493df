"""The ``taskito`` command: its parser, its entry point and ``worker``; ``info``, ``jobs``,
``dead``, ``cancel`` and ``execute`` are in ``ops``, ``pause``, ``resume`` and ``dashboard``
in ``admin``, what they share in ``common``.

Output meant for people goes to stdout, log records to stderr. Exit codes: 0 success, 1 the
operation failed (a job failed, an id is unknown, nothing to cancel), 2 bad usage or
configuration (flags, ``--app``, ``TASKITO_*`` variables), 130 a worker stopped by a second
signal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from taskito import _settings as settings
from taskito._taskito import flush_logs, written_off_threads
from taskito.cli import admin as _cli_admin
from taskito.cli import ops as _cli_ops
from taskito.cli import scale as _cli_scale
from taskito.cli.common import AppError, CommandError, env_help, load_app
from taskito.exceptions import TaskitoError


def _configure_logging(level: int | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[taskito] %(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("taskito")
    logger.addHandler(handler)
    logger.setLevel(level if level is not None else logging.INFO)
    logger.propagate = False
    if level is None:
        # A line per job start and success would drown everything else (and cost time at
        # tens of thousands of jobs a second): the default shows retries and failures;
        # TASKITO_LOG_LEVEL=INFO shows every job.
        logging.getLogger("taskito.worker").setLevel(logging.WARNING)


def _cmd_worker(args: argparse.Namespace) -> int:
    queue = load_app(args.app)
    # A flag wins over TASKITO_QUEUES; without either the worker serves every queue.
    queues = settings.check_queues(args.queues) if args.queues else settings.env_queues()
    shown = ", ".join(queues) if queues else "all"
    print(f"[taskito] Starting worker (database {queue.db_path})", flush=True)
    print(f"[taskito] Registered tasks: {len(queue.tasks)}", flush=True)
    for name in sorted(queue.tasks):
        print(f"[taskito]   - {name}", flush=True)
    print(f"[taskito] Queues: {shown}", flush=True)
    if args.metrics_port is not None:
        from taskito import metrics

        metrics.serve(queue, args.metrics_port, args.metrics_host)
        print(f"[taskito] Metrics on http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    if args.pool == "prefork":
        print("[taskito] Pool: prefork (tasks run in child processes)", flush=True)
    try:
        n = queue.run_worker(
            queues=queues,
            workers=args.workers,
            worker_id=args.worker_id,
            run_once=args.run_once,
            max_jobs=args.max_jobs,
            drain_timeout=args.drain_timeout,
            pool=args.pool,
            app=args.app if args.pool == "prefork" else None,
            max_tasks_per_child=args.max_tasks_per_child,
        )
    except KeyboardInterrupt:
        print("[taskito] Worker stopped (forced).", flush=True)
        return 130
    print(f"[taskito] Processed {n} job(s).", flush=True)
    print("[taskito] Worker stopped.", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskito",
        description="taskito: run workers and inspect a taskito queue.",
        epilog="environment variables:\n" + env_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser(
        "worker",
        help="run a worker",
        description="Run a worker until SIGINT/SIGTERM (or until done, with --run-once or --max-jobs).",
        epilog=(
            "environment variables (an argument in the code or a flag wins over its variable):\n"
            + env_help()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("--app", required=True, help="the Queue to serve, as module:attribute")
    w.add_argument("--queues", help="comma-separated queues to serve (default: TASKITO_QUEUES, else all)")
    w.add_argument("--workers", type=int, help="worker threads, 0 = CPU count (default: TASKITO_WORKERS)")
    w.add_argument(
        "--drain-timeout",
        type=float,
        help="seconds to wait for running jobs on shutdown (default: TASKITO_DRAIN_TIMEOUT, else 30)",
    )
    w.add_argument("--worker-id", help="this worker's id (default <hostname>-<pid>)")
    w.add_argument("--run-once", action="store_true", help="process what is ready now, then exit")
    w.add_argument("--max-jobs", type=int, help="exit after processing this many jobs")
    w.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (taskito[metrics])"
    )
    w.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)"
    )
    w.add_argument(
        "--pool",
        choices=("thread", "prefork"),
        default="thread",
        help="thread: tasks run on worker threads (default); prefork: in child processes",
    )
    w.add_argument(
        "--max-tasks-per-child",
        type=int,
        help="with --pool prefork, replace each child after this many jobs (default: never)",
    )
    w.set_defaults(func=_cmd_worker)

    _cli_ops.add_commands(sub)
    _cli_admin.add_commands(sub)
    _cli_scale.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings.check_env()
        _configure_logging(settings.env_log_level())
        code = args.func(args)
    except (AppError, ValueError) as exc:  # ValueError: a bad option or TASKITO_* variable
        print(f"taskito: error: {exc}", file=sys.stderr)
        code = 2
    except (CommandError, TaskitoError) as exc:
        print(f"taskito: error: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if written_off_threads():
        # A thread written off (stuck in a task past its timeout or the drain timeout) could
        # hold up interpreter teardown: flush logging and leave at once.
        flush_logs()
        logging.shutdown()
        os._exit(code)
    return code

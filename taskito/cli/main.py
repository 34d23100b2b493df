"""The ``taskito`` command's parser and entry point. Subcommands live one group a file:
``worker``; ``info``, ``jobs``, ``dead``, ``cancel`` and ``execute`` in ``ops``; ``pause``,
``resume`` and ``dashboard`` in ``admin``.

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
from taskito.cli import worker as _cli_worker
from taskito.cli.common import AppError, CommandError, env_help
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskito",
        description="taskito: run workers and inspect a taskito queue.",
        epilog="environment variables:\n" + env_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _cli_worker.add_commands(sub)

    _cli_ops.add_commands(sub)
    _cli_admin.add_commands(sub)
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

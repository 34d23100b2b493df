"""The ``taskito autoscale`` and ``taskito scaler`` commands.

``autoscale`` exits 2 without ``--app`` (a usage error, as argparse reports it) and 1 for a
bad value of any scaling flag."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

# Flag, config field, type: parsed here rather than by argparse so that a bad value is an
# operational error (exit 1) with the field named, not a usage error.
_FLAGS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("--min-workers", "min_workers", int),
    ("--max-workers", "max_workers", int),
    ("--target-queue-depth", "target_queue_depth_per_worker", int),
    ("--target-utilisation", "target_utilisation", float),
    ("--scale-up-window", "scale_up_window_sec", float),
    ("--scale-down-window", "scale_down_window_sec", float),
    ("--tolerance", "tolerance", float),
    ("--poll-interval", "poll_interval_sec", float),
    ("--drain-timeout", "drain_timeout_sec", float),
    ("--threads-per-worker", "threads_per_worker", int),
)


def _config(args: argparse.Namespace) -> Any:
    from taskito.autoscale import AutoscaleConfig
    from taskito.cli import CommandError

    values: dict[str, Any] = {}
    for flag, field, kind in _FLAGS:
        raw = getattr(args, field)
        if raw is None:
            continue
        try:
            values[field] = kind(raw)
        except ValueError:
            raise CommandError(
                f"{flag} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
            ) from None
    try:
        return AutoscaleConfig(app_path=args.app, **values)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def cmd_autoscale(args: argparse.Namespace) -> int:
    from taskito.autoscale import serve_autoscaler
    from taskito.cli import load_app

    config = _config(args)
    queue = load_app(args.app)
    print(
        f"[taskito] Autoscaling {args.app}: {config.min_workers}-{config.max_workers} workers, "
        f"one per {config.target_queue_depth_per_worker} pending jobs",
        flush=True,
    )
    serve_autoscaler(queue, config)
    return 0


def cmd_scaler(args: argparse.Namespace) -> int:
    from taskito.cli import load_app
    from taskito.scaler import serve_scaler

    queue = load_app(args.app)
    print(f"[taskito] Scaler endpoint on http://{args.host}:{args.port}/api/scaler", flush=True)
    sys.stdout.flush()
    serve_scaler(queue, host=args.host, port=args.port, target_queue_depth=args.target_queue_depth)
    return 0


def add_commands(sub: Any) -> None:
    a = sub.add_parser(
        "autoscale",
        help="run and scale worker processes to the backlog",
        description="Start and stop `taskito worker` processes between --min-workers and --max-workers.",
    )
    a.add_argument("--app", required=True, help="the Queue, as module:attribute")
    for flag, field, _kind in _FLAGS:
        a.add_argument(flag, dest=field, metavar="N", help=f"AutoscaleConfig.{field}")
    a.set_defaults(func=cmd_autoscale)

    s = sub.add_parser(
        "scaler",
        help="serve queue depth for an external autoscaler (KEDA)",
        description="Serve /api/scaler, /health and /metrics (no authentication).",
    )
    s.add_argument("--app", required=True, help="the Queue, as module:attribute")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=9091, help="port (default 9091)")
    s.add_argument(
        "--target-queue-depth", type=int, default=10, help="targetQueueDepth to report (default 10)"
    )
    s.set_defaults(func=cmd_scaler)

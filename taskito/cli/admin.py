"""The ``taskito`` subcommands that change how a queue runs or serve a UI: ``pause``,
``resume`` and ``dashboard``. Same conventions as ``taskito.cli.ops``: a table or sentence for
people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import os
from typing import Any

from taskito.cli.common import CommandError, app_flags, emit_json, load


def cmd_pause(args: argparse.Namespace) -> int:
    queue = load(args)
    changed = queue.pause(args.queue)
    if args.json:
        emit_json({"queue": args.queue, "paused": True, "changed": changed})
    elif changed:
        print(f"Paused queue {args.queue}: workers start none of its jobs until it is resumed.")
    else:
        print(f"Queue {args.queue} was already paused.")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    queue = load(args)
    changed = queue.resume(args.queue)
    if args.json:
        emit_json({"queue": args.queue, "paused": False, "changed": changed})
    elif changed:
        print(f"Resumed queue {args.queue}.")
    else:
        print(f"Queue {args.queue} was not paused.")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        from taskito.dashboard import serve
    except ImportError as exc:
        raise CommandError(f"{exc} (install it with: pip install 'taskito[dashboard]')") from None
    from taskito.dashboard.guard import allowed_hosts_from, is_loopback

    password = os.environ.get("TASKITO_DASHBOARD_PASSWORD") or None
    if not password and not is_loopback(args.host) and not args.insecure_no_password:
        # Refused before the app is even loaded: a dashboard on the network with no password
        # lets anyone read every job and act on the queue.
        raise CommandError(
            f"refusing to serve the dashboard on {args.host}, which is reachable from other "
            "machines, without a password: set TASKITO_DASHBOARD_PASSWORD, or pass "
            "--insecure-no-password if something in front of it already checks who connects"
        )
    if (args.certfile is None) != (args.keyfile is None):
        raise CommandError("--certfile and --keyfile go together")
    hosts = allowed_hosts_from(args.allowed_hosts) if args.allowed_hosts else None
    decode_env = os.environ.get("TASKITO_DASHBOARD_DECODE_PICKLES", "").lower()
    decode = args.decode_pickles or decode_env in ("1", "true", "yes")
    queue = load(args)
    serve(
        queue,
        host=args.host,
        port=args.port,
        read_only=args.read_only,
        password=password,
        allowed_hosts=hosts,
        decode_pickles=decode,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    return 0


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {value}")
    return value


def add_commands(sub: Any) -> None:
    """Adds ``pause``, ``resume`` and ``dashboard`` to the ``taskito`` parser."""
    p = sub.add_parser(
        "pause",
        help="pause a queue",
        description="Pause QUEUE: no worker (of any process) starts its jobs until it is resumed; "
        "running jobs finish.",
    )
    app_flags(p)
    p.add_argument("queue", metavar="QUEUE")
    p.set_defaults(func=cmd_pause)

    r = sub.add_parser("resume", help="resume a paused queue", description="Resume the paused QUEUE.")
    app_flags(r)
    r.add_argument("queue", metavar="QUEUE")
    r.set_defaults(func=cmd_resume)

    d = sub.add_parser(
        "dashboard",
        help="serve the web dashboard",
        description="Serve the web dashboard (pip install 'taskito[dashboard]'). Set "
        "TASKITO_DASHBOARD_PASSWORD to require a password.",
    )
    d.add_argument("--app", required=True, help="the Queue, as module:attribute")
    d.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    d.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    d.add_argument("--read-only", action="store_true", help="show everything, change nothing")
    d.add_argument(
        "--allowed-hosts",
        metavar="A,B",
        help="Host names to answer (default TASKITO_DASHBOARD_ALLOWED_HOSTS, else loopback and --host)",
    )
    d.add_argument(
        "--insecure-no-password",
        action="store_true",
        help="serve a non-loopback address without TASKITO_DASHBOARD_PASSWORD",
    )
    d.add_argument(
        "--decode-pickles",
        action="store_true",
        help="show pickled arguments and results without a secret_key (runs code from the database; "
        "also TASKITO_DASHBOARD_DECODE_PICKLES=1)",
    )
    d.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    d.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    d.set_defaults(func=cmd_dashboard)

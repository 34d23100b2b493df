"""The operations subcommands of ``taskito``: ``info``, ``jobs``, ``dead``, ``cancel`` and
``execute``. Each is a thin layer over one public ``Queue`` call; tables for people,
``--json`` for scripts (one JSON document on stdout, nothing else)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from taskito.exceptions import JobNotFoundError
from taskito.task_errors import readable

_STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")
_JOB_STATUSES = ("pending", "running", "complete", "completed", "failed", "dead", "cancelled")


# -- formatting --------------------------------------------------------------------------


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _age(seconds: float | None) -> str:
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


def _ago(ms: int | None) -> str:
    if ms is None:
        return "-"
    return _age(max(0.0, time.time() - ms / 1000)) + " ago"


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


# -- commands ----------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Any:
    from taskito.cli import load_app

    return load_app(args.app)


def cmd_info(args: argparse.Namespace) -> int:
    queue = _load(args)
    info = queue.info()
    if args.json:
        _emit_json(info)
        return 0
    for status in _STATUSES:
        print(f"{status} {info['stats'][status]}")
    print()
    rows = [
        [name, *(str(counts[s]) for s in _STATUSES), _age(counts["oldest_pending_age"])]
        for name, counts in sorted(info["queues"].items())
    ]
    if rows:
        print(_table(["QUEUE", *(s.upper() for s in _STATUSES), "OLDEST PENDING"], rows))
    else:
        print("No jobs.")
    print()
    workers = info["workers"]
    print(f"Workers alive: {len(workers)}")
    if workers:
        print(
            _table(
                ["WORKER ID", "HOSTNAME", "PID", "QUEUES", "STARTED", "LAST HEARTBEAT"],
                [
                    [
                        w["worker_id"],
                        w["hostname"],
                        str(w["pid"]),
                        w["queues"],
                        _when(w["started_at"]),
                        _ago(w["last_heartbeat"]),
                    ]
                    for w in workers
                ],
            )
        )
    return 0


def _job_row(job: dict[str, Any]) -> list[str]:
    return [
        job["id"],
        job["task_name"],
        job["queue"],
        job["status"],
        f"{job['retry_count']}/{job['max_retries']}",
        job["worker_id"] or "-",
        _when(job["created_at"]),
        _short(readable(job["error"]), 50),
    ]


def cmd_jobs(args: argparse.Namespace) -> int:
    queue = _load(args)
    jobs = queue.list_jobs(
        status=args.status,
        queue=args.queue,
        task_name=args.task,
        worker_id=args.worker_id,
        limit=args.limit,
        offset=args.offset,
    )
    # list_jobs fills each JobResult from the same read; use that snapshot, not a re-read.
    rows = [j._snapshot if j._snapshot is not None else j.to_dict() for j in jobs]
    if args.json:
        _emit_json(rows)
        return 0
    if not rows:
        print("No jobs.")
        return 0
    print(
        _table(
            ["ID", "TASK", "QUEUE", "STATUS", "RETRIES", "WORKER", "CREATED", "ERROR"],
            [_job_row(r) for r in rows],
        )
    )
    return 0


def cmd_dead(args: argparse.Namespace) -> int:
    queue = _load(args)
    if args.retry is not None:
        job_id = queue.retry_dead(args.retry)
        if args.json:
            _emit_json({"dead_id": args.retry, "job_id": job_id})
        else:
            print(f"Dead letter {args.retry} enqueued again as job {job_id}.")
        return 0
    if args.purge:
        n = queue.purge_dead(older_than=args.older_than)
        if args.json:
            _emit_json({"purged": n})
        else:
            print(f"Purged {n} dead letter(s).")
        return 0
    dead = queue.dead_letters(limit=args.limit, offset=args.offset)
    if args.json:
        _emit_json(dead)
        return 0
    if not dead:
        print("No dead letters.")
        return 0
    print(
        _table(
            ["DEAD ID", "JOB ID", "TASK", "QUEUE", "RETRIES", "FAILED AT", "ERROR"],
            [
                [
                    d["id"],
                    d["original_job_id"],
                    d["task_name"],
                    d["queue"],
                    str(d["retry_count"]),
                    _when(d["failed_at"]),
                    _short(readable(d["error"]), 50),
                ]
                for d in dead
            ],
        )
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from taskito.cli import CommandError

    queue = _load(args)
    cancelled = queue.cancel_job(args.job_id)
    job = queue.get_job(args.job_id)
    if job is None:
        raise CommandError(f"no job with id {args.job_id!r}")
    status = job.status
    if args.json:
        _emit_json({"id": args.job_id, "cancelled": cancelled, "status": status})
    elif cancelled:
        print(f"Cancelled job {args.job_id}.")
    else:
        print(
            f"Job {args.job_id} was not cancelled: it is {status} (only pending jobs can be).",
            file=sys.stderr,
        )
    return 0 if cancelled else 1


def cmd_execute(args: argparse.Namespace) -> int:
    from taskito.cli import CommandError

    queue = _load(args)
    try:
        job = queue.execute_job(args.job_id)
    except JobNotFoundError:
        raise CommandError(f"no job with id {args.job_id!r}") from None
    data = job.to_dict()
    out: dict[str, Any] = {
        "id": job.id,
        "task_name": data["task_name"],
        "status": data["status"],
        "result": None,
        "error": None,
        "traceback": None,
    }
    if data["status"] == "complete":
        out["result"] = repr(job.result(timeout=0))
    else:
        errors = queue.job_errors(job.id)
        last = errors[-1] if errors else {}
        out["error"] = readable(last.get("error") or data["error"])
        out["traceback"] = last.get("traceback") or None
    if args.json:
        _emit_json(out)
    elif out["status"] == "complete":
        print(out["result"])
    else:
        if out["traceback"]:
            print(out["traceback"].rstrip("\n"), file=sys.stderr)
        then = {
            "pending": "it will be retried",
            "dead": "it is dead-lettered",
        }.get(out["status"], f"its status is now {out['status']}")
        print(f"Job {job.id} ({out['task_name']}) failed: {out['error']}; {then}.", file=sys.stderr)
    return 0 if out["status"] == "complete" else 1


# -- parser ------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, json_help: str = "print JSON for scripts") -> None:
    p.add_argument("--app", required=True, help="the Queue, as module:attribute")
    p.add_argument("--json", action="store_true", help=json_help)


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def add_commands(sub: Any) -> None:
    """Adds the operations subcommands to the ``taskito`` parser."""
    i = sub.add_parser(
        "info",
        help="job counts per status and queue, live workers",
        description="Job counts by status (one 'status count' line each), a "
        "per-queue table with the age of the oldest pending job, and the live workers.",
    )
    _common(i)
    i.set_defaults(func=cmd_info)

    j = sub.add_parser("jobs", help="list jobs", description="List jobs, oldest first.")
    _common(j)
    j.add_argument("--status", choices=_JOB_STATUSES, help="only jobs with this status")
    j.add_argument("--queue", help="only jobs of this queue")
    j.add_argument("--task", help="only jobs of this task name")
    j.add_argument("--worker-id", help="only jobs run by this worker (process or thread id)")
    j.add_argument("--limit", type=_not_negative, default=50, help="at most this many (default 50)")
    j.add_argument("--offset", type=_not_negative, default=0, help="skip this many first")
    j.set_defaults(func=cmd_jobs)

    d = sub.add_parser(
        "dead",
        help="list, retry or purge dead letters",
        description="List dead letters (newest first), enqueue one again, or purge them.",
    )
    _common(d)
    action = d.add_mutually_exclusive_group()
    action.add_argument("--retry", metavar="DEAD_ID", help="enqueue this dead letter again")
    action.add_argument("--purge", action="store_true", help="delete dead letters")
    d.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        help="with --purge: only those older than this many seconds (default 0: all)",
    )
    d.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    d.add_argument("--offset", type=_not_negative, default=0, help="skip this many first")
    d.set_defaults(func=cmd_dead)

    c = sub.add_parser(
        "cancel",
        help="cancel a pending job",
        description="Cancel a pending job; exits 1 if it is not pending.",
    )
    _common(c)
    c.add_argument("job_id", metavar="JOB_ID")
    c.set_defaults(func=cmd_cancel)

    e = sub.add_parser(
        "execute",
        help="run one job now, in the foreground",
        description="Run the job JOB_ID in this process whatever its status and schedule, record "
        "the outcome as a worker would, and print the repr of its result (or its traceback, "
        "on stderr). Exits 1 if the job fails or does not exist.",
    )
    _common(e)
    e.add_argument("job_id", metavar="JOB_ID")
    e.set_defaults(func=cmd_execute)

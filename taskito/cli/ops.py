"""The operations subcommands of ``taskito``: ``info``, ``jobs``, ``dead``, ``cancel`` and
``execute``. Each is a thin layer over one public ``Queue`` call; tables for people,
``--json`` for scripts (one JSON document on stdout, nothing else)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from taskito.cli.common import (
    CommandError,
    age,
    ago,
    app_flags,
    emit_json,
    load,
    not_negative,
    positive,
    short,
    table,
    when,
)
from taskito.exceptions import JobNotFoundError
from taskito.task_errors import readable

_STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")
_JOB_STATUSES = ("pending", "running", "complete", "completed", "failed", "dead", "cancelled")


# -- commands ----------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    queue = load(args)
    info = queue.info()
    if args.json:
        emit_json(info)
        return 0
    for status in _STATUSES:
        print(f"{status} {info['stats'][status]}")
    print()
    rows = [
        [name, *(str(counts[s]) for s in _STATUSES), age(counts["oldest_pending_age"])]
        for name, counts in sorted(info["queues"].items())
    ]
    if rows:
        print(table(["QUEUE", *(s.upper() for s in _STATUSES), "OLDEST PENDING"], rows))
    else:
        print("No jobs.")
    print()
    workers = info["workers"]
    print(f"Workers alive: {len(workers)}")
    if workers:
        print(
            table(
                ["WORKER ID", "HOSTNAME", "PID", "QUEUES", "STARTED", "LAST HEARTBEAT"],
                [
                    [
                        w["worker_id"],
                        w["hostname"],
                        str(w["pid"]),
                        w["queues"],
                        when(w["started_at"]),
                        ago(w["last_heartbeat"]),
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
        when(job["created_at"]),
        short(readable(job["error"]), 50),
    ]


def cmd_jobs(args: argparse.Namespace) -> int:
    queue = load(args)
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
        emit_json(rows)
        return 0
    if not rows:
        print("No jobs.")
        return 0
    print(
        table(
            ["ID", "TASK", "QUEUE", "STATUS", "RETRIES", "WORKER", "CREATED", "ERROR"],
            [_job_row(r) for r in rows],
        )
    )
    return 0


def cmd_dead(args: argparse.Namespace) -> int:
    queue = load(args)
    if args.retry is not None:
        job_id = queue.retry_dead(args.retry)
        if args.json:
            emit_json({"dead_id": args.retry, "job_id": job_id})
        else:
            print(f"Dead letter {args.retry} enqueued again as job {job_id}.")
        return 0
    if args.purge:
        n = queue.purge_dead(older_than=args.older_than)
        if args.json:
            emit_json({"purged": n})
        else:
            print(f"Purged {n} dead letter(s).")
        return 0
    dead = queue.dead_letters(limit=args.limit, offset=args.offset)
    if args.json:
        emit_json(dead)
        return 0
    if not dead:
        print("No dead letters.")
        return 0
    print(
        table(
            ["DEAD ID", "JOB ID", "TASK", "QUEUE", "RETRIES", "FAILED AT", "ERROR"],
            [
                [
                    d["id"],
                    d["original_job_id"],
                    d["task_name"],
                    d["queue"],
                    str(d["retry_count"]),
                    when(d["failed_at"]),
                    short(readable(d["error"]), 50),
                ]
                for d in dead
            ],
        )
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    queue = load(args)
    cancelled = queue.cancel_job(args.job_id)
    job = queue.get_job(args.job_id)
    if job is None:
        raise CommandError(f"no job with id {args.job_id!r}")
    status = job.status
    if args.json:
        emit_json({"id": args.job_id, "cancelled": cancelled, "status": status})
    elif cancelled:
        print(f"Cancelled job {args.job_id}.")
    else:
        print(
            f"Job {args.job_id} was not cancelled: it is {status} (only pending jobs can be).",
            file=sys.stderr,
        )
    return 0 if cancelled else 1


def cmd_execute(args: argparse.Namespace) -> int:
    queue = load(args)
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
        emit_json(out)
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


def add_commands(sub: Any) -> None:
    """Adds the operations subcommands to the ``taskito`` parser."""
    i = sub.add_parser(
        "info",
        help="job counts per status and queue, live workers",
        description="Job counts by status (one 'status count' line each), a "
        "per-queue table with the age of the oldest pending job, and the live workers.",
    )
    app_flags(i)
    i.set_defaults(func=cmd_info)

    j = sub.add_parser("jobs", help="list jobs", description="List jobs, oldest first.")
    app_flags(j)
    j.add_argument("--status", choices=_JOB_STATUSES, help="only jobs with this status")
    j.add_argument("--queue", help="only jobs of this queue")
    j.add_argument("--task", help="only jobs of this task name")
    j.add_argument("--worker-id", help="only jobs run by this worker (process or thread id)")
    j.add_argument("--limit", type=not_negative, default=50, help="at most this many (default 50)")
    j.add_argument("--offset", type=not_negative, default=0, help="skip this many first")
    j.set_defaults(func=cmd_jobs)

    d = sub.add_parser(
        "dead",
        help="list, retry or purge dead letters",
        description="List dead letters (newest first), enqueue one again, or purge them.",
    )
    app_flags(d)
    action = d.add_mutually_exclusive_group()
    action.add_argument("--retry", metavar="DEAD_ID", help="enqueue this dead letter again")
    action.add_argument("--purge", action="store_true", help="delete dead letters")
    d.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        help="with --purge: only those older than this many seconds (default 0: all)",
    )
    d.add_argument("--limit", type=positive, default=50, help="at most this many (default 50)")
    d.add_argument("--offset", type=not_negative, default=0, help="skip this many first")
    d.set_defaults(func=cmd_dead)

    c = sub.add_parser(
        "cancel",
        help="cancel a pending job",
        description="Cancel a pending job; exits 1 if it is not pending.",
    )
    app_flags(c)
    c.add_argument("job_id", metavar="JOB_ID")
    c.set_defaults(func=cmd_cancel)

    e = sub.add_parser(
        "execute",
        help="run one job now, in the foreground",
        description="Run the job JOB_ID in this process whatever its status and schedule, record "
        "the outcome as a worker would, and print the repr of its result (or its traceback, "
        "on stderr). Exits 1 if the job fails or does not exist.",
    )
    app_flags(e)
    e.add_argument("job_id", metavar="JOB_ID")
    e.set_defaults(func=cmd_execute)

"""What the dashboard shows, as plain data: the overview, a job with its decoded
arguments and result, and the formatting helpers the templates use. Reads go through the
public ``Queue`` methods only."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from taskito.dashboard import preview

if TYPE_CHECKING:
    from taskito.app import Queue

STATUSES = ("pending", "running", "completed", "failed", "dead", "cancelled")
JOB_STATUSES = ("pending", "running", "complete", "failed", "dead", "cancelled")
# Throughput chart: completed jobs per BUCKET seconds over the last WINDOW seconds.
BUCKET = 10
WINDOW = 300


class Recent:
    """A value recomputed at most every ``ttl`` seconds, shared by concurrent requests: N
    open overview tabs polling cost one database count per interval, not N."""

    def __init__(self, compute: Any, ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: Any = None
        self._at = float("-inf")

    def get(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                self._value = self._compute()
                self._at = time.monotonic()
            return self._value


def when(ms: int | None) -> str:
    """Epoch milliseconds as a UTC timestamp."""
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}Z"


def ago(ms: int | None) -> str:
    """Epoch milliseconds as "12s ago"."""
    if ms is None:
        return "-"
    s = max(0.0, time.time() - ms / 1000)
    if s < 60:
        return f"{s:.1f}s ago"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s ago"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m ago"


def throughput(queue: Queue, now_ms: int) -> list[list[int]]:
    """``[[bucket_start_ms, completed], ...]`` for the last ``WINDOW`` seconds, zeros included."""
    bucket_ms = BUCKET * 1000
    end = now_ms - now_ms % bucket_ms + bucket_ms
    start = end - WINDOW * 1000
    counts = dict(queue._inner.throughput(start, bucket_ms))
    return [[t, counts.get(t, 0)] for t in range(start, end, bucket_ms)]


def overview(queue: Queue) -> dict[str, Any]:
    """Everything the overview page shows (and ``/api/overview`` returns); the app serves
    it through a ``Recent`` of about a second."""
    now = int(time.time() * 1000)
    stats = queue.stats_all_queues()
    paused = set(queue.paused_queues())
    names = sorted(set(stats) | paused)
    queues = [
        {"name": n, "paused": n in paused, "counts": stats.get(n, dict.fromkeys(STATUSES, 0))} for n in names
    ]
    totals = dict.fromkeys(STATUSES, 0)
    for q in queues:
        for s in STATUSES:
            totals[s] += q["counts"][s]
    workers = [
        {
            "worker_id": w["worker_id"],
            "hostname": w["hostname"],
            "pid": w["pid"],
            "queues": w["queues"],
            "status": w["status"],
            "last_heartbeat": w["last_heartbeat"],
            "heartbeat_age": max(0.0, (now - w["last_heartbeat"]) / 1000),
        }
        for w in queue.workers()
        if w["status"] == "active" or now - w["last_heartbeat"] < 3600_000
    ]
    return {
        "now": now,
        "queues": queues,
        "totals": totals,
        "workers": workers,
        "throughput": {"bucket_seconds": BUCKET, "points": throughput(queue, now)},
    }


def job_detail(queue: Queue, job_id: str, decode_pickles: bool = False) -> dict[str, Any] | None:
    """A job's stored fields plus decoded arguments and result, errors, notes."""
    job = queue.get_job(job_id)
    if job is None:
        return None
    data = job.to_dict()
    payload = queue._inner.job_payload(job_id)
    args = kwargs = None
    # Nothing stored is unpickled unless it verifies against the secret key, or the
    # operator opted in (preview.py).
    shown = preview.Previewer(queue, decode_pickles)
    if payload is not None:
        args, kwargs = shown.call(data["task_name"], payload)
    result = None
    if data["status"] == "complete":
        found = queue._inner.get_outcome(job_id)
        result = shown.result(job_id, found[1] if found else None)
    if data.get("error"):
        data["error"] = preview.cut(data["error"], preview.ERROR_CHARS)
    metadata = data.get("metadata")
    if metadata and len(metadata) <= preview.PREVIEW_CHARS:
        try:
            metadata = json.dumps(json.loads(metadata), indent=2, sort_keys=True)
        except ValueError:
            pass
    elif metadata:
        metadata = preview.cut(metadata, preview.PREVIEW_CHARS)
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        notes = json.dumps(notes, indent=2, sort_keys=True, default=str)
    return {
        "job": data,
        "args": args,
        "kwargs": kwargs,
        "result": result,
        "metadata": metadata,
        "notes": notes,
        "errors": [
            {
                **e,
                "error": preview.cut(e.get("error") or "", preview.ERROR_CHARS),
                "traceback": preview.cut(e["traceback"], preview.ERROR_CHARS) if e.get("traceback") else None,
            }
            for e in queue.job_errors(job_id)
        ],
    }

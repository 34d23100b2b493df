"""A metrics endpoint for external autoscalers (KEDA's ``metrics-api`` scaler and the like).

``serve_scaler(queue)`` (the ``taskito scaler`` command) answers ``GET /api/scaler``
(``?queue=name`` for one queue) with ``build_scaler_response``'s JSON, ``/health`` with
``{"status": "ok"}`` and ``/metrics`` with the Prometheus exposition (501 without
``prometheus-client``). It has no authentication: bind it to a private address.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["build_scaler_response", "make_scaler_server", "serve_scaler"]

log = logging.getLogger("taskito.scaler")

# Worker statuses that mean the process is alive (``unhealthy``: alive, claiming nothing).
_LIVE = ("active", "unhealthy")


def _serves(worker: dict[str, Any], queue_name: str) -> bool:
    queues = worker.get("queues") or ""
    names = [q.strip() for q in queues.split(",") if q.strip()]
    return not names or queue_name in names or "all" in names or "*" in names


def build_scaler_response(
    queue: Any, queue_name: str | None = None, target_queue_depth: int = 10
) -> dict[str, Any]:
    """The scaler's JSON: ``metricName``, ``metricValue`` (pending jobs), ``isActive``,
    ``liveWorkers``, ``totalCapacity`` (live workers times the queue's configured thread
    count), ``targetQueueDepth``, ``workerUtilization`` (running / capacity, omitted when
    the capacity is 0) and ``perQueue`` (``{queue: {pending, running}}`` for every queue)."""
    per_queue = {
        q: {"pending": int(s.get("pending", 0)), "running": int(s.get("running", 0))}
        for q, s in sorted(queue.stats_all_queues().items())
    }
    if queue_name is not None:
        chosen = per_queue.get(queue_name, {"pending": 0, "running": 0})
        pending, running = chosen["pending"], chosen["running"]
        metric = f"taskito_queue_depth_{queue_name}"
    else:
        pending = sum(v["pending"] for v in per_queue.values())
        running = sum(v["running"] for v in per_queue.values())
        metric = "taskito_queue_depth"
    live = [w for w in queue.workers() if w.get("status") in _LIVE]
    if queue_name is not None:
        live = [w for w in live if _serves(w, queue_name)]
    capacity = len(live) * queue._thread_count(None)
    out: dict[str, Any] = {
        "metricName": metric,
        "metricValue": pending,
        "isActive": pending > 0,
        "liveWorkers": len(live),
        "totalCapacity": capacity,
        "targetQueueDepth": target_queue_depth,
    }
    if capacity > 0:
        out["workerUtilization"] = round(running / capacity, 3)
    out["perQueue"] = per_queue
    return out


def _prometheus(queue: Any) -> bytes | None:
    try:
        from prometheus_client import CollectorRegistry, generate_latest

        from taskito.metrics import DatabaseCollector
    except ImportError:
        return None
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(queue))
    return bytes(generate_latest(registry))


def make_scaler_server(
    queue: Any, host: str = "127.0.0.1", port: int = 9091, target_queue_depth: int = 10
) -> ThreadingHTTPServer:
    """The scaler's HTTP server, bound but not yet serving (``serve_forever()`` it)."""
    if (
        isinstance(target_queue_depth, bool)
        or not isinstance(target_queue_depth, int)
        or target_queue_depth < 1
    ):
        raise ValueError(f"target_queue_depth must be an integer >= 1, got {target_queue_depth!r}")

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: Any) -> None:
            self._send(code, json.dumps(data).encode())

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            url = urlsplit(self.path)
            try:
                if url.path == "/api/scaler":
                    names = parse_qs(url.query).get("queue")
                    self._json(
                        200, build_scaler_response(queue, names[0] if names else None, target_queue_depth)
                    )
                elif url.path == "/health":
                    self._json(200, {"status": "ok"})
                elif url.path == "/metrics":
                    text = _prometheus(queue)
                    if text is None:
                        self._json(
                            501,
                            {"error": "prometheus-client is not installed: pip install 'taskito[metrics]'"},
                        )
                    else:
                        self._send(200, text, "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._json(404, {"error": "not found"})
            except Exception:
                log.exception("scaler request %s failed", url.path)
                self._json(500, {"error": "internal error"})

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("scaler: " + format, *args)

    return ThreadingHTTPServer((host, port), Handler)


def serve_scaler(queue: Any, host: str = "127.0.0.1", port: int = 9091, target_queue_depth: int = 10) -> None:
    """Serves the scaler endpoint until interrupted."""
    server = make_scaler_server(queue, host, port, target_queue_depth)
    log.info("scaler endpoint on http://%s:%d/api/scaler", host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

"""Retry rules, a retry budget, a circuit breaker and a soft timeout on one queue."""

import os
import tempfile
import threading
import time

from taskito import Queue, SoftTimeoutError, current_job

queue = Queue(db_path=os.path.join(tempfile.mkdtemp(), "retries.db"))
attempts = {"fetch": 0}


class TemporaryError(Exception):
    pass


class BadRequest(Exception):
    pass


@queue.task(
    max_retries=4,
    retry_on=[TemporaryError, ConnectionError],
    dont_retry_on=[BadRequest],
    retry_delays=[0.1, 0.2],
    max_retry_delay=1.0,
    retry_backoff=0.1,
    retry_budget="20/m",
)
def fetch(url):
    attempts["fetch"] += 1
    if attempts["fetch"] < 3:
        raise TemporaryError(f"{url} busy")
    return f"fetched {url}"


@queue.task(max_retries=0, dont_retry_on=[BadRequest])
def validate(payload):
    raise BadRequest(f"bad payload {payload!r}")


@queue.task(circuit_breaker={"threshold": 3, "window": 60, "cooldown": 30})
def call_partner(order_id):
    return f"sent {order_id}"


@queue.task(soft_timeout=0.2, max_retries=0)
def crunch(n):
    done = 0
    try:
        for _ in range(n):
            current_job.check_timeout()
            time.sleep(0.05)
            done += 1
    except SoftTimeoutError:
        return f"stopped early after {done} steps"
    return f"all {done} steps"


worker = threading.Thread(target=queue.run_worker, daemon=True)
worker.start()
print(fetch.delay("https://example.com").result(timeout=30), "after", attempts["fetch"], "attempts")
bad = validate.delay({"x": 1})
while bad.status != "dead":
    time.sleep(0.05)
print("validate:", bad.status, "- dead letters:", len(queue.dead_letters()))
print(call_partner.delay(42).result(timeout=30))
print("breakers:", [(b["task_name"].rsplit(".", 1)[-1], b["state"]) for b in queue.circuit_breakers()])
print(crunch.delay(100).result(timeout=30))
queue.shutdown()
worker.join(30)

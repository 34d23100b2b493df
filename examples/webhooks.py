"""Webhooks end to end: a receiver on 127.0.0.1 checks the signature of each delivery."""

import hashlib
import hmac
import http.server
import json
import os
import tempfile
import threading

from taskito import EventType, Queue

SECRET = "change-me"
received = []
arrived = threading.Event()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(self.headers.get("X-Taskito-Signature", ""), expected)
        received.append((json.loads(body), signed))
        self.send_response(200 if signed else 401)
        self.end_headers()
        arrived.set()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The receiver is on this machine: let the URL guard accept a loopback address.
os.environ["TASKITO_WEBHOOKS_ALLOW_PRIVATE"] = "1"

queue = Queue(db_path=os.path.join(tempfile.mkdtemp(), "webhooks.db"))


@queue.task()
def resize(width):
    return width // 2


events = []
completed = threading.Event()


def show(event, payload):
    # Runs on the queue's event thread: keep what it saw; the main thread prints it.
    events.append((event.value, payload["job_id"], payload["duration_ms"]))
    completed.set()


queue.on_event(EventType.JOB_COMPLETED, show)
queue.add_webhook(
    f"http://127.0.0.1:{server.server_address[1]}/taskito",
    events=[EventType.JOB_COMPLETED],
    secret=SECRET,
)

worker = threading.Thread(target=queue.run_worker, daemon=True)
worker.start()
job = resize.delay(640)
print("result:", job.result(timeout=30))
completed.wait(30)
for name, job_id, ms in events:
    print("event:", name, job_id, f"{ms:.1f} ms")
arrived.wait(30)
payload, signed = received[0]
print("webhook:", payload["event"], payload["job_id"] == job.id, "signed" if signed else "NOT SIGNED")
queue.shutdown()
worker.join(30)
server.shutdown()
server.server_close()

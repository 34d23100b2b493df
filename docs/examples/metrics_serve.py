# metrics_serve.py: needs taskito[metrics].
import socket
import urllib.request

from taskito import Queue, metrics

queue = Queue(db_path="metrics.db")


@queue.task()
def noop():
    return None


with socket.socket() as s:        # a free port for this example; use a fixed one in production
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

metrics.serve(queue, port=port)   # counts this process's jobs; serves /metrics
noop.delay()
queue.run_worker(run_once=True)
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
print([line for line in text.splitlines() if line.startswith("taskito_jobs_processed_total")])

# several_processes.py: two worker processes and this producer share one SQLite file.
import signal
import subprocess
import sys
import time

from taskito import Queue

queue = Queue(db_path="shared.db")


@queue.task("square")                 # one name, whether imported or run as __main__
def square(x):
    return x * x


if __name__ == "__main__":
    workers = [
        subprocess.Popen([sys.executable, "-m", "taskito", "worker", "--app", "several_processes:queue",
                          "--workers", "2"], stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(queue.workers()) < 2 and time.monotonic() < deadline:   # both registered
            time.sleep(0.05)
        jobs = queue.enqueue_many(square.name, [(i,) for i in range(200)])
        total = sum(job.result(timeout=30) for job in jobs)   # each wait is woken, not polled
        processes = {job.worker_id.rsplit("-", 1)[0] for job in jobs}   # "<host>-<pid>-<thread>"
        print(total, "computed by", len(processes), "worker process(es)")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)   # drains: running jobs finish, then exit 0
        print([worker.wait(timeout=30) for worker in workers])   # [0, 0]

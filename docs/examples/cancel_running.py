import threading
import time

from taskito import Queue, TaskCancelledError, current_job

queue = Queue(db_path="cancel.db")


@queue.task()
def crunch(n):
    for i in range(n):
        current_job.check_cancelled()          # raises TaskCancelledError once asked to stop
        current_job.update_progress(100 * i // n)
        time.sleep(0.01)
    return n


job = crunch.delay(10_000)
worker = threading.Thread(target=queue.run_worker, daemon=True)
worker.start()
while job.status != "running":
    time.sleep(0.01)
print(queue.cancel_running_job(job.id))       # True (any process may call it)
try:
    job.result(timeout=10)
except TaskCancelledError:
    print(job.status)                         # cancelled: no retry, no dead letter
queue.shutdown()
worker.join()

import threading

from taskito import Queue

queue = Queue(db_path=":memory:")   # this process only; nothing is written to disk


@queue.task()
def double(x):
    return 2 * x


job = double.delay(21)
threading.Thread(target=queue.run_worker, daemon=True).start()
assert job.result(timeout=10) == 42
queue.shutdown()
print("42")

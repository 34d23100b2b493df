# migration_celery.py: a Celery-shaped app, written for taskito.
import time

from taskito import Queue, chain, chord, current_job, group

queue = Queue(db_path="proj.db")                   # Celery("proj", broker=..., backend=...)


@queue.task("proj.add", max_retries=3, retry_backoff=1.0, timeout=60)   # autoretry, time_limit
def add(x, y):
    return x + y


@queue.task("proj.tsum")
def tsum(numbers):
    print("retries so far:", current_job.retry_count)   # self.request.retries
    return sum(numbers)


@queue.periodic("0 0 2 * * *", name="nightly-sum", args=([1, 2, 3],))   # beat_schedule + crontab
def nightly(numbers):
    return sum(numbers)


r = add.apply_async((2, 3), delay=0.2)             # countdown=0.2
flow = chain(add.s(1, 1), add.s(10)).apply()       # chain(...).apply_async()
total = chord(group(*[add.s(i, i) for i in range(4)]), tsum.s()).apply()   # chord(header)(callback)
by_name = queue.enqueue("proj.add", args=(20, 22))  # app.send_task("proj.add", ...)

time.sleep(0.3)                                    # the delayed job is due by now
queue.run_worker(run_once=True)
print(r.result(timeout=10), flow.result(timeout=10), total.result(timeout=10), by_name.result())  # 5 12 12 42

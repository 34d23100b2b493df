# migration_huey.py: a huey-shaped app, written for taskito.
from taskito import EventType, Queue, chain

queue = Queue(db_path="huey_style.db")                  # SqliteHuey(filename=...)
done = []


@queue.task(max_retries=2, retry_backoff=10)            # @huey.task(retries=2, retry_delay=10)
def add(a, b):
    return a + b


@queue.task(max_concurrent=1)                           # @huey.lock_task(...)
def mul(a, b):
    return a * b


@queue.on_event(EventType.JOB_COMPLETED)                # @huey.signal(SIGNAL_COMPLETE)
def completed(event_type, payload):
    done.append(payload["task_name"])


print(add(1, 2))                                        # inline, as add.call_local(1, 2): 3
job = add.delay(1, 2)                                   # huey's add(1, 2) enqueues; here: delay
pipe = chain(add.s(1, 2), mul.s(3)).apply()             # add.s(1, 2).then(mul, 3)
queue.run_worker(run_once=True)
print(job.result(timeout=10), pipe.result(timeout=10))  # 3 9
print(job.result(timeout=10))                           # still readable: 3

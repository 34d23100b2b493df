from taskito import Queue, QueueFullError

queue = Queue(db_path="flow.db", max_pending={"emails": 2})


@queue.task(rate_limit="5/s")             # "N/s", "N/m" or "N/h", across all workers
def call_api(i):
    return i


@queue.task(max_concurrent=2)             # at most 2 running at once, across all workers
def render(i):
    return i


@queue.task(queue="emails")
def send(to):
    return to


send.delay("a")
send.delay("b")
try:
    send.delay("c")
except QueueFullError as e:
    print(e)                              # queue "emails" is full: max_pending is 2

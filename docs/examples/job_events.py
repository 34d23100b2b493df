import time

from taskito import EventType, Queue

queue = Queue(db_path="events.db")
seen = []


@queue.task()
def ping():
    return "pong"


def on_done(event_type, payload):
    seen.append((event_type.name, payload["task_name"], payload["queue"]))


queue.on_event(EventType.JOB_COMPLETED, on_done)
ping.delay()
queue.run_worker(run_once=True)
deadline = time.monotonic() + 5
while not seen and time.monotonic() < deadline:   # callbacks run on their own thread
    time.sleep(0.01)
print(seen)   # [('JOB_COMPLETED', '__main__.ping', 'default')]

# enqueue.py: store a few jobs; no worker runs in this process.
from tasks import queue, resize

jobs = [resize.delay(f"photo-{n}.png", width=200) for n in range(3)]
print("enqueued", [job.id for job in jobs])
print(queue.stats()["pending"], "pending")

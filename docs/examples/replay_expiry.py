import time

from taskito import Queue

queue = Queue(db_path="replay.db")


@queue.task()
def greet(name):
    return f"hello {name}"


first = greet.apply_async(("ada",), notes={"why": "demo"})
late = greet.apply_async(("bob",), expires=0.1)   # must start within 0.1 s
time.sleep(0.2)
queue.run_worker(run_once=True)
print(first.result(), late.status)               # hello ada cancelled

again = queue.replay(first.id)                   # same task, arguments, options, notes
queue.run_worker(run_once=True)
print(again.id != first.id, again.result(), again.notes)   # True hello ada {'why': 'demo'}

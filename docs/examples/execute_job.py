from taskito import Queue

queue = Queue(db_path="execute.db")


@queue.task(name="charge")
def charge(order_id, amount):
    return {"order": order_id, "charged": amount}


job = queue.enqueue("charge", args=(7, 3), delay=3600)      # not due for an hour
print(queue.execute_job(job.id).result(timeout=0))          # {'order': 7, 'charged': 3}: run now

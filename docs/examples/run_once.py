from taskito import Queue

queue = Queue(db_path="shop.db")


@queue.task(name="charge", max_retries=2)
def charge(order_id, amount):
    if amount < 0:
        raise ValueError(f"negative amount for order {order_id}")
    return {"order": order_id, "charged": amount}


charge.delay(2, 10)
charge.delay(3, -1)                           # fails: it is retried later
charge.apply_async(args=(4, 5), delay=3600)   # not ready for an hour
charge.delay(5, 1)
charge.delay(6, 2)

n = queue.run_worker(run_once=True, max_jobs=1)   # at most one job, then return
print(n)                                          # 1
n = queue.run_worker(run_once=True)               # everything ready now, then return
print(n)                                          # the jobs processed, failed runs included
print(queue.process_one())                        # one ready job in this thread: True/False

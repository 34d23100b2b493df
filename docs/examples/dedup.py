from taskito import Queue

queue = Queue(db_path="dedup.db")


@queue.task(idempotent=True)
def charge(account, cents):
    return cents


a = charge.delay("acme", 100)
assert charge.delay("acme", 100).id == a.id                                   # same task, same arguments
assert charge.apply_async(args=("acme", 100), idempotent=False).id != a.id     # opt out once
assert queue.enqueue("sync", unique_key="sync-acme").id == queue.enqueue("sync", unique_key="sync-acme").id
jobs = queue.enqueue_many("sync", [("a",), ("b",)], unique_keys=["sync-acme", None])
assert jobs[0].id == queue.enqueue("sync", unique_key="sync-acme").id
print("one job per key while it is pending or running")

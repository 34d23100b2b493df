from taskito import Queue

queue = Queue(db_path="identity.db")


@queue.task(name="charge")
def charge(order_id, amount):
    return amount


job = queue.enqueue("charge", args=(5, 30))
queue.run_worker(worker_id="billing-1", workers=2, run_once=True)
print(job.worker_id)                          # billing-1-0 or billing-1-1
print(job.to_dict()["worker_id"])             # the same

for running in queue.list_jobs(status="running"):
    print(running.worker_id, running.id)
print(len(queue.list_jobs(worker_id="billing-1")))   # everything worker billing-1 ran: 1
print([w["worker_id"] for w in queue.workers()])     # the registry: one row per run

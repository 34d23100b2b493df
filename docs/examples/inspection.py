from taskito import Queue

queue = Queue(db_path="inspect.db")


@queue.task(max_retries=0)
def check(n):
    if n == 3:
        raise ValueError("three")
    return n


jobs = [check.delay(n) for n in range(5)]
pending = check.delay(99)
print(queue.cancel_job(pending.id))                     # True: it was pending
queue.run_worker(run_once=True)

print(queue.stats())                                    # six counts, always
print(queue.info()["queues"]["default"]["dead"])        # 1
print([j.id == jobs[3].id for j in queue.list_jobs(status="dead")])   # [True]
letter = queue.dead_letters()[0]
new_id = queue.retry_dead(letter["id"])                 # a new job, pending; the letter is gone
print(queue.get_job(new_id).status, len(queue.dead_letters()))        # pending 0
print(queue.purge_dead(older_than=86400))               # dead letters older than a day: 0

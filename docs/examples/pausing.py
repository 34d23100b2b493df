from taskito import Queue

queue = Queue(db_path="pause.db")


@queue.task(queue="emails")
def email(to):
    return to


job = email.delay("ann@example.com")
print(queue.pause("emails"), queue.paused_queues())   # True ['emails']
print(queue.run_worker(run_once=True), job.status)    # 0 pending: paused queues are skipped
print(queue.resume("emails"))                         # True
print(queue.run_worker(run_once=True), job.status)    # 1 complete

from taskito import Queue

queue = Queue(db_path="options.db")


@queue.task("emails.send", queue="emails", max_retries=5)
def send(to: str, subject: str) -> str:
    return f"{subject} -> {to}"


urgent = send.apply_async(("ann@example.com", "Hi"), priority=10, metadata={"source": "signup"})
later = send.apply_async(args=("bob@example.com", "Reminder"), delay=3600)  # not before an hour
by_name = queue.enqueue("emails.send", args=("cy@example.com", "Welcome"))   # no import needed
batch = queue.enqueue_many("emails.send", [("d@example.com", "A"), ("e@example.com", "B")])

queue.run_worker(run_once=True)            # the delayed job stays where it is
print(urgent.result(), by_name.result(), [j.result() for j in batch])
print(later.status, queue.stats())

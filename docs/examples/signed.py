import os

from taskito import Queue

queue = Queue(db_path="signed.db", secret_key=os.environ.get("APP_KEY", "a long random secret of 32+ chars"))


@queue.task()
def greet(name: str) -> str:
    return f"hello {name}"


job = greet.delay("ada")
queue.run_worker(run_once=True)
print(job.result(timeout=10), oct(os.stat("signed.db").st_mode & 0o777))   # hello ada 0o600

from taskito import Queue

queue = Queue(db_path="myapp.db")          # default: .taskito/taskito.db


@queue.task(max_retries=3, retry_backoff=1.0, timeout=60)
def resize(path: str, width: int) -> str:
    return f"{path}@{width}"


job = resize.delay("cat.png", width=200)   # stored; returns a JobResult
print(job.status)                          # pending
queue.run_worker(run_once=True)            # run what is ready, then return
print(job.status, job.result(timeout=30))  # complete cat.png@200
print(resize("dog.png", 100))              # a direct call runs inline, no queue

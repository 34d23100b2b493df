# tasks.py: the tasks of the quickstart, importable by producers and workers alike.
from taskito import Queue, current_job

queue = Queue(db_path="tasks.db")


@queue.task(max_retries=3, retry_backoff=1.0, timeout=60)
def resize(path: str, width: int) -> str:
    current_job.update_progress(50)
    return f"{path}@{width}"

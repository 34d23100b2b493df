# migration_rq.py: an RQ-shaped script, written for taskito.
from taskito import Queue, current_job

queue = Queue(db_path="rq_style.db", default_retry=0)    # RQ does not retry unless asked


@queue.task(queue="high")
def count_words(text):
    current_job.update_progress(100)                     # job.meta["progress"] = 100
    return len(text.split())


@queue.task(max_retries=3, retry_backoff=10)             # retry=Retry(max=3, interval=10)
def report(counts):
    return f"{counts} words"


first = count_words.apply_async(("to be or not",), timeout=60, result_ttl=600)   # job_timeout, result_ttl
second = report.apply_async((4,), depends_on=first)      # depends_on=job
later = count_words.apply_async(("tomorrow",), delay=300)   # q.enqueue_in(timedelta(minutes=5), ...)

n = queue.run_worker(queues=["high", "default"], run_once=True)   # rq worker --burst high default
print(n, first.result(), second.result(), later.status)  # 2 4 4 words pending
print(queue.get_job(first.id).status)                    # Job.fetch(id).get_status(): complete

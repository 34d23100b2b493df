# postgres_queue.py: the same API on PostgreSQL. Set TASKITO_DB_URL to your server's URL.
import os

from taskito import Queue

url = os.environ.get("TASKITO_DB_URL", "postgresql://app:secret@localhost:5432/app")

with Queue(db_url=url, schema="docs_example", pool_size=4) as queue:   # schema created if missing

    @queue.task()
    def add(a, b):
        return a + b

    job = add.delay(2, 3)
    queue.run_worker(run_once=True)
    print(job.result(timeout=10), repr(queue).count("secret"))   # 5 0: the password is hidden
# leaving the block (or queue.close()) releases every connection

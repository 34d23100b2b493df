# results.py: read what the worker recorded, from yet another process.
from tasks import queue

for job in queue.list_jobs(task_name="tasks.resize"):
    print(job.id, job.status, job.result(timeout=10))

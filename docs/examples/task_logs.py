from taskito import LogLevel, Queue, current_job

queue = Queue(db_path="task_logs.db")


@queue.task(name="import_rows")
def import_rows(n):
    current_job.log("starting", extra={"rows": n})
    current_job.log("2 rows skipped", level=LogLevel.WARNING)
    return n


job = import_rows.delay(10)
queue.run_worker(run_once=True)
for line in queue.task_logs(job.id):            # oldest first
    print(line["level"], line["message"], line["extra"])
print(len(queue.query_logs(task_name="import_rows", level="WARNING", since=3600, limit=100)))   # 1

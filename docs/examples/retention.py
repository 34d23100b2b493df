from taskito import Queue, Retention

# Each kind of row has its own window, in seconds; None keeps that kind forever.
queue = Queue(db_path="retention.db", retention=Retention(archived_jobs=3600, dead_letter=None))


@queue.task()
def report(day):
    return f"report for {day}"


job = report.apply_async(("mon",), result_ttl=600)      # this job: kept 10 minutes once finished
queue.enqueue_many(report.name, [("tue",), ("wed",)], result_ttl_list=[60, None])
queue.run_worker(run_once=True)
print(job.result())                                     # report for mon

preview = queue.dry_run_retention()                     # what a sweep would delete now; deletes nothing
print(preview.total, sorted(preview.counts))
print(queue.purge_completed(older_than=86400))          # complete jobs older than a day -> 0
print(queue.archive(older_than=0))                      # finished jobs -> the archive: 3
page = queue.list_archived_after(limit=2)
while page.next_cursor:                                 # keyset pages: no OFFSET scan
    page = queue.list_archived_after(limit=2, after=page.next_cursor)
print(queue.get_job(job.id).status)                     # still readable by id: complete

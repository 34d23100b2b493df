from taskito import Queue, current_job

queue = Queue(db_path="context.db")


@queue.task()
def resize(path):
    print(current_job.id, current_job.task_name, current_job.queue_name, current_job.retry_count)
    current_job.update_progress(100)
    return path


job = resize.apply_async(("cat.png",), metadata={"source": "upload"},
                         notes={"customer": "acme", "tags": ["urgent"]})
queue.run_worker(run_once=True)
job.refresh()
print(job.progress, job.metadata)   # 100 {"source": "upload"}
print(job.notes)                    # {'customer': 'acme', 'tags': ['urgent']}

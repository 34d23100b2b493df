import time

from taskito import Queue, TaskMiddleware


class Timing(TaskMiddleware):
    def on_enqueue(self, task_name, args, kwargs, options):
        options["metadata"] = {"enqueued_by": "web"}   # edits apply to the stored job

    def before(self, ctx):
        self.t0 = time.perf_counter()

    def after(self, ctx, result, error):
        print(ctx.task_name, "took", f"{time.perf_counter() - self.t0:.4f}s", "error:", error)


queue = Queue(db_path="middleware.db", middleware=[Timing()])


@queue.task(name="resize")
def resize(path):
    return path


@queue.after_task
def after_every_job(task_name, args, kwargs, result, error):
    print("after_task", task_name, result, error)


job = resize.delay("cat.png")
queue.run_worker(run_once=True)
print(job.result(), job.metadata)   # cat.png {"enqueued_by": "web"}

"""Driver for taskito: ours (the repo) and taskito 0.22 from PyPI share it.

python taskito_driver.py WORKLOAD --system ours|taskito022 [--jobs N] ...
"""

import sys
import threading
import traceback
from pathlib import Path

from measure import main

FILL_CHUNK = 50_000


class TaskitoAdapter:
    has_batch = True

    def __init__(self, opts):
        self.opts = opts
        self.name = opts.system or "taskito"
        self.thread = None
        self.worker_error = None

    def version(self):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("taskito")
        except PackageNotFoundError:  # imported from a source tree via PYTHONPATH
            import taskito

            return f"{getattr(taskito, '__version__', '?')} (source tree)"

    def load(self):
        import taskito_app

        self.app = taskito_app
        self.queue = taskito_app.queue
        self.done = taskito_app.done
        self.tasks = {"noop": taskito_app.noop, "nap": taskito_app.nap}

    def task_name(self, task):
        return getattr(self.tasks[task], "name", None) or f"taskito_app.{task}"

    def enqueue_one(self, task):
        self.tasks[task].delay()

    def enqueue_batch(self, task, count):
        self.queue.enqueue_many(self.task_name(task), [() for _ in range(count)])

    def fill(self, task, count):
        name, left = self.task_name(task), count
        while left:
            size = min(left, FILL_CHUNK)
            self.queue.enqueue_many(name, [() for _ in range(size)])
            left -= size
        return "enqueue_many, 50,000 per call"

    def _run_worker(self):
        try:
            self.queue.run_worker()
        except BaseException as exc:
            traceback.print_exc()
            self.worker_error = f"{type(exc).__name__}: {exc}"

    def start_worker(self):
        self.thread = threading.Thread(target=self._run_worker, daemon=True)
        self.thread.start()

    def stop_worker(self):
        self.queue._inner.request_shutdown()
        self.thread.join(10)

    def worker_alive(self):
        if self.worker_error:
            raise RuntimeError(f"worker failed: {self.worker_error}")
        return self.thread.is_alive()

    def submit_echo(self, value):
        return self.app.echo.delay(value)

    def wait_result(self, handle, timeout):
        return handle.result(timeout=timeout)

    def completed(self):
        return self.queue.stats()["completed"]

    def serve(self):
        self.queue.run_worker()

    def cli_command(self):
        script = Path(sys.executable).parent / "taskito"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "taskito"]
        cmd += ["worker", "--app", "taskito_app:queue"]
        if self.name == "ours":  # taskito 0.22 takes the count from Queue(workers=...)
            cmd += ["--workers", str(self.opts.workers)]
        return cmd


if __name__ == "__main__":
    main(TaskitoAdapter, __file__)

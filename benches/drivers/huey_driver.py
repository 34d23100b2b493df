"""Driver for huey: SqliteHuey with its thread consumer.

python huey_driver.py WORKLOAD [--jobs N] [--workers N] ...
"""

import sys
from pathlib import Path

from measure import main

FILL_CHUNK = 50_000
INSERT_SQL = "insert into task (queue, data, priority) values (?, ?, ?)"


class HueyAdapter:
    name = "huey"
    has_batch = False  # huey enqueues one task per call; there is no batch API

    def __init__(self, opts):
        self.opts = opts
        self.consumer = None

    def version(self):
        import huey

        return huey.__version__

    def load(self):
        import huey_app

        self.app = huey_app
        self.huey = huey_app.huey
        self.done = huey_app.done
        self.tasks = {"noop": huey_app.noop, "nap": huey_app.nap}

    def enqueue_one(self, task):
        self.tasks[task]()

    def enqueue_batch(self, task, count):
        raise NotImplementedError("huey has no batch API")

    def fill(self, task, count):
        # Same rows SqliteStorage.enqueue writes, many per transaction.
        storage, wrapper = self.huey.storage, self.tasks[task]
        left = count
        while left:
            size = min(left, FILL_CHUNK)
            rows = [(storage.name, self.huey.serialize_task(wrapper.s()), 0) for _ in range(size)]
            with storage.db(commit=True) as cursor:
                cursor.executemany(INSERT_SQL, rows)
            left -= size
        return "storage insert, 50,000 per transaction"

    def start_worker(self):
        self.consumer = self.huey.create_consumer(workers=self.opts.workers, worker_type="thread")
        self.consumer.start()

    def stop_worker(self):
        self.consumer.stop(graceful=True)

    def worker_alive(self):
        return True

    def submit_echo(self, value):
        return self.app.echo(value)

    def wait_result(self, handle, timeout):
        return handle.get(blocking=True, timeout=timeout)

    def completed(self):
        return None  # a None result is not stored; the task bodies count instead

    def serve(self):
        self.huey.create_consumer(workers=self.opts.workers, worker_type="thread").run()

    def cli_command(self):
        script = Path(sys.executable).parent / "huey_consumer"
        return [str(script), "huey_app.huey", "-w", str(self.opts.workers), "-k", "thread"]


if __name__ == "__main__":
    main(HueyAdapter, __file__)

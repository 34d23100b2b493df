"""Autoscaling: how many workers the rule asks for, and a controller starting real worker
processes for a backlog, then stopping them.

Run it: python examples/autoscaling.py
"""

import os
import sys
import tempfile
import textwrap
import time

from taskito import Queue
from taskito.autoscale import AutoscaleConfig, AutoscaleController, compute_desired_workers

APP = textwrap.dedent(
    """
    import os
    from taskito import Queue

    queue = Queue(db_path=os.environ["EXAMPLE_DB"], workers=2)

    @queue.task(name="resize")
    def resize(image_id):
        return image_id
    """
)


def main() -> None:
    config = AutoscaleConfig("imageapp:queue", min_workers=1, max_workers=3, target_queue_depth_per_worker=10)
    decision = compute_desired_workers(pending=25, running=0, current_workers=1, config=config)
    print(f"desired workers: {decision.desired_workers} ({decision.rationale})")

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "imageapp.py"), "w") as f:
            f.write(APP)
        os.environ["EXAMPLE_DB"] = os.path.join(tmp, "tasks.db")
        sys.path.insert(0, tmp)
        os.chdir(tmp)  # the worker processes import imageapp from here
        queue = Queue(db_path=os.environ["EXAMPLE_DB"], workers=2)
        jobs = [queue.enqueue("resize", (i,)) for i in range(25)]
        controller = AutoscaleController(queue, config)
        try:
            print("after one tick:", controller.tick().desired_workers, "workers")
            results = [job.result(timeout=60) for job in jobs]
            print("resized:", len(results))
            time.sleep(0.1)
        finally:
            controller.processes.shutdown()  # SIGTERM: each worker drains, then exits
        print("workers left:", controller.processes.count_live())
        queue.close()


if __name__ == "__main__":
    main()

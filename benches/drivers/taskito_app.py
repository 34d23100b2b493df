"""Tasks for taskito (ours and 0.22), configured from BENCH_* variables.

The driver and the `taskito worker --app taskito_app:queue` command both
import this module, so the task names match in both processes.
"""

import logging
import os
import time

from benchlib import Countdown

from taskito import Queue

# Per-job INFO logging would be measured instead of the engine.
logging.disable(logging.INFO)

queue = Queue(
    db_path=os.environ["BENCH_DB"],
    workers=int(os.environ.get("BENCH_WORKERS", "4")),
    scheduler_poll_interval_ms=50,
)
done = Countdown(int(os.environ.get("BENCH_EXPECT", "0")), os.environ.get("BENCH_DONE_FILE"))
SLEEP_S = float(os.environ.get("BENCH_SLEEP_MS", "20")) / 1000.0


@queue.task()
def noop():
    done.tick()


@queue.task()
def nap():
    time.sleep(SLEEP_S)
    done.tick()


@queue.task()
def echo(value):
    return value

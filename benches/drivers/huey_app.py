"""Tasks for huey (SqliteHuey, default settings), configured from BENCH_*.

The driver and `huey_consumer huey_app.huey -w 4 -k thread` both import
this module, so the task names match in both processes.
"""

import logging
import os
import time

from benchlib import Countdown
from huey import SqliteHuey

# Per-task INFO logging would be measured instead of the engine.
logging.disable(logging.INFO)

huey = SqliteHuey("bench", filename=os.environ["BENCH_DB"])
done = Countdown(int(os.environ.get("BENCH_EXPECT", "0")), os.environ.get("BENCH_DONE_FILE"))
SLEEP_S = float(os.environ.get("BENCH_SLEEP_MS", "20")) / 1000.0


@huey.task()
def noop():
    done.tick()


@huey.task()
def nap():
    time.sleep(SLEEP_S)
    done.tick()


@huey.task()
def echo(value):
    return value

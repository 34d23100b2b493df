# settings_env.py: a Queue() with no arguments reads TASKITO_* variables when it is created.
import os

from taskito import Queue

os.environ["TASKITO_DB_PATH"] = "from-env.db"   # normally set by the deployment, not the code
os.environ["TASKITO_WORKERS"] = "2"

queue = Queue()


@queue.task()
def where():
    return "ran"


job = where.delay()
queue.run_worker(run_once=True, workers=1)   # an argument of the call wins over the variable
print(queue.db_path.endswith("from-env.db"), job.result())   # True ran

os.environ["TASKITO_WORKERS"] = "eight"
try:
    Queue()
except ValueError as e:
    print(e)   # names TASKITO_WORKERS and what it expects

import logging

import taskito
from taskito import Queue

taskito.log_config.configure("INFO")     # a stderr handler on the `taskito` logger, added once
taskito.configure_logging("DEBUG")       # the same function: changes the level, adds nothing
logging.getLogger("taskito").setLevel(logging.INFO)   # plain logging works as well

queue = Queue(db_path="logging.db")


@queue.task()
def hello():
    return "hi"


hello.delay()
queue.run_worker(run_once=True)   # worker start and stop lines on stderr

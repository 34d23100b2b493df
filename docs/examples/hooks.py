import logging

from taskito import Queue

logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
log = logging.getLogger("shop")
queue = Queue(db_path="hooks.db")


@queue.task(name="charge")
def charge(order_id, amount):
    return amount


@queue.before_task
def before(task_name, args, kwargs):
    log.info("starting %s%r", task_name, args)


@queue.on_success
def succeeded(task_name, args, kwargs, result):
    log.info("%s returned %r", task_name, result)


@queue.on_failure
def failed(task_name, args, kwargs, error):
    log.warning("%s raised %r", task_name, error)


@queue.on_worker_start
def open_connections():
    log.info("worker starting")


@queue.on_worker_stop
def close_connections():
    log.info("worker stopped")


charge.delay(6, 12)
queue.run_worker(run_once=True)

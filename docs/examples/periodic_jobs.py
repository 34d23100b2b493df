# periodic_jobs.py: schedules live in the database; any number of workers fire each due time once.
import threading
import time

from taskito import Queue

queue = Queue(db_path="clock.db")


@queue.periodic("* * * * * *")                        # every second (6 fields: seconds first)
def heartbeat():
    return "beat"


@queue.periodic("0 30 2 * * *", name="nightly", args=("full",), timezone="Europe/Paris")
def backup(kind):
    return kind


worker = threading.Thread(target=queue.run_worker, daemon=True)
worker.start()
time.sleep(2.5)
queue.pause_periodic("nightly")                        # resume_periodic, delete_periodic
queue.shutdown()
worker.join()
for schedule in queue.list_periodic():
    print(schedule.name, schedule.cron_expr, schedule.timezone, schedule.enabled)
fired = queue.list_jobs(task_name=heartbeat.name, status="complete")
print(len(fired) >= 1, fired[0].result())              # True beat

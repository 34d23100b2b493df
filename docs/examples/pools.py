# pools.py: async tasks on the event loop, a task stuck in C code in the prefork pool (Linux).
import asyncio
import ctypes

from taskito import Queue

queue = Queue(db_path="pools.db", workers=2, async_concurrency=100, max_tasks_per_child=500)


@queue.task()
async def fetch(i):
    await asyncio.sleep(0.5)  # all 100 of these wait at once, on one event loop
    return i


@queue.task(timeout=2, max_retries=0)
def stuck_in_c():
    ctypes.CDLL(None).sleep(60)  # C code: no thread can be stopped in here, a process can


if __name__ == "__main__":
    jobs = [fetch.delay(i) for i in range(100)]
    queue.run_worker(run_once=True)  # thread pool: about 0.5 s for all 100
    job = stuck_in_c.delay()
    queue.run_worker(pool="prefork", run_once=True)  # its child is killed at 2 s
    print(sum(j.result() for j in jobs), job.refresh().status, job.error)

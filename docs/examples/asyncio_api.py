import asyncio

from taskito import Queue

queue = Queue(db_path="asyncio.db")


@queue.task()
async def slow_double(x):
    await asyncio.sleep(0.01)
    return 2 * x


async def main():
    worker = asyncio.create_task(queue.arun_worker())      # cancel the task to stop it
    job = await queue.aenqueue(slow_double.name, args=(21,))
    print(await job.aresult(timeout=10))                    # 42
    print((await queue.astats())["completed"])              # 1
    worker.cancel()                                         # drains: running jobs finish
    try:
        await worker
    except asyncio.CancelledError:
        pass


asyncio.run(main())

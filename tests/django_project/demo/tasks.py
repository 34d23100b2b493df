import asyncio

from django.tasks import task


@task()
def add(x, y=0):
    return x + y


@task()
def explode(message):
    raise ValueError(message)


@task(takes_context=True)
def whoami(context, tag):
    return {"id": context.task_result.id, "attempt": context.attempt, "tag": tag,
            "worker_ids": context.task_result.worker_ids}  # fmt: skip


@task()
async def slow_double(x):
    await asyncio.sleep(0.01)
    return x * 2


@task(priority=5, queue_name="urgent")
def urgent(x):
    return f"urgent {x}"

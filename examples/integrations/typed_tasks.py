"""Typed tasks: ``@queue.task`` keeps the function's signature, so a type checker checks
``delay`` calls and knows what ``result()`` returns (run ``mypy --strict`` on this file)."""

import asyncio
import tempfile

from taskito import JobResult, Queue

queue = Queue(db_path=f"{tempfile.mkdtemp()}/tasks.db")


@queue.task()
def total(prices: list[float], discount: float = 0.0) -> float:
    return sum(prices) * (1 - discount)


@queue.task()
async def shout(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


if __name__ == "__main__":
    job: JobResult[float] = total.delay([10.0, 5.0], discount=0.5)
    loud: JobResult[str] = shout.delay("hi")
    # total.delay("10")  would be an error: "str" is not "list[float]"
    queue.run_worker(run_once=True)
    value: float = job.result(timeout=10)
    print("total:", value, "shout:", loud.result(timeout=10))

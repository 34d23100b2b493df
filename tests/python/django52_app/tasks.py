"""Found by the app's autodiscovery: registers a task on the project's queue."""

from taskito.contrib.django.settings import get_queue

queue = get_queue()


@queue.task(name="django52_app.tasks.ping", max_retries=0)
def ping(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x

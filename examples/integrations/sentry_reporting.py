"""Job failures in Sentry: ``TaskitoIntegration`` reports a job's exception with the job
as tags and context. This example prints what would be sent instead of sending it (a
transport of its own); in production, give ``sentry_sdk.init`` your DSN and nothing else."""

import tempfile

import sentry_sdk
from sentry_sdk.transport import Transport

from taskito import Queue
from taskito.contrib.sentry import TaskitoIntegration


class PrintTransport(Transport):
    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                event = item.payload.json
                error = event["exception"]["values"][-1]
                print("event:", error["type"], error["value"])
                print("tags: ", {k: v for k, v in sorted(event["tags"].items()) if k.startswith("taskito.")})


sentry_sdk.init(
    dsn="https://key@sentry.invalid/1",
    transport=PrintTransport(),
    integrations=[TaskitoIntegration(report="final_failure")],
)

queue = Queue(db_path=f"{tempfile.mkdtemp()}/tasks.db")


@queue.task(max_retries=0)
def charge(order_id: int) -> None:
    raise RuntimeError(f"card declined for order {order_id}")


if __name__ == "__main__":
    charge.delay(42)
    queue.run_worker(run_once=True)
    sentry_sdk.flush()

import json
import os

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"

    def ready(self) -> None:
        from django.tasks.signals import task_enqueued, task_finished, task_started

        def record(kind: str):
            def receiver(sender, task_result, **kwargs):
                path = os.environ.get("DEMO_SIGNAL_LOG")
                if path:
                    line = {"signal": kind, "id": task_result.id, "status": str(task_result.status),
                            "pid": os.getpid(), "sender": sender.__name__}  # fmt: skip
                    with open(path, "a") as f:
                        f.write(json.dumps(line) + "\n")

            return receiver

        self.receivers = [record("enqueued"), record("started"), record("finished")]
        task_enqueued.connect(self.receivers[0])
        task_started.connect(self.receivers[1])
        task_finished.connect(self.receivers[2])

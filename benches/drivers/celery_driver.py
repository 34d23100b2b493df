"""Driver for Celery (Redis broker and result backend), worker by its own CLI.

python celery_driver.py WORKLOAD [--jobs N] [--workers N] ...
"""

import sys
from pathlib import Path

from measure import main
from redis_support import RedisAdapterBase, flush


class CeleryAdapter(RedisAdapterBase):
    name = "celery"

    def version(self):
        import celery

        return celery.__version__

    def load(self):
        import celery_app

        flush()
        self.app = celery_app

    def submit_echo(self, value):
        return self.app.echo.delay(value)

    def wait_result(self, handle, timeout):
        return handle.get(timeout=timeout)

    def serve(self):
        self.app.app.worker_main(["worker", "-c", str(self.opts.workers), "-l", "warning"])

    def cli_command(self):
        script = Path(sys.executable).parent / "celery"
        return [str(script), "-A", "celery_app", "worker", "-c", str(self.opts.workers), "-l", "warning"]


if __name__ == "__main__":
    main(CeleryAdapter, __file__)

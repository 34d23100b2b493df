"""Driver for RQ, worker by its own CLI (`rq worker`, default worker class).

python rq_driver.py WORKLOAD [--jobs N] [--workers N] ...
"""

import math
import sys
from pathlib import Path

from measure import main
from redis_support import REDIS_URL, RedisAdapterBase, flush


class RQAdapter(RedisAdapterBase):
    name = "rq"

    def version(self):
        import rq

        return rq.__version__

    def load(self):
        import rq_app

        flush()
        self.app = rq_app

    def submit_echo(self, value):
        return self.app.queue.enqueue(self.app.echo, value)

    def wait_result(self, handle, timeout):
        # Blocks on the job's result stream (RQ 2), not by polling; whole seconds only
        # (redis-py refuses a fractional block time).
        result = handle.latest_result(timeout=max(1, math.ceil(timeout)))
        if result is None:
            raise TimeoutError(f"no result within {timeout}s")
        if result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"job failed: {result.exc_string}")
        return result.return_value

    def serve(self):
        from rq import Worker

        Worker([self.app.queue], connection=self.app.conn).work()

    def cli_command(self):
        script = Path(sys.executable).parent / "rq"
        return [str(script), "worker", "--url", REDIS_URL, "default"]


if __name__ == "__main__":
    main(RQAdapter, __file__)

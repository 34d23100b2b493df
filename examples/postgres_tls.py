"""A queue on PostgreSQL over TLS, verifying the server (sslmode=verify-full): enqueues a
job, runs it in a worker thread and prints its result and how the session is protected.

    export TASKITO_DB_URL='postgresql://app:secret@db.internal:5432/app
    ?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem'   (one line)
    python examples/postgres_tls.py
"""

from __future__ import annotations

import os
import threading

from taskito import Queue

queue = Queue(db_url=os.environ["TASKITO_DB_URL"], schema=os.environ.get("TASKITO_SCHEMA", "taskito"))


@queue.task()
def greet(name: str) -> str:
    return f"hello, {name}"


def main() -> None:
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    print(greet.delay("TLS").result(timeout=30))
    # The URL shown never holds the password.
    print(f"queue: {queue.db_path}")
    queue.shutdown()
    worker.join(30)
    queue.close()


if __name__ == "__main__":
    main()

"""Enqueue inside the application's own transaction (PostgreSQL, psycopg 3): an order row
and the job that e-mails its receipt are committed together, or not at all.

    TASKITO_DB_URL=postgresql://app:secret@localhost:5432/app python examples/transactional_enqueue.py
"""

from __future__ import annotations

import os
import threading

import psycopg

from taskito import Queue

DB_URL = os.environ["TASKITO_DB_URL"]
queue = Queue(db_url=DB_URL)


@queue.task()
def send_receipt(order_id: int) -> str:
    return f"receipt for order {order_id} sent"


def place_order(conn: psycopg.Connection, item: str, fail: bool = False) -> int:
    """Stores an order and enqueues its receipt in one transaction."""
    with conn.transaction():
        (order_id,) = conn.execute("INSERT INTO orders (item) VALUES (%s) RETURNING id", [item]).fetchone()
        with queue.using(conn):
            send_receipt.delay(order_id)
        if fail:
            raise RuntimeError("payment declined")
    return order_id


def main() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, item text NOT NULL)")
        try:
            place_order(conn, "teapot", fail=True)
        except RuntimeError as e:
            print(f"order rolled back ({e}): no receipt job, pending = {queue.stats()['pending']}")
        order_id = place_order(conn, "kettle")
    (job,) = queue.list_jobs(status="pending")
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    print(job.result(timeout=30))
    print(f"order {order_id} committed with its job")
    queue.shutdown()
    worker.join(30)
    queue.close()


if __name__ == "__main__":
    main()

"""Signed payloads in one program: a job runs, a job relabelled in the database by someone
without the key is refused unread, and rotating the key keeps pending jobs running.

Run it with ``python examples/trust.py``; it prints what happened and exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from taskito import Queue

NEW_KEY = os.urandom(32)
OLD_KEY = os.urandom(32)


def make_queue(path: str, key: bytes | list[bytes]) -> Queue:
    queue = Queue(db_path=path, workers=1, secret_key=key)

    @queue.task(name="greet")
    def greet(name: str) -> str:
        return f"hello {name}"

    @queue.task(name="delete_account")
    def delete_account(name: str) -> str:
        return f"deleted {name}"

    return queue


def relabel(path: str, job_id: str, task_name: str) -> None:
    """What someone who can write the file but holds no key might do, from another process."""
    script = (
        "import sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1])\n"
        "with con:\n"
        "    con.execute('UPDATE jobs SET task_name = ? WHERE id = ?', (sys.argv[3], sys.argv[2]))\n"
    )
    subprocess.run([sys.executable, "-c", script, path, job_id, task_name], check=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "queue.db")
        old = make_queue(path, OLD_KEY)
        signed_with_old_key = old.enqueue("greet", args=("ada",))

        # Rotate: sign with the new key, still verify the old one.
        queue = make_queue(path, [NEW_KEY, OLD_KEY])
        tampered = queue.enqueue("greet", args=("bob",))
        relabel(path, tampered.id, "delete_account")
        queue.run_worker(run_once=True)

        print("job signed with the old key:", queue.get_job(signed_with_old_key.id).result(timeout=10))
        print("relabelled job:", tampered.status, "-", (tampered.error or "").split(":")[0])
        assert tampered.status == "failed" and "CryptoError" in (tampered.error or "")
        counts = queue.stats()
        print("jobs completed:", counts["completed"], "failed:", counts["failed"])
        assert counts["completed"] == 1 and counts["failed"] == 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reads and writes a queue database's raw bytes the way someone with write access to the file
would: from another process, with the sqlite3 module. (In the test process itself, a second
SQLite library, or even closing a second descriptor of the file, would drop the engine's POSIX
locks.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys

_SCRIPT = r"""
import json, sqlite3, sys
req = json.loads(sys.argv[1])
if req["op"] == "raw":
    out = b""
    for suffix in ("", "-wal"):
        try:
            with open(req["path"] + suffix, "rb") as f:
                out += f.read()
        except FileNotFoundError:
            pass
    sys.stdout.write(out.hex())
    sys.exit(0)
con = sqlite3.connect(req["path"], timeout=30)
where = "id = ?" if req["table"] == "jobs" else "original_job_id = ?"
if req["op"] == "get":
    row = con.execute(f"SELECT {req['column']} FROM {req['table']} WHERE {where}", (req["id"],)).fetchone()
    sys.stdout.write("" if row is None or row[0] is None else bytes(row[0]).hex())
else:
    with con:
        n = con.execute(
            f"UPDATE {req['table']} SET {req['column']} = ? WHERE {where}",
            (bytes.fromhex(req["data"]), req["id"]),
        ).rowcount
    assert n == 1, n
con.close()
"""


def _run(req: dict) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(req)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def get_blob(path: str, job_id: str, column: str = "payload", table: str = "jobs") -> bytes:
    """A job's stored payload (or ``result``) bytes."""
    return bytes.fromhex(_run({"op": "get", "path": path, "id": job_id, "column": column, "table": table}))


def set_blob(path: str, job_id: str, data: bytes, column: str = "payload", table: str = "jobs") -> None:
    """Overwrites a job's stored payload (or ``result``) bytes."""
    _run({"op": "set", "path": path, "id": job_id, "column": column, "table": table, "data": data.hex()})


def raw_bytes(path: str) -> bytes:
    """The database file and its write-ahead log, byte for byte."""
    return bytes.fromhex(_run({"op": "raw", "path": path}))


def flip(data: bytes, at: int) -> bytes:
    """``data`` with the byte at ``at`` (negative counts from the end) changed."""
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


def signed(key: bytes, context: bytes, body: bytes) -> bytes:
    """A payload as a holder of ``key`` signs it for ``context``: the format byte, the
    HMAC-SHA256 of the context (length-prefixed) and body, then the body."""
    covered = b"taskito.hmac.v2\x00" + len(context).to_bytes(4, "big") + context + body
    return b"\xa2" + hmac.digest(key, covered, hashlib.sha256) + body


def args_context(task_name: str) -> bytes:
    return b"taskito.args\x00" + task_name.encode()


def result_context(job_id: str) -> bytes:
    return b"taskito.result\x00" + job_id.encode()

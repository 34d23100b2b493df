"""What a payload's signature (or AES-GCM tag) covers beyond its bytes: where they belong.

A call's arguments are bound to their task name, a result to its job id, each with a role
tag, so bytes moved to another row (a ``greet`` payload relabelled ``delete_account``, one
job's result copied into another) fail verification instead of reaching a deserializer.
Replaying a row's own bytes in place is not stopped by this: see ``docs/guides/trust.md``.

Also here: the secret key list (the first key signs, any verifies), and the idempotency key
derived from a call's serialized arguments before any codec, keyed with the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from taskito._settings import MIN_SECRET_KEY_BYTES as MIN_KEY_BYTES

ROLE_ARGS = b"taskito.args\x00"
ROLE_RESULT = b"taskito.result\x00"


def args_context(task_name: str) -> bytes:
    """The context a call's arguments are bound to: their role and their task."""
    return ROLE_ARGS + task_name.encode()


def result_context(job_id: str) -> bytes:
    """The context a job's result is bound to: its role and its job."""
    return ROLE_RESULT + job_id.encode()


def binds_context(codec: Any) -> bool:
    """Whether a codec takes the context (``encode_bound`` / ``decode_bound``)."""
    return callable(getattr(codec, "encode_bound", None)) and callable(getattr(codec, "decode_bound", None))


def _one_key(option: str, value: Any) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise ValueError(f"{option} must be bytes or str, got {type(value).__name__}")
    if len(value) < MIN_KEY_BYTES:
        raise ValueError(
            f"{option} must be at least {MIN_KEY_BYTES} bytes (32 random bytes are best), got {len(value)}"
        )
    return value


def key_list(option: str, value: Any) -> list[bytes]:
    """One key or a list of keys as a checked list of bytes: the first signs, any verifies.
    A key shorter than 32 bytes is a ValueError naming its position, never its text."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{option} must not be an empty list")
        return [_one_key(f"{option}[{i}]", v) for i, v in enumerate(value)]
    return [_one_key(option, value)]


def idempotency_digest(secret: bytes | None, task_name: str, plain: bytes) -> str:
    """The unique key of an idempotent call from its serialized arguments before any codec:
    equal calls get equal keys even under a randomized codec. With a secret the digest is
    an HMAC, so the key does not let a reader test guesses of the arguments."""
    body = task_name.encode() + b"\x00" + plain
    if secret is None:
        return "idem:" + hashlib.sha256(body).hexdigest()
    # 128 bits, as the unkeyed key: it sits in a unique index every claim updates.
    return "idem:" + hmac.new(secret, b"taskito.idem\x00" + body, hashlib.sha256).hexdigest()[:32]


def parent_values(queue: Any, job_id: str, results: list[bytes | None]) -> list[Any]:
    """The stored results of a canvas step's parents, each verified against its own job id
    (read from the step's dependencies, in the same order as ``results``)."""
    payloads = queue._payloads
    ids = [""] * len(results)
    if payloads.binds_results and results:
        ids = queue._inner.job_links(job_id)[0]
        if len(ids) != len(results):
            from taskito.exceptions import CryptoError

            raise CryptoError(f"job {job_id} has {len(results)} parent results but {len(ids)} parents")
    out = []
    for parent, data in zip(ids, results):
        if data is None:
            out.append(None)
            continue
        plan = payloads.queue_plan
        if payloads.per_task_serializer and parent:
            row = queue._inner.get_job(parent)
            if row is not None:
                plan = queue._plan_for(row["task_name"])
        out.append(plan.load_result(data, parent))
    return out

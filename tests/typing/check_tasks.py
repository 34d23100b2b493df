"""Checked by ``mypy --strict`` and ``pyright`` (never run by pytest): a decorated task keeps
its function's signature. Each ``assert_type`` states what a checker must infer, and each
``# type: ignore[...]`` marks a call that must be an error: with ``warn_unused_ignores``
(mypy) and ``reportUnnecessaryTypeIgnoreComment`` (pyright) an ignore that suppresses
nothing fails the check, so a wrong call that type-checks fails it too."""

from __future__ import annotations

import sys

from taskito import JobResult, Queue
from taskito.canvas import Signature
from taskito.task import AsyncTaskWrapper, TaskWrapper

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

queue = Queue(db_path=":memory:")


@queue.task()
def add(x: int, y: int = 0) -> int:
    return x + y


@queue.task
def greet(name: str, *, shout: bool = False) -> str:
    return name.upper() if shout else name


@queue.task(max_retries=2, queue="io")
async def fetch(url: str) -> bytes:
    return url.encode()


def typed_calls() -> None:
    wrapper: TaskWrapper[..., int] = add
    del wrapper
    assert_type(add(1, 2), int)
    job = add.delay(1, y=2)
    assert_type(job, JobResult[int])
    assert_type(job.result(), int)
    assert_type(add.apply_async((1, 2)), JobResult[int])
    assert_type(add.s(1), Signature[int])
    assert_type(add.s(1).apply(), JobResult[int])
    assert_type(add.si(1, 2), Signature[int])
    assert_type(add.map([(1, 2)]), list[JobResult[int]])
    assert_type(greet.delay("ann", shout=True).result(timeout=5), str)


async def typed_async_calls() -> None:
    wrapper: AsyncTaskWrapper[..., bytes] = fetch
    del wrapper
    assert_type(await fetch("u"), bytes)
    job = fetch.delay("https://example.org")
    assert_type(job, JobResult[bytes])
    assert_type(await job.aresult(), bytes)


def wrong_calls() -> None:
    add.delay("one")  # type: ignore[arg-type]
    add.delay(1, z=3)  # type: ignore[call-arg]
    add.delay()  # type: ignore[call-arg]
    greet.delay("ann", True)  # type: ignore[call-arg]
    add.s("x")  # type: ignore[arg-type]
    fetch.delay(3)  # type: ignore[arg-type]
    text: str = add.delay(1).result()  # type: ignore[assignment]
    del text

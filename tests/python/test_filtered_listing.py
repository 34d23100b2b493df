"""``list_jobs_filtered`` and its keyset form ``list_jobs_filtered_after``: metadata and error
patterns and a creation-time range on top of ``list_jobs``'s filters."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_pagination import _all_pages

from taskito import Queue


def _fill(q: Queue) -> dict[str, list[str]]:
    """Jobs of two tenants, some failed with a timeout, in a known order."""

    @q.task(name="work", max_retries=0)
    def work(n):
        if n % 3 == 0:
            raise TimeoutError(f"upstream Timeout after {n}s")
        return n

    ids: dict[str, list[str]] = {"acme": [], "other": [], "timeout": []}
    for n in range(1, 13):
        tenant = "acme" if n % 2 else "other"
        job = work.apply_async((n,), metadata={"tenant": tenant, "n": n})
        ids[tenant].append(job.id)
        if n % 3 == 0:
            ids["timeout"].append(job.id)
    q.run_worker(run_once=True)
    return ids


def _pages(q: Queue, **filters: object) -> list[list[str]]:
    return _all_pages(q, "list_jobs_filtered_after", **filters)


def test_filters_by_metadata_error_and_creation_time(queue: Queue) -> None:
    ids = _fill(queue)
    acme = [j.id for j in queue.list_jobs_filtered(metadata_like='"tenant": "acme"', limit=100)]
    assert acme == ids["acme"]  # oldest first, like list_jobs
    timeouts = queue.list_jobs_filtered(error_like="TIMEOUT", status="dead")
    assert [j.id for j in timeouts] == ids["timeout"]
    # `%` and `_` are LIKE wildcards inside the pattern.
    assert [j.id for j in queue.list_jobs_filtered(error_like="upstream%after 1_s")] == [ids["timeout"][-1]]
    both = queue.list_jobs_filtered(metadata_like="acme", error_like="timeout")
    assert [j.id for j in both] == [i for i in ids["timeout"] if i in ids["acme"]]

    rows = queue.list_jobs(limit=100)
    created = [j.to_dict()["created_at"] for j in rows]
    middle = created[len(created) // 2]
    later = queue.list_jobs_filtered(created_after=middle, limit=100)
    assert {j.id for j in later} == {j.id for j, c in zip(rows, created) if c > middle}
    earlier = queue.list_jobs_filtered(created_before=middle, limit=100)
    assert {j.id for j in earlier} == {j.id for j, c in zip(rows, created) if c < middle}
    assert (
        queue.list_jobs_filtered(metadata_like="acme", limit=2, offset=1)
        == queue.list_jobs_filtered(metadata_like="acme", limit=100)[1:3]
    )
    assert queue.list_jobs_filtered(metadata_like="nobody") == []


def test_keyset_pages_take_the_same_filters(queue: Queue) -> None:
    ids = _fill(queue)
    pages = _pages(queue, metadata_like="acme", limit=2)
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [i for p in pages for i in p] == ids["acme"][::-1]  # newest first
    dead_acme = [i for i in ids["timeout"] if i in ids["acme"]]
    assert _pages(queue, status="dead", metadata_like="acme", error_like="timeout") == [dead_acme[::-1]]
    now_ms = time.time() * 1000 + 60_000
    assert _pages(queue, created_after=now_ms) == [[]]
    assert [i for p in _pages(queue, created_before=now_ms, limit=5) for i in p] == [
        j.id for j in queue.list_jobs(limit=100)
    ][::-1]


def test_inserts_between_pages_neither_skip_nor_repeat(queue: Queue) -> None:
    ids = _fill(queue)
    first = queue.list_jobs_filtered_after(metadata_like="acme", limit=3)
    queue.enqueue("work", (101,), metadata={"tenant": "acme"})  # newer than every page
    rest = queue.list_jobs_filtered_after(metadata_like="acme", limit=100, after=first.next_cursor)
    assert [j.id for j in first] + [j.id for j in rest] == ids["acme"][::-1]
    assert rest.next_cursor is None


def test_async_twins(queue: Queue) -> None:
    ids = _fill(queue)

    async def main() -> tuple[list[str], list[str]]:
        page = await queue.alist_jobs_filtered_after(metadata_like="other", limit=100)
        listed = await queue.alist_jobs_filtered(metadata_like="other", limit=100)
        return [j.id for j in page], [j.id for j in listed]

    paged, listed = asyncio.run(main())
    assert paged == ids["other"][::-1] and listed == ids["other"]


def test_bad_filters_are_refused(queue: Queue) -> None:
    for kwargs in (
        {"metadata_like": 5},
        {"error_like": b"x"},
        {"created_after": "yesterday"},
        {"created_before": float("nan")},
        {"created_after": True},
        {"limit": -1},
    ):
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=name):
            queue.list_jobs_filtered(**kwargs)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=name):
            queue.list_jobs_filtered_after(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="offset"):
        queue.list_jobs_filtered(offset=-1)
    with pytest.raises(ValueError, match="after"):
        queue.list_jobs_filtered_after(after="not-a-cursor")
    with pytest.raises(ValueError, match="status"):
        queue.list_jobs_filtered_after(status="nope")

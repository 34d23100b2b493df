"""Keyset pagination: ``Page``, ``list_jobs_after`` and ``dead_letters_after``."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from taskito import Queue
from taskito.pagination import Page


def _all_pages(q: Queue, listing: str = "list_jobs_after", **filters: object) -> list[list[str]]:
    """The ids of every page ``listing`` returns, following the cursors."""
    pages, after = [], None
    while True:
        page = getattr(q, listing)(after=after, **filters)
        pages.append([j.id for j in page])
        if page.next_cursor is None:
            return pages
        after = page.next_cursor


def test_page_is_a_frozen_iterable_with_len() -> None:
    page = Page(items=(1, 2, 3), next_cursor="abc")
    assert list(page) == [1, 2, 3] and len(page) == 3 and page.next_cursor == "abc"
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.next_cursor = None  # type: ignore[misc]


def test_pages_cover_every_job_newest_first(queue: Queue) -> None:
    ids = [j.id for j in queue.enqueue_many("t", [(i,) for i in range(23)])]
    pages = _all_pages(queue, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == ids[::-1]
    page = queue.list_jobs_after(limit=100)
    assert page.next_cursor is None and len(page) == 23
    assert page.items[0].status == "pending" and page.items[0].to_dict()["task_name"] == "t"


def test_exact_multiple_ends_without_an_empty_page(queue: Queue) -> None:
    queue.enqueue_many("t", [(i,) for i in range(10)])
    first = queue.list_jobs_after(limit=5)
    second = queue.list_jobs_after(limit=5, after=first.next_cursor)
    assert len(second) == 5 and second.next_cursor is None


def test_inserts_between_pages_never_skip_or_repeat(queue: Queue) -> None:
    old = [j.id for j in queue.enqueue_many("t", [(i,) for i in range(30)])]
    seen: list[str] = []
    page = queue.list_jobs_after(limit=7)
    while True:
        seen += [j.id for j in page]
        queue.enqueue_many("t", [(0,)] * 3)  # newer rows arrive while paging
        if page.next_cursor is None:
            break
        page = queue.list_jobs_after(limit=7, after=page.next_cursor)
    assert seen == old[::-1]


def test_filters(queue: Queue) -> None:
    @queue.task(queue="a")
    def ok(i: int) -> int:
        return i

    @queue.task(queue="b", max_retries=0)
    def bad(i: int) -> None:
        raise ValueError(i)

    good = [ok.delay(i).id for i in range(6)]
    failed = [bad.delay(i).id for i in range(4)]
    queue.run_worker(run_once=True)
    waiting = [ok.delay(i).id for i in range(3)]
    assert [i for p in _all_pages(queue, status="complete", limit=4) for i in p] == good[::-1]
    assert [i for p in _all_pages(queue, status="completed", limit=4) for i in p] == good[::-1]
    assert [i for p in _all_pages(queue, status="dead", limit=3) for i in p] == failed[::-1]
    assert [i for p in _all_pages(queue, queue="b", limit=3) for i in p] == failed[::-1]
    assert [i for p in _all_pages(queue, task_name=ok.name, limit=4) for i in p] == (good + waiting)[::-1]
    assert [i for p in _all_pages(queue, status="pending", queue="a") for i in p] == waiting[::-1]
    assert list(queue.list_jobs_after(queue="nope")) == []


def test_both_read_plans_give_the_same_pages(queue: Queue) -> None:
    # Over 10,000 rows of one status the store walks the table; under, it sorts the
    # status index. Rows of the common and the rare status page the same way.
    ids = [j.id for j in queue.enqueue_many("t", [(i,) for i in range(12_000)])]
    cancelled = ids[5::997]
    for i in cancelled:
        assert queue.cancel_job(i)
    pending = [i for i in ids if i not in set(cancelled)]
    assert [i for p in _all_pages(queue, status="cancelled", limit=4) for i in p] == cancelled[::-1]
    got = [i for p in _all_pages(queue, status="pending", limit=1000) for i in p]
    assert got == pending[::-1]
    assert [i for p in _all_pages(queue, status="pending", queue="default", limit=5000) for i in p] == got


def test_bad_arguments(queue: Queue) -> None:
    with pytest.raises(ValueError, match="limit"):
        queue.list_jobs_after(limit=-1)
    with pytest.raises(ValueError, match="limit"):
        queue.dead_letters_after(limit=-1)
    with pytest.raises(ValueError, match="after"):
        queue.list_jobs_after(after="not a cursor")
    with pytest.raises(ValueError, match="status"):
        queue.list_jobs_after(status="finished")
    page = queue.list_jobs_after(limit=0)
    assert len(page) == 0 and page.next_cursor is None


def test_dead_letters_after(queue: Queue) -> None:
    @queue.task(max_retries=0)
    def bad(i: int) -> None:
        raise ValueError(i)

    jobs = [bad.delay(i).id for i in range(7)]
    queue.run_worker(run_once=True)
    seen, after = [], None
    while True:
        page = queue.dead_letters_after(limit=3, after=after)
        assert len(page) <= 3
        seen += [d["original_job_id"] for d in page]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    # Newest letter first: the order the jobs died in, as dead_letters() lists them.
    assert sorted(seen) == sorted(jobs)
    assert seen == [d["original_job_id"] for d in queue.dead_letters(limit=100)]
    assert set(page.items[0]) >= {"id", "original_job_id", "task_name", "queue", "error", "retry_count"}


def test_async_twins(queue: Queue) -> None:
    queue.enqueue_many("t", [(i,) for i in range(3)])

    async def main() -> tuple[Page, Page]:
        return await queue.alist_jobs_after(limit=2), await queue.adead_letters_after()

    jobs, dead = asyncio.run(main())
    assert len(jobs) == 2 and jobs.next_cursor is not None
    assert len(dead) == 0 and dead.next_cursor is None

"""``Page``: one page of a keyset-paginated listing. Pass ``next_cursor`` back as ``after=``
to get the next page; rows inserted meanwhile never make a page skip or repeat a row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Page"]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    #: The cursor of the next page, None on the last one.
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

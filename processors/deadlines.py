"""The deadline book: every running time limit of a district, finding the next due one without scanning them all.

A heap ordered by (due, key). Moving or dropping a deadline does not search the
heap: the book remembers each key's current due time, and a popped entry that
no longer matches it is stale and skipped.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Hashable


class DeadlineBook:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, tuple]] = []
        self._due: dict[tuple, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: tuple) -> bool:
        return key in self._due

    def set(self, key: tuple[Hashable, ...], due: datetime) -> None:
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        # stale entries pile up when deadlines are moved often; rebuild before they dominate
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
            self._heap = [(d, k) for k, d in self._due.items()]
            heapq.heapify(self._heap)

    def drop(self, key: tuple[Hashable, ...]) -> None:
        self._due.pop(key, None)

    def next_due(self) -> datetime | None:
        """When the earliest running deadline is due (None: none is running)."""
        heap = self._heap
        # stale entries at the top are the ones pop_due would skip; dropped here so that the top is current
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def entries(self) -> list[tuple[tuple, datetime]]:
        """Every running deadline as (key, due), in the order they were set (for a snapshot)."""
        return list(self._due.items())

    def due(self, key: tuple[Hashable, ...]) -> datetime | None:
        return self._due.get(key)

    def pop_due(self, now: datetime) -> list[tuple[datetime, tuple]]:
        """Every deadline at or before `now`, earliest first (ties by key), removed from the book."""
        fired = []
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                fired.append((due, key))
        return fired

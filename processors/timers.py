"""The timer service: at most one pending timer per key, fired in order of instant.

The SLA processor keeps one timer per ticket (its earliest warning or breach instant); the driver
schedules it after every step and pops what is due as event time advances. This is runtime
infrastructure, but deterministic and clock-free (``now`` arrives as a value), so it lives with
the domain.

A binary heap with lazy invalidation: rescheduling or cancelling a key only updates the index;
the old heap entry stays behind, is recognised as stale when it surfaces and is skipped. Firing
costs O(log n) per timer whatever the number of keys. Entries are plain ``(at, seq, key)``
tuples and the index maps a key to its live entry itself (an entry is live when the index holds
that very object), so a pending timer costs one tuple, one int and one dict slot: with a million
open tickets every byte per key counts (``loadtest/bench.py``). When stale entries outnumber
live ones the heap is rebuilt from the index, which bounds the heap to twice the live timers
and keeps the amortised cost logarithmic.
"""

from __future__ import annotations

import heapq

from processors.model import Millis

__all__ = ["TimerQueue"]

# Below this many heap entries compaction is not worth a rebuild.
_COMPACT_MIN = 64


class TimerQueue:
    """Pending timers by key, popped in (instant, scheduling order) order."""

    __slots__ = ("_heap", "_index", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[Millis, int, str]] = []
        self._index: dict[str, tuple[Millis, int, str]] = {}  # key -> its live heap entry
        self._seq = 0

    def __len__(self) -> int:
        """Number of keys with a pending timer."""
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def when(self, key: str) -> Millis | None:
        """The pending instant of ``key``, or None."""
        entry = self._index.get(key)
        return None if entry is None else entry[0]

    def schedule(self, key: str, at: Millis) -> None:
        """Set ``key``'s timer to ``at``, replacing its previous one.

        Rescheduling to the instant already pending changes nothing (the key keeps its place
        among timers of that instant), which makes the driver's "schedule after every step" free.
        """
        current = self._index.get(key)
        if current is not None and current[0] == at:
            return
        seq = self._seq
        self._seq = seq + 1
        entry = (at, seq, key)
        self._index[key] = entry
        heapq.heappush(self._heap, entry)
        self._maybe_compact()

    def cancel(self, key: str) -> None:
        """Drop ``key``'s timer, if any."""
        if self._index.pop(key, None) is not None:
            self._maybe_compact()

    def peek(self) -> Millis | None:
        """The earliest pending instant, or None."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_next(self, now: Millis) -> tuple[Millis, str] | None:
        """Remove and return the earliest timer if its instant is at or before ``now``.

        Lets a driver interleave: fire one, reschedule that key (possibly again before ``now``),
        pop the next, so timers of all keys fire in strict instant order.
        """
        self._drop_stale_top()
        heap = self._heap
        if not heap or heap[0][0] > now:
            return None
        at, _, key = heapq.heappop(heap)
        del self._index[key]
        return at, key

    def pop_due(self, now: Millis) -> list[tuple[Millis, str]]:
        """Remove and return every timer with instant ``<= now``, in (instant, seq) order."""
        heap, index = self._heap, self._index
        fired: list[tuple[Millis, str]] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            at, _, key = entry
            if index.get(key) is entry:
                del index[key]
                fired.append((at, key))
        return fired

    def _drop_stale_top(self) -> None:
        heap, index = self._heap, self._index
        while heap:
            entry = heap[0]
            if index.get(entry[2]) is entry:
                return
            heapq.heappop(heap)

    def _maybe_compact(self) -> None:
        heap_size, live = len(self._heap), len(self._index)
        if heap_size > _COMPACT_MIN and heap_size - live > live:
            # The live entries are the index's values: the rebuild allocates no new tuples.
            self._heap = list(self._index.values())
            heapq.heapify(self._heap)

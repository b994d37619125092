"""The desk's one order, merged back from the raw partitions the workers parse in parallel.

``replay`` applies records in the order of ``at``, records with the same ``at`` in file order
(CONTRACT §1). The desk must apply them in that order too: e-mail threading, identities and
automatic assignment read state that spans conversations, so applying a crm update after a
contact it precedes, or two tickets in the other order, changes tickets (docs/PRODUCTION.md).
The raw records, though, arrive on many partitions, parsed by several workers
(``streams.intake``), interleaved on ``desk-input`` in whatever order the workers got there.

:class:`Merge` puts them back in order. An entry's place is its key ``(at, sequence,
partition, offset)``: ``sequence`` is the publisher's order among records of one instant (a
backfill's file order; 0 from a connector, whose ties go by partition). Within one raw
partition the keys only grow (a connector stamps ``at`` as it receives, ``publish`` sends in
replay order), so the last key forwarded from a partition is a lower bound of everything it
will forward: its *frontier*. An owner whose partition holds nothing more sends a mark, and the
partition's frontier becomes ``(upto,)``, the wall clock less a grace, below every key of that
instant or later. An entry is applied once its key is at most every partition's frontier:
nothing that precedes it can still come. A partition not heard from yet holds everything back.

* **Exactly replay's order** for records that are all in their partitions before any
  partition's frontier has passed them (a backfill published before the workers first start,
  the differential tests), whatever the partitions and their owners.
* **Live**, a record is applied once every other partition has gone past its instant or has
  marked, since, an instant after it: a mark says ``now - grace`` (2 s) and comes every
  second, so with quiet partitions a record waits 2 to 3 s.
* **Late** records (a key below what was applied already: clock skew between connectors on one
  partition, or history published into a running deployment) are applied on arrival, as the
  single-order desk always did; the SLA clock does not run backwards (``LocalRunner``).
* **Duplicates**: a partition's owner forwards from its committed offset after a restart, so
  an entry can come twice; the merge remembers each partition's next offset and drops what is
  below it. Marks only move a partition forward (their offset is the owner's committed one).
* **Timers** may fire up to just before the lowest frontier (:meth:`Merge.fire_bound`): every
  record before that instant has been applied, exactly as replay fires them.

The merge's state lives in two mappings the desk keeps in its Faust table (so it is in the
changelog, committed with each input): per partition its next offset and frontier, and the
buffer of entries waiting. The buffer's order is an in-memory heap, rebuilt when the desk is
built (after a restart or a rebalance).
"""

from __future__ import annotations

import heapq
from collections.abc import MutableMapping
from typing import Any

from processors.model import Millis
from streams.intake import Entry, Key, Mark, entry_from_json, entry_to_json

COUNT = "count"
"""Key of the number of raw partitions (the largest the intake has reported) in ``partitions``."""


class Merge:
    """The desk's reorder buffer over ``partitions`` (``"P"`` -> ``{"next", "frontier"}``,
    and ``COUNT``) and ``buffer`` (``"P:O"`` -> an entry as JSON)."""

    def __init__(
        self, partitions: MutableMapping[str, Any], buffer: MutableMapping[str, Any]
    ) -> None:
        self.partitions = partitions
        self.buffer = buffer
        # The entries accepted since this merge was built, as objects: the buffer holds them
        # as JSON (for the table), and decoding that again on release was a tenth of the
        # merge's cost. After a restart they are decoded from the buffer once, here.
        self._entries: dict[str, Entry] = {}
        self._heap: list[tuple[Key, str]] = []
        for name in list(buffer):
            entry = entry_from_json(buffer[name])
            self._entries[name] = entry
            self._heap.append((entry.key, name))
        heapq.heapify(self._heap)

    @property
    def pending(self) -> int:
        """Entries waiting for the other partitions."""
        return len(self._heap)

    def accept(self, message: Entry | Mark) -> list[Entry]:
        """Take one ``desk-input`` message; return the entries it lets through, in order."""
        count = max(int(self.partitions.get(COUNT, 0)), message.partitions)
        if count != self.partitions.get(COUNT):
            self.partitions[COUNT] = count
        name = str(message.partition)
        state = dict(self.partitions.get(name) or {"next": None, "frontier": None})
        next_offset = state["next"]
        if isinstance(message, Mark):
            if next_offset is not None and message.offset < next_offset:
                return []  # from before entries already here: says nothing new
            state["next"] = message.offset
            bound: Key = (message.upto,)
        else:
            if next_offset is not None and message.offset < next_offset:
                return []  # forwarded again after a restart; applied or waiting already
            state["next"] = message.offset + 1
            bound = message.key
            slot = f"{message.partition}:{message.offset}"
            self.buffer[slot] = entry_to_json(message)
            self._entries[slot] = message
            heapq.heappush(self._heap, (message.key, slot))
        if state["frontier"] is None or bound > tuple(state["frontier"]):
            state["frontier"] = list(bound)
        self.partitions[name] = state
        return self._release()

    def frontier(self) -> Key | None:
        """The lowest partition frontier: every entry still to come has a key at or above it.
        None while a partition has not been heard from."""
        count = int(self.partitions.get(COUNT, 0))
        if count == 0:
            return None
        lowest: Key | None = None
        for partition in range(count):
            state = self.partitions.get(str(partition))
            if state is None or state["frontier"] is None:
                return None
            bound = tuple(state["frontier"])
            if lowest is None or bound < lowest:
                lowest = bound
        return lowest

    def fire_bound(self) -> Millis | None:
        """The last instant timers may fire at: every entry before the frontier's instant has
        been applied (entries waiting or still to come are at or after it, and entries of an
        instant go before its timers)."""
        lowest = self.frontier()
        return None if lowest is None else lowest[0] - 1

    def _release(self) -> list[Entry]:
        lowest = self.frontier()
        released: list[Entry] = []
        while self._heap and lowest is not None and self._heap[0][0] <= lowest:
            _, slot = heapq.heappop(self._heap)
            released.append(self._entries.pop(slot))
            del self.buffer[slot]
        return released

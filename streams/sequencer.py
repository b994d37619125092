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

The merge's durable state is one mapping the desk keeps in its Faust table (so it is in the
changelog, committed with each input): per partition its next offset and frontier, and which
entries wait (``WAITING``: each one's partition and offset, and the first ``desk-input``
offset holding one of them). The waiting entries themselves are kept in memory only: they are
in ``desk-input`` already, and a desk built anew (a restart, a rebalance) reads those inputs
again and takes back exactly the entries listed (:meth:`Merge.restore`). Writing each entry to
the changelog when it arrived and deleting it when it was applied was a large share of the
desk's changelog messages. Entries an earlier release kept in the table's ``buffer`` are still read.
"""

from __future__ import annotations

import heapq
from collections.abc import MutableMapping
from typing import Any

from processors.model import Millis
from streams.intake import Entry, Key, Mark, entry_from_json

COUNT = "count"
"""Key of the number of raw partitions (the largest the intake has reported) in ``partitions``."""

WAITING = "waiting"
"""Key of the waiting entries in ``partitions``: ``{"from": O, "slots": [[P, O], ...]}``, the
first ``desk-input`` offset to read again and the (raw partition, raw offset) of each entry."""


class Merge:
    """The desk's reorder buffer over ``partitions`` (``"P"`` -> ``{"next", "frontier"}``,
    ``COUNT`` and ``WAITING``); ``buffer`` is where an earlier release kept waiting entries
    (``"P:O"`` -> an entry as JSON), read and emptied as they are applied."""

    def __init__(
        self,
        partitions: MutableMapping[str, Any],
        buffer: MutableMapping[str, Any] | None = None,
    ) -> None:
        self.partitions = partitions
        self.buffer: MutableMapping[str, Any] = {} if buffer is None else buffer
        self._entries: dict[str, Entry] = {}
        # The desk-input offset each waiting entry came in; those read from ``buffer`` are
        # in the table already (``_legacy``).
        self._sources: dict[str, int] = {}
        self._legacy: set[str] = set()
        self._heap: list[tuple[Key, str]] = []
        for name in list(self.buffer):
            entry = entry_from_json(self.buffer[name])
            self._legacy.add(self._insert(entry, 0))
        waiting = partitions.get(WAITING) or {"from": None, "slots": []}
        self._to_restore = {f"{p}:{o}" for p, o in waiting["slots"]}
        self._restore_from: int | None = waiting["from"] if self._to_restore else None
        self._written: dict[str, Any] = dict(waiting)

    @property
    def pending(self) -> int:
        """Entries waiting for the other partitions (those still to be read back included)."""
        return len(self._heap) + len(self._to_restore)

    def restore_from(self) -> int | None:
        """The first ``desk-input`` offset :meth:`restore` needs, or None if nothing waits."""
        return self._restore_from

    def restore(self, source: int, message: Entry | Mark) -> None:
        """Take back a waiting entry from ``desk-input`` message ``source``, read again after
        the desk was built; anything else (applied entries, duplicates, marks) is ignored."""
        if isinstance(message, Mark):
            return
        slot = f"{message.partition}:{message.offset}"
        if slot in self._to_restore:
            self._to_restore.discard(slot)
            self._insert(message, source)
        if not self._to_restore:
            self._restore_from = None

    def abandon_restore(self) -> list[str]:
        """Give up the waiting entries not read back (``desk-input`` no longer holds them:
        retention passed); returns their ``P:O`` slots, for the error the caller logs."""
        lost = sorted(self._to_restore)
        self._to_restore.clear()
        self._restore_from = None
        return lost

    def accept(self, message: Entry | Mark, source: int | None = None) -> list[Entry]:
        """Take one ``desk-input`` message (``source``: its offset in ``desk-input``; unknown,
        a restore would read ``desk-input`` from its start); return the entries it lets
        through, in order."""
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
            self._insert(message, 0 if source is None else source)
        if state["frontier"] is None or bound > tuple(state["frontier"]):
            state["frontier"] = list(bound)
        self.partitions[name] = state
        return self._release()

    def checkpoint(self) -> None:
        """Record which entries wait (``WAITING``), once per input, if that changed."""
        kept = [slot for slot in self._entries if slot not in self._legacy]
        slots = [[e.partition, e.offset] for e in (self._entries[slot] for slot in kept)]
        slots.extend([int(p), int(o)] for p, o in (s.split(":") for s in self._to_restore))
        slots.sort()
        sources = [self._sources[slot] for slot in kept]
        if self._restore_from is not None:
            sources.append(self._restore_from)
        value = _waiting_value(min(sources) if slots else None, sorted(slots))
        if value != self._written:
            self.partitions[WAITING] = value
            self._written = value

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

    def _insert(self, entry: Entry, source: int) -> str:
        slot = f"{entry.partition}:{entry.offset}"
        self._entries[slot] = entry
        self._sources[slot] = source
        heapq.heappush(self._heap, (entry.key, slot))
        return slot

    def _release(self) -> list[Entry]:
        if self._to_restore:
            # Entries of the table not read back yet may come first: nothing goes before them.
            raise MergeNotRestored(
                f"{len(self._to_restore)} waiting entries from desk-input offset "
                f"{self._restore_from} on have not been read back (Merge.restore)"
            )
        lowest = self.frontier()
        released: list[Entry] = []
        while self._heap and lowest is not None and self._heap[0][0] <= lowest:
            _, slot = heapq.heappop(self._heap)
            released.append(self._entries.pop(slot))
            del self._sources[slot]
            if slot in self._legacy:
                self._legacy.discard(slot)
                del self.buffer[slot]
        return released


class MergeNotRestored(RuntimeError):
    """The merge was asked to release entries before its waiting ones were read back."""


def _waiting_value(start: int | None, slots: list[list[int]]) -> dict[str, Any]:
    return {"from": start, "slots": slots}

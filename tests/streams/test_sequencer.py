"""The desk's merge of the raw partitions (``streams.sequencer.Merge``), by properties.

The desk must apply records in exactly ``replay``'s order although they reach it parsed by
several workers, one raw partition each, interleaved on ``desk-input`` in whatever order the
workers got there; a wrong merge would silently change tickets (threading, identities and
assignment read state across conversations). So these tests build what a publisher sends
(records sorted by ``(at, sequence)``, many sharing an instant), deal it out over 1..5
partitions, interleave the partitions at random, and check:

* the entries released, concatenated, are exactly the records in key order, each once, and
  nothing is left waiting once every partition has closed with a mark;
* that holds with what at-least-once delivery adds: entries forwarded again after an owner's
  restart and marks older than what the desk has (both must be dropped);
* and over restarts of the desk: a new ``Merge`` over the same two mappings (also after a JSON
  round trip, as the changelog stores them) continues exactly as if nothing had happened;
* at every step: nothing is released beyond the lowest frontier or while a partition is
  unheard, nothing releasable is kept waiting, and ``fire_bound`` stays below every entry
  waiting or still to come (timers may never fire ahead of a record they precede);
* live: idle partitions' marks let entries through, and a late entry (below what was released
  already) is released on arrival, not held forever.

The frontiers the checks use are worked out here from the messages (:class:`Oracle`), not
read from the merge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.intake import Entry, Key, Mark, entry_to_json
from streams.sequencer import COUNT, WAITING, Merge, MergeNotRestored

HUGE = 10**15
"""A closing mark's ``upto``: past every instant the tests use."""

Message = Entry | Mark


def entry(partition: int, offset: int, partitions: int, at: int, sequence: int) -> Entry:
    return Entry(
        partition, offset, partitions, at, sequence, f"raw-contacts/{partition}/{offset}", "", ()
    )


@dataclass(frozen=True)
class Scenario:
    partitions: int
    records: tuple[Entry, ...]
    """Every distinct entry, in the order the desk must apply them."""
    messages: tuple[Message, ...]
    """``desk-input`` as the desk reads it."""


def _interleave(draw: st.DrawFn, lanes: list[list[Message]]) -> tuple[Message, ...]:
    """The lanes merged in a random order that keeps each lane's own order."""
    order = draw(st.permutations([p for p, lane in enumerate(lanes) for _ in lane]))
    cursors = [0] * len(lanes)
    messages: list[Message] = []
    for p in order:
        messages.append(lanes[p][cursors[p]])
        cursors[p] += 1
    return tuple(messages)


def _lane(
    draw: st.DrawFn,
    entries: list[Entry],
    partition: int,
    partitions: int,
    *,
    idle_marks: bool,
    redelivery: bool,
) -> list[Message]:
    """What one partition's owner sends: its entries in offset order, marks while it is idle
    (``upto`` at most the instant of its next entry, as the wall clock less a grace is), and,
    with ``redelivery``, entries sent again from an earlier offset (an owner restarted from
    its committed offset) and marks older than entries already sent; then a closing mark."""
    lane: list[Message] = []
    sent = 0
    while True:
        if idle_marks and draw(st.booleans()):
            if sent < len(entries):
                upto = draw(st.integers(-3, entries[sent].at))
            else:
                upto = draw(st.integers(-3, 10) | st.just(HUGE))
            lane.append(Mark(partition, sent, partitions, upto))
        if redelivery and sent > 0:
            if draw(st.booleans()):
                stale = draw(st.integers(0, sent - 1))
                upto = draw(st.integers(-3, 10) | st.just(HUGE))
                lane.append(Mark(partition, stale, partitions, upto))
            if draw(st.booleans()):
                lane.extend(entries[draw(st.integers(0, sent - 1)) : sent])
        if sent == len(entries):
            break
        lane.append(entries[sent])
        sent += 1
    lane.append(Mark(partition, len(entries), partitions, HUGE))
    return lane


@st.composite
def scenarios(draw: st.DrawFn, *, idle_marks: bool = False, redelivery: bool = False) -> Scenario:
    """Records as a publisher sends them, dealt out over the raw partitions."""
    partitions = draw(st.integers(1, 5))
    instants = draw(st.lists(st.integers(0, 6), max_size=40))  # few instants: many ties
    sequences = draw(st.permutations(range(len(instants))))
    published = sorted(zip(instants, sequences, strict=True))
    owners = draw(
        st.lists(st.integers(0, partitions - 1), min_size=len(published), max_size=len(published))
    )
    per_partition: list[list[Entry]] = [[] for _ in range(partitions)]
    records: list[Entry] = []
    for (at, sequence), p in zip(published, owners, strict=True):
        record = entry(p, len(per_partition[p]), partitions, at, sequence)
        per_partition[p].append(record)
        records.append(record)
    lanes = [
        _lane(draw, per_partition[p], p, partitions, idle_marks=idle_marks, redelivery=redelivery)
        for p in range(partitions)
    ]
    return Scenario(partitions, tuple(records), _interleave(draw, lanes))


def _through_json(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping as a changelog gives it back."""
    return {key: json.loads(json.dumps(value)) for key, value in mapping.items()}


@dataclass
class Run:
    steps: list[list[Entry]]
    merge: Merge
    partitions: dict[str, Any]
    buffer: dict[str, Any]

    @property
    def released(self) -> list[Entry]:
        return [e for step in self.steps for e in step]


def feed(
    messages: Sequence[Message], *, restarts: frozenset[int] = frozenset(), changelog: bool = False
) -> Run:
    """Every message into one merge; before each step in ``restarts`` the desk is built anew
    over its mappings (``changelog``: as recovered from JSON)."""
    partitions: dict[str, Any] = {}
    buffer: dict[str, Any] = {}
    merge = Merge(partitions, buffer)
    steps: list[list[Entry]] = []
    for step, message in enumerate(messages):
        if step in restarts:
            if changelog:
                partitions, buffer = _through_json(partitions), _through_json(buffer)
            merge = Merge(partitions, buffer)
            # The waiting entries are read back from the messages (desk-input), as listed.
            start = merge.restore_from()
            for source in range(step if start is None else start, step):
                merge.restore(source, messages[source])
            assert merge.abandon_restore() == []
        steps.append(merge.accept(message, step))
        merge.checkpoint()  # once per input, as the desk does
    return Run(steps, merge, partitions, buffer)


def _keys(entries: Sequence[Entry]) -> list[Key]:
    return [e.key for e in entries]


# --------------------------------------------------------------------------------------------
# Replay's order, whatever the partitions
# --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_released_entries_are_the_records_in_key_order_each_once(scenario: Scenario) -> None:
    assert _keys(scenario.records) == sorted(_keys(scenario.records))  # the scenario itself

    run = feed(scenario.messages)

    assert run.released == list(scenario.records)
    assert run.merge.pending == 0
    assert run.buffer == {}


@settings(max_examples=300, deadline=None)
@given(scenarios(idle_marks=True, redelivery=True))
def test_redelivered_entries_and_stale_marks_change_nothing(scenario: Scenario) -> None:
    run = feed(scenario.messages)

    assert run.released == list(scenario.records)
    assert run.merge.pending == 0
    assert run.buffer == {}


@pytest.mark.parametrize("changelog", [False, True], ids=["same-dicts", "json-changelog"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_desk_rebuilt_over_its_mappings_continues_identically(
    changelog: bool, data: st.DataObject
) -> None:
    scenario = data.draw(scenarios(idle_marks=True, redelivery=True))
    steps = range(len(scenario.messages))
    restarts = data.draw(st.frozensets(st.sampled_from(steps) if steps else st.nothing()))

    undisturbed = feed(scenario.messages)
    restarted = feed(scenario.messages, restarts=restarts, changelog=changelog)

    assert restarted.steps == undisturbed.steps
    assert restarted.released == list(scenario.records)
    assert restarted.merge.pending == 0
    assert _through_json(restarted.partitions) == _through_json(undisturbed.partitions)


# --------------------------------------------------------------------------------------------
# Safety, step by step
# --------------------------------------------------------------------------------------------


class Oracle:
    """The frontiers as the docstring defines them, worked out from the messages alone."""

    def __init__(self) -> None:
        self.count = 0
        self.next: dict[int, int] = {}
        self.frontier: dict[int, Key] = {}

    def accept(self, message: Message) -> bool:
        """Whether the merge must take the message in (False: a duplicate or a stale mark)."""
        self.count = max(self.count, message.partitions)
        p = message.partition
        if p in self.next and message.offset < self.next[p]:
            return False
        if isinstance(message, Mark):
            self.next[p] = message.offset
            bound: Key = (message.upto,)
        else:
            self.next[p] = message.offset + 1
            bound = message.key
        self.frontier[p] = max(self.frontier.get(p, bound), bound)
        return True

    def lowest(self) -> Key | None:
        if self.count == 0 or any(p not in self.frontier for p in range(self.count)):
            return None
        return min(self.frontier[p] for p in range(self.count))


@settings(max_examples=300, deadline=None)
@given(scenarios(idle_marks=True, redelivery=True))
def test_nothing_is_released_early_nor_kept_waiting_and_timers_never_run_ahead(
    scenario: Scenario,
) -> None:
    merge = Merge({}, {})
    oracle = Oracle()
    waiting: dict[tuple[int, int], Entry] = {}
    to_come = {(e.partition, e.offset): e for e in scenario.records}
    released_so_far: list[Entry] = []
    for message in scenario.messages:
        if oracle.accept(message) and isinstance(message, Entry):
            position = (message.partition, message.offset)
            waiting[position] = to_come.pop(position)
        released = merge.accept(message)
        lowest = oracle.lowest()

        if released:
            assert lowest is not None, "released while a partition is unheard"
            assert all(e.key <= lowest for e in released), (released, lowest)
        assert _keys(released) == sorted(_keys(released))
        assert not released_so_far or not released or released[0].key > released_so_far[-1].key
        for e in released:
            assert waiting.pop((e.partition, e.offset)) == e  # waiting, and released once
        released_so_far.extend(released)
        if lowest is not None:
            assert all(e.key > lowest for e in waiting.values()), "releasable entry kept waiting"
        assert merge.pending == len(waiting)

        assert merge.frontier() == lowest
        bound = merge.fire_bound()
        if lowest is None:
            assert bound is None
        else:
            assert bound == lowest[0] - 1
            assert all(bound < e.at for e in waiting.values())
            assert all(bound < e.at for e in to_come.values())

    assert released_so_far == list(scenario.records)


# --------------------------------------------------------------------------------------------
# Live: idle marks, late entries, partitions added
# --------------------------------------------------------------------------------------------


def test_idle_marks_let_live_entries_through_and_late_entries_are_not_held() -> None:
    merge = Merge({}, {})
    first = entry(0, 0, 3, at=100, sequence=0)

    assert merge.accept(first) == []  # partitions 1 and 2 are unheard
    assert merge.fire_bound() is None
    assert merge.accept(Mark(1, 0, 3, upto=150)) == []  # partition 2 still unheard
    assert merge.fire_bound() is None
    assert merge.accept(Mark(2, 0, 3, upto=101)) == [first]  # both idle past its instant
    assert merge.fire_bound() == 99  # (100, 0, 0, 0) is the lowest frontier

    later = entry(0, 1, 3, at=200, sequence=0)
    assert merge.accept(later) == []  # partition 2 said nothing past 101 yet
    assert merge.fire_bound() == 100

    # Partition 1 said it was idle up to 150, then sends a record of 50 (a connector's skewed
    # clock, or history published into a running deployment): below what was applied, so it
    # is applied on arrival, as the single-order desk did.
    late = entry(1, 0, 3, at=50, sequence=0)
    assert merge.accept(late) == [late]
    assert merge.pending == 1

    assert merge.accept(Mark(1, 1, 3, upto=300)) == []
    assert merge.accept(Mark(2, 0, 3, upto=250)) == [later]
    assert merge.pending == 0
    assert merge.fire_bound() == 199


def test_an_entry_at_a_marks_instant_waits_for_a_later_mark() -> None:
    merge = Merge({}, {})
    assert merge.accept(Mark(1, 0, 2, upto=100)) == []
    at_mark = entry(0, 0, 2, at=100, sequence=0)

    assert merge.accept(at_mark) == []  # partition 1 may still send something at 100
    assert merge.fire_bound() == 99
    assert merge.accept(Mark(1, 0, 2, upto=101)) == [at_mark]


def test_a_mark_below_the_partitions_next_offset_is_ignored() -> None:
    merge = Merge({}, {})
    waiting = entry(0, 0, 2, at=100, sequence=0)
    assert merge.accept(entry(1, 0, 2, at=10, sequence=0)) == []
    assert merge.accept(entry(1, 1, 2, at=20, sequence=0)) == []

    assert merge.accept(waiting) == [entry(1, 0, 2, 10, 0), entry(1, 1, 2, 20, 0)]
    assert merge.accept(Mark(1, 1, 2, upto=HUGE)) == []  # older than offset 1: says nothing
    assert merge.accept(entry(1, 0, 2, at=10, sequence=0)) == []  # forwarded again
    assert merge.pending == 1
    assert merge.accept(Mark(1, 2, 2, upto=HUGE)) == [waiting]


def test_a_partition_added_to_raw_contacts_holds_back_until_heard_from() -> None:
    merge = Merge({}, {})
    a = entry(0, 0, 1, at=10, sequence=0)
    assert merge.accept(a) == [a]

    b = entry(0, 1, 2, at=20, sequence=0)  # the topic grew to two partitions
    assert merge.accept(b) == []
    assert merge.fire_bound() is None
    assert merge.accept(Mark(0, 2, 1, upto=HUGE)) == []  # a smaller count does not shrink it
    assert merge.partitions[COUNT] == 2

    c = entry(1, 0, 2, at=15, sequence=0)
    assert merge.accept(c) == [c]
    assert merge.accept(Mark(1, 1, 2, upto=HUGE)) == [b]
    assert merge.pending == 0


@st.composite
def unordered_scenarios(draw: st.DrawFn) -> tuple[int, list[Entry], tuple[Message, ...]]:
    """Partitions whose keys do not grow (skewed clocks, history published late) with marks
    at arbitrary instants: the merge cannot keep replay's order, but must not lose or hold
    anything."""
    partitions = draw(st.integers(1, 4))
    lanes: list[list[Message]] = []
    entries: list[Entry] = []
    for p in range(partitions):
        lane: list[Message] = []
        instants = draw(st.lists(st.integers(0, 20), max_size=8))
        for offset, at in enumerate(instants):
            if draw(st.booleans()):
                lane.append(Mark(p, offset, partitions, draw(st.integers(0, 25))))
            e = entry(p, offset, partitions, at, draw(st.integers(0, 3)))
            lane.append(e)
            entries.append(e)
        lane.append(Mark(p, len(instants), partitions, HUGE))
        lanes.append(lane)
    return partitions, entries, _interleave(draw, lanes)


@settings(max_examples=300, deadline=None)
@given(unordered_scenarios())
def test_late_entries_are_released_on_arrival_and_none_is_lost_or_held(
    scenario: tuple[int, list[Entry], tuple[Message, ...]],
) -> None:
    _, entries, messages = scenario
    merge = Merge({}, {})
    released: list[Entry] = []
    for message in messages:
        out = merge.accept(message)
        if isinstance(message, Entry) and released and message.key <= max(_keys(released)):
            assert message in out, "a late entry was held back"
        lowest = merge.frontier()
        assert all(lowest is not None and e.key <= lowest for e in out)
        assert _keys(out) == sorted(_keys(out))
        released.extend(out)

    assert sorted(released, key=lambda e: e.key) == sorted(entries, key=lambda e: e.key)
    assert len(released) == len(entries)
    assert merge.pending == 0


@settings(max_examples=200, deadline=None)
@given(scenario=unordered_scenarios(), data=st.data())
def test_late_entries_and_restarts_read_back_exactly_the_waiting_entries(
    scenario: tuple[int, list[Entry], tuple[Message, ...]], data: st.DataObject
) -> None:
    """Restarted at any steps (its mappings through JSON, the waiting entries read back from
    the messages as ``WAITING`` lists them), a merge over skewed partitions releases what an
    undisturbed one does, step by step: nothing applied twice, nothing lost."""
    _, _, messages = scenario
    steps = range(len(messages))
    restarts = data.draw(st.frozensets(st.sampled_from(steps) if steps else st.nothing()))

    assert feed(messages, restarts=restarts, changelog=True).steps == feed(messages).steps


def test_the_changelog_lists_the_waiting_entries_and_never_holds_them() -> None:
    partitions: dict[str, Any] = {}
    buffer: dict[str, Any] = {}
    merge = Merge(partitions, buffer)
    a, b = entry(0, 0, 2, at=10, sequence=0), entry(0, 1, 2, at=20, sequence=0)
    assert merge.accept(a, 5) == [] and merge.accept(b, 6) == []
    merge.checkpoint()
    assert buffer == {}
    assert partitions[WAITING] == {"from": 5, "slots": [[0, 0], [0, 1]]}

    rebuilt = Merge(_through_json(partitions), buffer)
    assert rebuilt.pending == 2 and rebuilt.restore_from() == 5
    rebuilt.restore(5, a)
    rebuilt.restore(5, Mark(1, 0, 2, upto=1))  # marks are the partition state's business
    with pytest.raises(MergeNotRestored):  # b may come first: nothing is released before it
        rebuilt.accept(Mark(1, 0, 2, upto=15))
    assert rebuilt.abandon_restore() == ["0:1"]  # desk-input lost it: the caller logs it
    assert rebuilt.restore_from() is None


def test_entries_an_earlier_release_kept_in_the_table_are_applied_and_removed() -> None:
    waiting = entry(0, 0, 2, at=10, sequence=0)
    buffer: dict[str, Any] = {"0:0": json.loads(json.dumps(entry_to_json(waiting)))}
    partitions: dict[str, Any] = {
        COUNT: 2,
        "0": {"next": 1, "frontier": list(waiting.key)},
    }
    merge = Merge(partitions, buffer)
    assert merge.pending == 1 and merge.restore_from() is None

    assert merge.accept(Mark(1, 0, 2, upto=11), 9) == [waiting]
    assert buffer == {}
    merge.checkpoint()
    assert partitions.get(WAITING) in (None, {"from": None, "slots": []})

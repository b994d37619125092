"""The desk the Faust workers run (``streams.faust_runner.PartitionDesk``) against the local
runner, without a broker: the same generated week, split over raw partitions, parsed by the
intake and interleaved on ``desk-input`` in an arbitrary order, must give the same output,
with every table value round-tripped through JSON as a changelog would."""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import Output
from processors.pii import Masker
from processors.rules import load_rules
from schemas.codec import CODEC
from streams.connectors.envelope import decode_sequenced
from streams.faust_runner import PartitionDesk, encode_raw
from streams.intake import Intake, Mark, encode_entries, encode_input
from streams.local import LocalRunner, ParseStage, read_records
from tests.support.tables import CodecTable

RULES = Path(__file__).resolve().parents[3] / "examples" / "rules.demo.yaml"
KEY = "faust-differential-key"


class _Collect:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def flush(self) -> int:
        return 0


def _outputs(messages: list[tuple[str, bytes, bytes]]) -> list[Output]:
    out = []
    for topic, _key, value in messages:
        if topic == "domain-events":
            out.append(Output(events=(CODEC.decode_event(value),)))
        elif topic == "ticket-state":
            out.append(Output(tickets=(CODEC.decode_ticket(value),)))
        elif topic == "sla-state":
            out.append(Output(cycles=(CODEC.decode_cycle(value),)))
    return out


def _final(outputs: list[Output]) -> tuple[dict[str, Any], dict[Any, Any], list[str]]:
    tickets: dict[str, Any] = {}
    cycles: dict[Any, Any] = {}
    events: list[str] = []
    for output in outputs:
        for t in output.tickets:
            if t.ticket_id not in tickets or tickets[t.ticket_id].version <= t.version:
                tickets[t.ticket_id] = t
        for c in output.cycles:
            key = (c.ticket_id, c.metric, c.cycle)
            if key not in cycles or cycles[key].version <= c.version:
                cycles[key] = c
        events.extend(
            f"{e.event_id} {e.event_type} {e.at} {sorted(e.data.items())}" for e in output.events
        )
    return tickets, cycles, sorted(set(events))


class Crash(Exception):
    pass


class CrashingTable(CodecTable):
    """Dies after ``budget`` more writes: the changelog then holds a prefix of an input."""

    budget: int | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        if self.budget is not None:
            if self.budget == 0:
                raise Crash
            self.budget -= 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)


def _week(tmp_path: Path) -> tuple[Any, Pseudonymizer, list[Any], int]:
    rules = load_rules(RULES)
    pseudo = Pseudonymizer.from_text(KEY)
    week = generate_week(datetime(2026, 9, 7, tzinfo=UTC), seed=5, tickets=60, pii_key=KEY)
    path = tmp_path / "week.jsonl"
    week.write_jsonl(path)
    records, _ = read_records(path.read_text().splitlines(), path.name, Masker().mask)
    return rules, pseudo, records, records[-1].at + 30 * 24 * 3600 * 1000


def _reference(rules: Any, pseudo: Pseudonymizer, records: list[Any], until: int) -> list[Output]:
    reference = _Collect()
    local = LocalRunner(rules, pseudo, reference)  # type: ignore[arg-type]
    for record in records:
        local.feed(record)
    local.finish(until)
    return reference.outputs


PARTITIONS = 3
END = 2**62  # a mark's instant when every record is already published


def _desk_input(
    pseudo: Pseudonymizer, records: list[Any], seed: int, batch: int = 0, mixed: bool = False
) -> list[bytes]:
    """The week as ``desk-input`` would hold it: records published in replay order (with
    their ``sequence``) over ``PARTITIONS`` partitions, each partition parsed by the intake
    in order, the partitions interleaved at random, then every partition's closing mark.
    With ``batch``, the intake forwards each partition's entries in batches of 1 to
    ``batch`` (at random), as the worker does under load; ``mixed``, one to three such
    batches, of any partitions, travel as one message (a worker owning several partitions)."""
    intake = Intake(ParseStage(pseudo))
    entries: list[list[Any]] = [[] for _ in range(PARTITIONS)]
    for sequence, record in enumerate(records):
        raw = encode_raw(record, connector="test", sequence=sequence)
        partition = zlib.crc32(record.source.encode() + bytes([sequence % 7])) % PARTITIONS
        entry = intake.entry(
            raw,
            partition=partition,
            offset=len(entries[partition]),
            partitions=PARTITIONS,
            timestamp=0,
        )
        entries[partition].append(entry)
    assert all(entries), "every partition has records"
    rng = random.Random(seed)
    lanes: list[list[list[Any]]] = [[] for _ in range(PARTITIONS)]
    for partition, lane in enumerate(entries):
        start = 0
        while start < len(lane):
            size = rng.randint(1, batch) if batch else 1
            lanes[partition].append(lane[start : start + size])
            start += size
    cursors = [0] * PARTITIONS
    merged: list[bytes] = []
    together: list[Any] = []
    left = rng.randint(1, 3)
    while any(cursors[p] < len(lanes[p]) for p in range(PARTITIONS)):
        partition = rng.choice([p for p in range(PARTITIONS) if cursors[p] < len(lanes[p])])
        taken = lanes[partition][cursors[partition]]
        cursors[partition] += 1
        if not mixed:
            merged.append(encode_entries(taken) if batch else encode_input(taken[0]))
            continue
        together.extend(taken)
        left -= 1
        if left == 0:
            merged.append(encode_entries(together))
            together, left = [], rng.randint(1, 3)
    if together:
        merged.append(encode_entries(together))
    for partition in range(PARTITIONS):
        # A mark carries the raw partition's committed offset: every raw message forwarded.
        merged.append(encode_input(Mark(partition, len(entries[partition]), PARTITIONS, END)))
    return merged


def test_raw_messages_decode_to_their_record_and_sequence(tmp_path: Path) -> None:
    _, _, records, _ = _week(tmp_path)
    for sequence, record in enumerate(records[:50]):
        decoded, got = decode_sequenced(
            encode_raw(record, connector="test", sequence=sequence), "x", Masker().mask
        )
        assert (decoded.payload, decoded.at, got) == (record.payload, record.at, sequence)  # type: ignore[union-attr]


def _rebuilt(rules: Any, pseudo: Any, table: Any, inputs: list[bytes]) -> PartitionDesk:
    """A desk built anew over ``table``, its waiting entries read back from the inputs (what
    ``streams.faust_app`` reads from desk-input); none may be missing."""
    desk = PartitionDesk(rules, pseudo, table)
    span = desk.restore_range(0)
    if span is not None:
        start, stop = span
        assert desk.restore_waiting((o, inputs[o]) for o in range(start, stop)) == []
    return desk


@pytest.mark.parametrize(
    ("restart_every", "seed", "batch", "mixed"),
    [
        (0, 1, 0, False),
        (37, 2, 0, False),
        (0, 3, 0, False),
        (0, 4, 40, False),
        (5, 5, 40, False),
        (0, 6, 40, True),
        (5, 8, 40, True),
    ],
)
def test_partition_desk_matches_the_local_runner(
    tmp_path: Path, restart_every: int, seed: int, batch: int, mixed: bool
) -> None:
    """Whether the intake forwards entries one by one or in batches (``batch``), of one
    partition or several (``mixed``), and with restarts from the table alone, the desk
    publishes what the local runner emits."""
    rules, pseudo, records, until = _week(tmp_path)
    table = CodecTable()
    desk = PartitionDesk(rules, pseudo, table)
    got: list[tuple[str, bytes, bytes]] = []
    inputs = _desk_input(pseudo, records, seed, batch, mixed)
    for offset, data in enumerate(inputs):
        if restart_every and offset % restart_every == 0:
            desk = _rebuilt(rules, pseudo, table, inputs)  # a restart: the table, desk-input
        published = desk.apply_input(data, 0, offset)
        got.extend(published)
        # a redelivery changes nothing and publishes nothing: a committed input's messages
        # were delivered before it was committed
        before = dict(table.data)
        assert desk.apply_input(data, 0, offset) == []
        assert table.data == before
    assert desk.merge.pending == 0
    got.extend(desk.tick(until, 0, 0))
    assert desk.next_offset("in:0") == len(inputs)
    assert desk.tick(until, 0, 1) == []  # a repeated tick fires nothing

    want_tickets, want_cycles, want_events = _final(_reference(rules, pseudo, records, until))
    got_tickets, got_cycles, got_events = _final(_outputs(got))
    assert len(want_tickets) >= 40
    # The week exercises routing that waits (CONTRACT §7): agents with skills go on and off
    # shift, tickets wait and are served, an offline agent's new tickets come back; English
    # tickets require the en skill.
    kinds = {line.split()[1] for line in want_events}
    assert {"agent.presence_changed", "ticket.waiting_started", "ticket.waiting_stopped"} <= kinds
    assert any("'agent_offline'" in line for line in want_events)
    assert any("('required_skills', 'en')" in line for line in want_events)
    assert {t.language for t in want_tickets.values()} >= {"ru", "en"}
    assert got_tickets == want_tickets
    assert got_cycles == want_cycles
    assert got_events == want_events

    # CONTRACT §7 through the workers: the week's promises (kept and broken, some by their
    # timer) and its outage spike's incident (opened, joined, closed by its timer) are there,
    # the same as replay's, and every acknowledgement is also published keyed by conversation.
    types = {line.split()[1] for line in want_events}
    assert {
        "ticket.acknowledged",
        "promise.kept",
        "promise.broken",
        "incident.opened",
        "incident.joined",
        "incident.closed",
    } <= types
    assert sum(1 for t in want_tickets.values() if t.incident_id == "outage#1") >= 5
    acknowledged = [
        e for o in _outputs(got) for e in o.events if e.event_type == "ticket.acknowledged"
    ]
    published = [
        (key.decode(), CODEC.decode_event(value))
        for topic, key, value in got
        if topic == "acknowledgements"
    ]
    assert published == [(e.conversation_id, e) for e in acknowledged]
    assert len({e.ticket_id for _, e in published}) == len(want_tickets)


def test_an_input_cut_short_by_a_crash_is_undone_and_applied_once(tmp_path: Path) -> None:
    rules, pseudo, records, until = _week(tmp_path)
    table = CrashingTable()
    desk = PartitionDesk(rules, pseudo, table)
    got: list[tuple[str, bytes, bytes]] = []
    crashed: set[int] = set()
    inputs = _desk_input(pseudo, records, seed=4)
    offset = 0
    while offset < len(inputs):
        if offset % 23 == 5 and offset not in crashed:
            crashed.add(offset)
            table.budget = 1 + offset % 4  # the undo entry and a few of the changes
        try:
            got.extend(desk.apply_input(inputs[offset], 0, offset))
        except Crash:
            table.budget = None
            desk = _rebuilt(rules, pseudo, table, inputs)  # restart: recover, then redelivery
            continue
        table.budget = None
        offset += 1
    got.extend(desk.tick(until, 0, 0))

    assert len(crashed) >= 10
    want = _final(_reference(rules, pseudo, records, until))
    assert _final(_outputs(got)) == want


def test_no_outbox_is_written_and_an_earlier_release_s_outbox_is_published_again(
    tmp_path: Path,
) -> None:
    """The desk commits an input once its messages are delivered, so it keeps no outbox. An
    input an earlier release committed with an outbox, redelivered across the upgrade,
    publishes what that outbox holds."""
    from streams.faust_runner import SEP, _encode_outbox

    rules, pseudo, records, _ = _week(tmp_path)
    table = CodecTable()
    desk = PartitionDesk(rules, pseudo, table)
    inputs = _desk_input(pseudo, records, seed=2, batch=20)
    for offset, data in enumerate(inputs[:10]):
        desk.apply_input(data, 0, offset)
    assert not [key for key in table.data if key.startswith(f"outbox{SEP}")]

    kept = [("domain-events", b"t#1", b"\x00avro")]
    table.put(f"outbox{SEP}in:0:3", _encode_outbox(kept))
    assert PartitionDesk(rules, pseudo, table).apply_input(inputs[3], 0, 3) == kept


def test_outboxes_of_either_encoding_are_read() -> None:
    """An outbox is stored in base64; one an earlier release stored in hex still reads, so
    an input redelivered across an upgrade publishes its messages again."""
    from streams.faust_runner import _decode_outbox, _encode_outbox

    messages = [("domain-events", b"t#1", b"\x00\xffavro"), ("dead-letters", b"", b"x")]
    assert _decode_outbox(_encode_outbox(messages)) == messages
    hexed = [[topic, key.hex(), value.hex()] for topic, key, value in messages]
    assert _decode_outbox(hexed) == messages


def test_an_undo_entry_in_parts_is_undone_whole_after_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input whose previous values exceed one changelog message stores its undo entry in
    parts; a crash while the parts, the head or the changes are written still leaves a table
    the desk recovers from, and the results are replay's."""
    import streams.faust_runner as runner

    monkeypatch.setattr(runner, "UNDO_PART_BYTES", 1_500)
    rules, pseudo, records, until = _week(tmp_path)
    table = CrashingTable()
    desk = PartitionDesk(rules, pseudo, table)
    got: list[tuple[str, bytes, bytes]] = []
    crashed: set[int] = set()
    inputs = _desk_input(pseudo, records, seed=7, batch=8, mixed=True)
    offset = 0
    while offset < len(inputs):
        if offset % 3 == 1 and offset not in crashed:
            crashed.add(offset)
            table.budget = offset % 5  # within the parts, at the head, or in the changes
        try:
            got.extend(desk.apply_input(inputs[offset], 0, offset))
        except Crash:
            table.budget = None
            desk = _rebuilt(rules, pseudo, table, inputs)
            continue
        table.budget = None
        offset += 1
    got.extend(desk.tick(until, 0, 0))

    parts = [key for key in table.data if key.startswith(f"meta{runner.SEP}undo{runner.SEP}")]
    assert parts, "no input was large enough to need a second undo part"
    assert len(crashed) >= 10
    assert _final(_outputs(got)) == _final(_reference(rules, pseudo, records, until))


def test_undo_parts_stay_below_their_size_and_hold_the_stored_json() -> None:
    from streams.faust_runner import _undo_parts, _undo_value, decode_value, encode_value

    values = {f"tickets\x1f{n}": {"text": "x" * 300, "n": n} for n in range(40)}
    before = {key: encode_value(value) for key, value in values.items()} | {"seen\x1fa": None}
    parts = _undo_parts(before, 2_000)
    assert len(parts) > 5
    assert {k: v for part in parts for k, v in part.items()} == before
    stored = [_undo_value(7, part) for part in parts]
    assert all(len(value) < 2_000 + 400 for value in stored)
    # Each part as the table holds it: the previous values embedded as the JSON they were.
    read = [decode_value(value) for value in stored]
    assert {k: v for part in read for k, v in part["before"].items()} == values | {
        "seen\x1fa": None
    }
    assert all(part["step"] == 7 for part in read)
    assert decode_value(_undo_value(7, parts[0], parts=len(parts)))["parts"] == len(parts)
    assert _undo_parts({}, 2_000) == [{}]


_NO_TICKET = {
    "at": "2026-09-07T10:00:00Z",
    "source": "agent",
    "payload": {
        "type": "reply",
        "conversation_id": "chat:nobody",
        "agent_id": "a-1",
        "text": "Call me on +7 912 345-67-89 or write to ann.lee@example.com",
    },
}


def _no_ticket_entry() -> tuple[Any, Any]:
    """The record naming a conversation without a ticket, and its entry as the intake
    forwards it (raw partition 0 of 1, offset 0)."""
    (record,), _ = read_records([json.dumps(_NO_TICKET)], "in.jsonl", Masker().mask)
    entry = Intake(ParseStage(Pseudonymizer.from_text(KEY))).entry(
        encode_raw(record, connector="test", sequence=0),
        partition=0,
        offset=0,
        partitions=1,
        timestamp=0,
    )
    return record, entry


def _refused_through_the_desk(entry: bytes) -> list[Any]:
    desk = PartitionDesk(load_rules(RULES), Pseudonymizer.from_text(KEY), CodecTable())
    messages = desk.apply_input(entry, 0, 0)
    messages += desk.apply_input(encode_input(Mark(0, 1, 1, END)), 0, 1)
    return [CODEC.decode_dead_letter(v) for topic, _, v in messages if topic == "dead-letters"]


def test_a_refused_record_s_dead_letter_is_redacted_at_the_desk_as_replay_redacts() -> None:
    # The intake forwards a refusable record's text as it decoded it; the desk redacts it
    # only when it refuses an item, by the redaction replay applies to its dead letters.
    pseudo = Pseudonymizer.from_text(KEY)
    record, entry = _no_ticket_entry()
    assert entry.record == "" and "ann.lee@example.com" in entry.text
    (letter,) = _refused_through_the_desk(encode_entries([entry]))

    reference = _Collect()
    local = LocalRunner(load_rules(RULES), pseudo, reference)  # type: ignore[arg-type]
    local.feed(record)
    local.finish(None)
    (expected,) = [d for o in reference.outputs for d in o.dead_letters]
    assert letter.reason == expected.reason == "conversation 'chat:nobody' has no ticket"
    # The text is the raw message's envelope as decoded (its instant written out in full),
    # so it is compared after the one redaction both paths apply.
    assert letter.record == ParseStage(pseudo).redact(entry.text)
    assert json.loads(letter.record)["payload"] == json.loads(expected.record)["payload"]
    assert "ann.lee@example.com" not in letter.record and "912 345" not in letter.record


def test_an_entry_of_an_earlier_release_keeps_its_redacted_record() -> None:
    _, entry = _no_ticket_entry()
    value = json.loads(encode_entries([entry]))
    (written,) = value["entries"]
    del written["text"]  # as an intake of an earlier release wrote it: redacted already
    written["record"] = '{"redacted": "as the intake stored it"}'
    (letter,) = _refused_through_the_desk(json.dumps(value).encode())
    assert letter.record == '{"redacted": "as the intake stored it"}'

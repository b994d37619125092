"""The desk the Faust workers run (``streams.faust_runner.PartitionDesk``) against the local
runner, without a broker: the same generated week, record by record, must give the same
output, with every table value round-tripped through JSON as a changelog would."""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
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
from streams.faust_runner import PartitionDesk, decode_raw, encode_raw
from streams.local import LocalRunner, read_records

RULES = Path(__file__).resolve().parents[3] / "examples" / "rules.demo.yaml"
KEY = "faust-differential-key"


class JsonTable(MutableMapping[str, Any]):
    """A table that keeps what a changelog would: JSON text."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)


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


class CrashingTable(JsonTable):
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


@pytest.mark.parametrize("restart_every", [0, 37])
def test_partition_desk_matches_the_local_runner(tmp_path: Path, restart_every: int) -> None:
    rules, pseudo, records, until = _week(tmp_path)
    table = JsonTable()
    desk = PartitionDesk(rules, pseudo, table)
    got: list[tuple[str, bytes, bytes]] = []
    for offset, record in enumerate(records):
        if restart_every and offset % restart_every == 0:
            desk = PartitionDesk(rules, pseudo, table)  # a restart: state only from the table
        raw = encode_raw(record, connector="test")
        assert decode_raw(raw, "x", at_if_unknown=0).payload == record.payload  # type: ignore[union-attr]
        published = desk.apply_raw(raw, 0, offset, f"raw/0/{offset}")
        got.extend(published)
        # a redelivery changes nothing and publishes the same messages again
        assert desk.apply_raw(raw, 0, offset, f"raw/0/{offset}") == published
    got.extend(desk.tick(until, 0, 0))
    assert desk.next_offset("raw:0") == len(records)
    assert desk.tick(until, 0, 1) == []  # a repeated tick fires nothing

    want_tickets, want_cycles, want_events = _final(_reference(rules, pseudo, records, until))
    got_tickets, got_cycles, got_events = _final(_outputs(got))
    assert len(want_tickets) >= 40
    assert got_tickets == want_tickets
    assert got_cycles == want_cycles
    assert got_events == want_events


def test_an_input_cut_short_by_a_crash_is_undone_and_applied_once(tmp_path: Path) -> None:
    rules, pseudo, records, until = _week(tmp_path)
    table = CrashingTable()
    desk = PartitionDesk(rules, pseudo, table)
    got: list[tuple[str, bytes, bytes]] = []
    crashed: set[int] = set()
    offset = 0
    while offset < len(records):
        raw = encode_raw(records[offset], connector="test")
        if offset % 23 == 5 and offset not in crashed:
            crashed.add(offset)
            table.budget = 1 + offset % 4  # the undo entry and a few of the changes
        try:
            got.extend(desk.apply_raw(raw, 0, offset, f"raw/0/{offset}"))
        except Crash:
            table.budget = None
            desk = PartitionDesk(rules, pseudo, table)  # restart: recover, then redelivery
            continue
        table.budget = None
        offset += 1
    got.extend(desk.tick(until, 0, 0))

    assert len(crashed) >= 10
    want = _final(_reference(rules, pseudo, records, until))
    assert _final(_outputs(got)) == want

"""Fuzzing: no record stops or stalls a run (CONTRACT §1, docs/DEAD_LETTERS.md).

Generated traffic (``loadtest.generator``) of every source is damaged by the seeded mutator
(``loadtest.mutator``: fields removed or retyped, lone surrogates, deep nesting, instants at the
edges of the calendar, truncated lines, mangled MIME...). ``SUPPORTSTREAM_FUZZ_RECORDS`` mutated
records (default 100,000, spread evenly over the sources; set it higher for a nightly run) go
in chunks of ``CHUNK`` through the parse stage and the desk in process, each chunk after an
undamaged two-day base so agent, survey and crm records find conversations to act on. For
each record:

* the run goes on (nothing raises) and no record takes more than ``STALL_S`` seconds;
* it applies, is ignored, or becomes a dead letter (none vanishes);
* everything it produces is storable: every dead letter, event, ticket and cycle encodes
  (Avro, as the production path publishes them; UTF-8 text) and every instant lies in
  ``DateTime64(3)``'s range;
* event time never passes the latest understood record: dead letters move no time.

A mixed sample of every source then goes through the real ``supportstream replay`` into the
embedded warehouse, which must accept every dead letter (exit 0, all of them in the table), and
a sample of every chunk crosses the production parse stage and ``desk-input``. A further
``FAUST_DESK_RECORDS`` per source go through the production parse stage and the Faust desk
(``PartitionDesk`` over an orjson table, as the worker keeps it): nothing raises, every message
it publishes decodes, and no event is dated after the latest understood record.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from loadtest.generator import generate_week
from loadtest.mutator import mutate
from processors.ids import Pseudonymizer
from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    DeadLetter,
    Ignored,
    Output,
    QaReview,
    SurveyAnswer,
)
from processors.parsing import PARSERS
from processors.rules import load_rules
from processors.timeutil import in_range
from schemas.codec import CODEC
from streams.faust_runner import PartitionDesk, encode_raw
from streams.intake import Intake, Mark, decode_input, encode_input
from streams.local import LocalRunner, ParseStage, read_records
from tests.support.cli import replay_cli, sql_rows
from tests.support.tables import CodecTable

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.yaml"
KEY = "fuzz-test-key"
SOURCES = tuple(sorted(PARSERS))
TOTAL = int(os.environ.get("SUPPORTSTREAM_FUZZ_RECORDS", "100000"))
CHUNK = 10_000
STALL_S = 10.0
"""Far above any record's real cost (milliseconds); only a stall (a quadratic parse of a
hostile body, a loop) reaches it, even on a loaded CI machine."""
PER_SOURCE = -(-TOTAL // len(SOURCES))
CHUNKS = [(source, index) for source in SOURCES for index in range(-(-PER_SOURCE // CHUNK))]


@cache
def base() -> tuple[list[str], dict[str, list[str]]]:
    """An undamaged two-day base, and its records by source (the mutator's seeds)."""
    week = generate_week(
        datetime(2026, 3, 2, tzinfo=UTC), seed=13, tickets=100, pii_key=KEY, days=2
    )
    lines = list(week.lines())
    by_source: dict[str, list[str]] = {}
    for line in lines:
        try:
            source = json.loads(line).get("source")
        except ValueError:
            continue  # the generator's own malformed lines
        if source in PARSERS:
            by_source.setdefault(source, []).append(line)
    return lines, by_source


def fuzzed(source: str, count: int, seed: int) -> list[str]:
    _, by_source = base()
    # A source the generator does not produce (one added later) is fuzzed from every record,
    # its source renamed, so it still gets its share.
    seeds = by_source.get(source) or [
        json.dumps({**json.loads(line), "source": source})
        for lines in by_source.values()
        for line in lines[:20]
    ]
    rng = random.Random(f"{source}:{seed}")
    return [mutate(rng.choice(seeds), rng) for _ in range(count)]


class StorableSink:
    """A writer that checks, as each output arrives, that the warehouse and the topics could
    hold it; the chdb run below proves the warehouse does."""

    def __init__(self) -> None:
        self.dead_letters = 0
        self.latest_event = -1

    def add_output(self, output: Output) -> None:
        for letter in output.dead_letters:
            CODEC.encode_dead_letter(letter)
            for text in (letter.source, letter.reason, letter.record, letter.ref):
                text.encode("utf-8")
            assert in_range(letter.at) or letter.at == -1, letter
            self.dead_letters += 1
        for event in output.events:
            CODEC.encode_event(event)
            assert in_range(event.at), event
            self.latest_event = max(self.latest_event, event.at)
        for ticket in output.tickets:
            CODEC.encode_ticket(ticket)
        for cycle in output.cycles:
            CODEC.encode_cycle(cycle)

    def flush(self) -> int:
        return 0


@pytest.mark.parametrize(("source", "chunk"), CHUNKS, ids=[f"{s}-{i}" for s, i in CHUNKS])
def test_no_mutated_record_stops_or_stalls_the_parse_stage_and_desk(
    source: str, chunk: int
) -> None:
    count = min(CHUNK, PER_SOURCE - chunk * CHUNK)
    lines = base()[0] + fuzzed(source, count, chunk)
    sink = StorableSink()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text(KEY), sink)  # type: ignore[arg-type]
    intake = Intake(runner.parser)

    records, letters = read_records(lines, "fuzz.jsonl", runner.redact)
    assert len(records) + len(letters) >= sum(1 for line in lines if line.strip())
    for letter in letters:
        runner.dead_letter(letter)
    outcomes: Counter[str] = Counter()
    understood = -1
    slowest = (0.0, "")
    for number, record in enumerate(records):
        started = time.perf_counter()
        items = runner.parse(record)
        runner.apply_parsed(record.at, items, lambda r=record: runner.redact(r.text))
        took = time.perf_counter() - started
        if took > slowest[0]:
            slowest = (took, record.text[:200])
        assert items, f"record {record.ref} vanished"
        for item in items:
            assert isinstance(
                item,
                Contact | AgentAction | SurveyAnswer | CrmUpsert | QaReview | Ignored | DeadLetter,
            )
            outcomes[type(item).__name__] += 1
        if not all(isinstance(item, DeadLetter) for item in items):
            understood = max(understood, record.at)
        if number % 10 == 0:
            # The production parse stage, and the desk-input message it forwards.
            entry = intake.entry(
                encode_raw(record, connector="fuzz"),
                partition=0,
                offset=number,
                partitions=1,
                timestamp=record.at,
            )
            assert decode_input(encode_input(entry)) == entry
    runner.finish(None)

    assert slowest[0] < STALL_S, f"a record took {slowest[0]:.1f}s: {slowest[1]!r}"
    assert outcomes["DeadLetter"] > 0 and outcomes["Contact"] + outcomes["AgentAction"] > 0
    # A dead letter never moves time: nothing happens after the latest understood record.
    assert runner.now is not None and runner.now <= understood
    assert sink.latest_event <= understood
    assert sink.dead_letters == sum(runner.stats.dead_letters.values())


def test_replay_writes_every_mutated_record_s_dead_letter_into_the_warehouse(
    tmp_path: Path,
) -> None:
    lines = base()[0] + [line for s in SOURCES for line in fuzzed(s, 150, -1)]
    source = tmp_path / "fuzzed.jsonl"
    # As a file on disk holds it: what the mutator wrote, lone surrogates only as escapes.
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}

    done = replay_cli(RULES, source, tmp_path / "w", env)

    summary = done.stdout
    reported = int(summary.split(" dead letters")[0].rsplit(", ", 1)[1])
    rows = sql_rows(tmp_path / "w", "SELECT count() AS n FROM dead_letters", env)
    assert reported > 500 and rows == [{"n": reported}]
    tickets = sql_rows(tmp_path / "w", "SELECT count() AS n FROM tickets FINAL", env)
    assert tickets[0]["n"] > 0


# -- the production desk ----------------------------------------------------------------------

FAUST_DESK_RECORDS = 3_000
"""Mutated records per source that cross the production parse stage *and* the Faust desk
(``PartitionDesk``, its state in a table), after the undamaged base."""
DECODE = {
    "domain-events": CODEC.decode_event,
    "acknowledgements": CODEC.decode_event,
    "dead-letters": CODEC.decode_dead_letter,
    "ticket-state": CODEC.decode_ticket,
    "sla-state": CODEC.decode_cycle,
}


@pytest.mark.parametrize("source", SOURCES)
def test_no_mutated_record_stops_the_production_parse_stage_and_faust_desk(source: str) -> None:
    pseudo = Pseudonymizer.from_text(KEY)
    stage = ParseStage(pseudo)
    intake = Intake(stage)
    desk = PartitionDesk(load_rules(RULES), pseudo, CodecTable())
    lines = base()[0] + fuzzed(source, FAUST_DESK_RECORDS, -2)
    records, _ = read_records(lines, "fuzz.jsonl", stage.redact)
    published: list[tuple[str, bytes, bytes]] = []
    understood = latest = -1
    for offset, record in enumerate(records):
        entry = intake.entry(
            encode_raw(record, connector="fuzz"),
            partition=0,
            offset=offset,
            partitions=1,
            timestamp=record.at,
        )
        assert entry.items, f"record {record.ref} vanished"
        if not all(isinstance(item, DeadLetter) for item in entry.items):
            understood = max(understood, entry.at)
        latest = max(latest, record.at)
        published += desk.apply_input(encode_input(entry), 0, offset)
    published += desk.apply_input(encode_input(Mark(0, len(records), 1, latest)), 0, len(records))

    topics: Counter[str] = Counter()
    for topic, _, value in published:
        decoded = DECODE[topic](value)  # every message the workers publish can be read back
        topics[topic] += 1
        if topic == "domain-events":
            # A dead letter never moves time, in the Faust desk either.
            assert decoded.at <= understood, decoded
            assert in_range(decoded.at)
    assert topics["dead-letters"] > 0 and topics["domain-events"] > 0

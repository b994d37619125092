"""A dead letter never moves event time (CONTRACT §1), in replay, in the production desk and
live; and live, a record dated more than 1 h ahead of the wall clock is a dead letter.

The issue's example: one line ``{"at":"2030-01-01T00:00:00Z","source":"chat","payload":{}}``
added to a generated two-day week turned 82 breached SLA cycles into 193, because the dead
letter's ``at`` fired every timer up to 2030.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Output, RawRecord
from processors.rules import load_rules
from processors.timeutil import parse_rfc3339, to_rfc3339
from schemas.codec import CODEC
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.connectors.envelope import decode_sequenced
from streams.faust_runner import PartitionDesk, encode_raw, publish_jsonl
from streams.intake import Intake, Mark, encode_input
from streams.live import run_live
from streams.local import LIVE_MAX_AHEAD_MS, LocalRunner, ParseStage
from streams.replay_input import InputError
from tests.support.broker import Broker
from tests.support.cli import replay_cli, sql_rows
from tests.support.pipeline import Pipeline, wait_until
from tests.support.tables import CodecTable

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.yaml"
KEY = "dead-letter-time-key"
ENV = {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}
LETTER_2030 = '{"at":"2030-01-01T00:00:00Z","source":"chat","payload":{}}'
BREACHES = (
    "SELECT metric, count() AS n, max(toUnixTimestamp64Milli(breached_at)) AS last "
    "FROM sla_metrics FINAL WHERE status = 'breached' GROUP BY metric ORDER BY metric"
)


def test_a_dead_letter_dated_2030_in_a_replay_breaches_nothing(tmp_path: Path) -> None:
    week = generate_week(datetime(2026, 3, 2, tzinfo=UTC), seed=3, tickets=120, pii_key=KEY, days=2)
    clean = tmp_path / "clean.jsonl"
    week.write_jsonl(clean)
    lines = clean.read_text(encoding="utf-8").splitlines()
    with_letter = tmp_path / "with-letter.jsonl"
    # In the middle of the file: replay orders by ``at``, so it sorts after every record.
    middle = len(lines) // 2
    with_letter.write_text("\n".join([*lines[:middle], LETTER_2030, *lines[middle:]]) + "\n")

    replay_cli(RULES, clean, tmp_path / "w-clean", ENV)
    replay_cli(RULES, with_letter, tmp_path / "w-letter", ENV)

    want = sql_rows(tmp_path / "w-clean", BREACHES, ENV)
    got = sql_rows(tmp_path / "w-letter", BREACHES, ENV)
    assert want, "the week breaches some cycles on its own"
    assert got == want  # not one more breach, and none dated later
    assert max(int(row["last"]) for row in got) < parse_rfc3339("2026-03-10T00:00:00Z")
    letters = sql_rows(
        tmp_path / "w-letter",
        "SELECT toString(at) AS at, source, reason FROM dead_letters "
        "WHERE at >= '2030-01-01 00:00:00'",
        ENV,
    )
    assert letters == [
        {
            "at": "2030-01-01 00:00:00.000",
            "source": "chat",
            "reason": "missing field payload.session_id",
        }
    ]


# -- the production desk --------------------------------------------------------------------

T0 = parse_rfc3339("2026-03-02T09:00:00Z")
HOUR = 3_600_000


def chat_record(at: int, message_id: str = "1", payload: Any = None) -> RawRecord:
    body = (
        payload
        if payload is not None
        else {
            "session_id": "s-1",
            "message_id": message_id,
            "visitor": {"id": "v-1"},
            "text": "Где мой заказ? Оплатил счёт, ничего не пришло",
        }
    )
    return RawRecord(at=at, source="chat", payload=body, ref="test", text="")


def _breaches(messages: list[tuple[str, bytes, bytes]]) -> list[str]:
    events = [CODEC.decode_event(v) for topic, _, v in messages if topic == "domain-events"]
    return [e.event_type for e in events if e.event_type == "sla.cycle_breached"]


def _letters(messages: list[tuple[str, bytes, bytes]]) -> list[DeadLetter]:
    return [CODEC.decode_dead_letter(v) for topic, _, v in messages if topic == "dead-letters"]


@pytest.mark.parametrize("live", [False, True])
def test_the_production_desk_moves_no_time_with_a_dead_letter(live: bool) -> None:
    rules = load_rules(RULES)
    pseudo = Pseudonymizer.from_text(KEY)
    wall = T0 + 60_000  # the worker's wall clock: a minute after the contact
    stage = ParseStage(pseudo, clock=lambda: wall, max_ahead_ms=LIVE_MAX_AHEAD_MS if live else None)
    intake = Intake(stage)
    desk = PartitionDesk(rules, pseudo, CodecTable())
    far = parse_rfc3339("2030-01-01T00:00:00Z")
    # Replay-like (a backfill): the 2030 record is malformed. Live: it is a valid contact
    # dated far ahead of the wall clock, which the parse stage makes a dead letter.
    late = chat_record(far, "2") if live else chat_record(far, payload={})
    published: list[tuple[str, bytes, bytes]] = []
    for offset, record in enumerate([chat_record(T0), late]):
        entry = intake.entry(
            encode_raw(record, connector="test"),
            partition=0,
            offset=offset,
            partitions=1,
            timestamp=wall,
        )
        if offset == 1:
            (item,) = entry.items
            assert isinstance(item, DeadLetter)
            # Its place in the desk's order is its arrival, not 2030: it is not held back.
            assert entry.at == wall
        published += desk.apply_input(encode_input(entry), 0, offset)
    published += desk.apply_input(encode_input(Mark(0, 2, 1, wall)), 0, 2)

    (letter,) = _letters(published)
    assert letter.at == far
    if live:
        assert "ahead of the wall clock" in letter.reason
    assert _breaches(published) == []
    assert desk._runner.now == T0  # event time stayed with the one understood record


LIVE_RULES = """
version: 1
calendars:
  always:
    timezone: UTC
    week: {mon: ["00:00-24:00"], tue: ["00:00-24:00"], wed: ["00:00-24:00"], thu: ["00:00-24:00"],
           fri: ["00:00-24:00"], sat: ["00:00-24:00"], sun: ["00:00-24:00"]}
queues:
  - {name: support, default: true}
sla_policies:
  - name: fast
    calendar: always
    targets: {first_response: 30m}
"""


@pytest.mark.integration
@pytest.mark.slow
def test_a_live_worker_makes_a_record_dated_hours_ahead_a_dead_letter(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    """The real worker process on the wall clock (the production default): a contact dated
    2 h ahead is a dead letter with the reason, not a record that moves event time past the
    first ticket's 30-minute first-response target."""
    from kafka import KafkaConsumer

    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap)
    rules = tmp_path / "rules.yaml"
    rules.write_text(LIVE_RULES)
    pipeline.run("migrate", "--no-topics")
    pipeline.run("migrate")
    pipeline.start("worker", "--rules", str(rules), "--loglevel", "info")
    log = tmp_path / "worker-1.log"
    try:
        assert wait_until(
            lambda: log.exists() and "desk partition taken" in log.read_text(errors="replace"),
            timeout=90,
        )
        now = int(time.time() * 1000)

        def contact(at: int, session: str) -> str:
            payload = {"session_id": session, "message_id": "m1", "visitor": {"id": session}}
            payload["text"] = "Не могу войти в кабинет"
            return json.dumps({"at": to_rfc3339(at), "source": "chat", "payload": payload})

        backfill = tmp_path / "two.jsonl"
        backfill.write_text(contact(now, "now") + "\n" + contact(now + 2 * HOUR, "later") + "\n")
        pipeline.run("publish", "--input", str(backfill))

        consumer = KafkaConsumer(
            pipeline.topic("domain-events"),
            pipeline.topic("dead-letters"),
            bootstrap_servers=kafka_broker.bootstrap,
            group_id=f"{pipeline.group}-probe",
            auto_offset_reset="earliest",
        )
        events: list[str] = []
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + 60
        try:
            # Until the dead letter is there and the first ticket has opened, then 3 s more
            # for anything a moved clock would fire.
            settle: float | None = None
            while time.monotonic() < (settle or deadline):
                for batch in consumer.poll(timeout_ms=200).values():
                    for message in batch:
                        if message.topic == pipeline.topic("dead-letters"):
                            letters.append(CODEC.decode_dead_letter(message.value))
                        else:
                            events.append(CODEC.decode_event(message.value).event_type)
                if settle is None and letters and "ticket.opened" in events:
                    settle = time.monotonic() + 3
        finally:
            consumer.close()
    finally:
        pipeline.stop_all()

    assert [(d.source, d.at) for d in letters] == [("chat", now + 2 * HOUR)], letters
    assert "ahead of the wall clock" in letters[0].reason
    assert events.count("ticket.opened") == 1
    assert "sla.cycle_breached" not in events and "sla.cycle_warned" not in events


# -- live -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(1, round(seconds * 1000))


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[ProjectionWriter]:
    backend = ChdbBackend(tmp_path / "warehouse")
    migrate(backend)
    try:
        yield ProjectionWriter(backend)
    finally:
        backend.close()


def test_live_a_record_over_an_hour_ahead_of_the_wall_clock_is_a_dead_letter_at_once(
    writer: ProjectionWriter,
) -> None:
    clock = FakeClock(T0)
    runner = LocalRunner(
        load_rules(RULES),
        Pseudonymizer.from_text(KEY),
        writer,
        clock=clock,
        max_ahead_ms=LIVE_MAX_AHEAD_MS,
    )
    outputs: list[Output] = []
    runner._on_output = outputs.append

    def record(at: int, message_id: str) -> dict[str, Any]:
        raw = chat_record(at, message_id)
        return {"at": to_rfc3339(raw.at), "source": "chat", "payload": raw.payload}

    # A connector with a wrong clock: one record 2 h ahead between two on time.
    feed = [record(T0, "1"), record(T0 + 2 * HOUR, "2"), record(T0 + 2_000, "3")]
    run_live(runner, iter(feed), duration_ms=5_000, clock=clock, sleep=clock.sleep)

    letters = [d for o in outputs for d in o.dead_letters]
    assert [(d.at, d.reason) for d in letters] == [
        (T0 + 2 * HOUR, "field at is 7200 s ahead of the wall clock (more than 3600 s)")
    ]
    assert sum(runner.stats.contacts.values()) == 2  # not waited for until then
    assert runner.now is not None and runner.now <= T0 + 5_000
    events = [e.event_type for o in outputs for e in o.events]
    assert "sla.cycle_breached" not in events


def test_an_agent_record_naming_no_ticket_is_a_dead_letter_that_moves_no_time() -> None:
    sink = StorableOutputs()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text(KEY), sink)  # type: ignore[arg-type]
    far = parse_rfc3339("2030-01-01T00:00:00Z")
    runner.feed(chat_record(T0))
    agent = {"type": "reply", "conversation_id": "chat:nobody", "agent_id": "a-1"}
    runner.feed(RawRecord(at=far, source="agent", payload=agent, ref="x", text="{}"))
    runner.finish(None)

    (letter,) = [d for o in sink.outputs for d in o.dead_letters]
    assert (letter.at, letter.reason) == (far, "conversation 'chat:nobody' has no ticket")
    assert runner.now == T0
    assert [e for o in sink.outputs for e in o.events if e.event_type == "sla.cycle_breached"] == []
    # An agent record on a conversation that has a ticket moves time as before.
    runner.feed(
        RawRecord(
            at=T0 + 60_000,
            source="agent",
            payload={**agent, "conversation_id": "chat:s-1"},
            ref="y",
            text="{}",
        )
    )
    assert runner.now == T0 + 60_000


class StorableOutputs:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def flush(self) -> int:
        return 0


# -- what no record may break ---------------------------------------------------------------


def test_publish_of_a_backfill_with_a_lone_surrogate_and_calendar_edges_goes_through(
    tmp_path: Path,
) -> None:
    # The issue: `supportstream publish` of a file holding the first line aborted the whole
    # backfill (CodecError: cannot encode a dead_letter record).
    lines = [
        r'{"at":"2026-03-02T10:00:00Z","source":"instagram","payload":{"text":"\ud800"}}',
        '{"at":"9999-12-31T23:59:59-12:00","source":"chat","payload":{}}',
        '{"at":"2026-03-02T10:00:00Z","source":"chat","payload":' + "[" * 400 + "]" * 400 + "}",
        r'{"at":"2026-03-02T10:00:01Z","source":"chat","payload":{"session_id":"s",'
        r'"message_id":"m","visitor":{"id":"\udc00"},"text":"\ud83d"}}',
    ]
    source = tmp_path / "backfill.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw: list[tuple[bytes, bytes]] = []
    letters: list[tuple[bytes, bytes]] = []

    done = publish_jsonl(
        source,
        lambda k, v: raw.append((k, v)),
        lambda k, v: letters.append((k, v)),
        Pseudonymizer.from_text(KEY),
    )

    assert (done.records, done.dead_letters) == (2, 2)
    unknown, far = [CODEC.decode_dead_letter(value) for _, value in letters]
    assert unknown.reason == "unknown source 'instagram'" and "\ufffd" in unknown.record
    assert "outside the instants the warehouse stores" in far.reason
    decoded = [decode_sequenced(value, "raw/0/0", lambda t: t)[0] for _, value in raw]
    assert all(isinstance(record, RawRecord) for record in decoded)
    texts = [json.dumps(r.payload, ensure_ascii=False) for r in decoded if isinstance(r, RawRecord)]
    assert any("\ufffd" in text for text in texts)


def test_a_raw_message_dated_outside_the_stored_range_is_a_dead_letter_dated_on_arrival() -> None:
    record = chat_record(T0)
    for at in (-(2**62), 2**62):
        data = encode_raw(RawRecord(at, "chat", record.payload, "x"), connector="test")
        letter, _ = decode_sequenced(data, "raw-contacts/0/7", lambda t: t, at_if_unknown=T0)
        assert isinstance(letter, DeadLetter)
        assert letter.at == T0 and "outside the instants the warehouse stores" in letter.reason


def test_publish_reads_its_input_as_replay_does(tmp_path: Path) -> None:
    """A byte-order mark is skipped, a bare CR inside a record does not split it, a line of
    control characters is a counted dead letter, and a missing file or a directory is bad
    usage (``InputError``), as for ``replay`` (docs/REPLAY.md)."""
    chat = (
        '{"at":"2026-03-02T10:00:0%dZ",\r"source":"chat","payload":{"session_id":"s",'
        '"message_id":"m%d","visitor":{"id":"v"},"text":"hello"}}'
    )
    source = tmp_path / "backfill.jsonl"
    source.write_bytes(
        b"\xef\xbb\xbf" + (chat % (1, 1)).encode() + b"\n\x1c\x0b\n" + (chat % (2, 2)).encode()
    )
    raw: list[tuple[bytes, bytes]] = []
    letters: list[tuple[bytes, bytes]] = []

    done = publish_jsonl(
        source,
        lambda k, v: raw.append((k, v)),
        lambda k, v: letters.append((k, v)),
        Pseudonymizer.from_text(KEY),
    )

    assert (done.records, done.dead_letters) == (2, 1)
    (letter,) = [CODEC.decode_dead_letter(value) for _, value in letters]
    assert letter.reason.startswith("invalid json") and letter.ref == "backfill.jsonl:2"
    for path in (tmp_path / "missing.jsonl", tmp_path):
        with pytest.raises(InputError):
            publish_jsonl(path, lambda k, v: None, lambda k, v: None, Pseudonymizer.from_text(KEY))

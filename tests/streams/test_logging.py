"""Structured logs: one contact can be followed through parse -> desk -> sink by its conversation
id, the lines carry hashed ids only (no texts, no identities), and the production configuration
writes one JSON object per line with an ISO UTC timestamp and the level."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Output, RawRecord
from processors.parsing import parse_record
from processors.pii import Masker
from processors.rules import rules_from_mapping
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner
from streams.logging import configure_logging, log_flush, log_output, log_parsed
from tests.streams.test_metrics import FakeWarehouse

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
RULES = rules_from_mapping(
    {
        "version": 1,
        "calendars": {"always": {"timezone": "UTC", "week": ALWAYS}},
        "queues": [{"name": "general", "default": True}],
        "sla_policies": [
            {"name": "std", "calendar": "always", "targets": {"first_response": "10m"}}
        ],
    },
    "test-rules",
)
PSEUDO = Pseudonymizer.from_text("log-test-key")
SECRET_TEXT = "позвоните мне +7 916 111-22-33"


def telegram(at: int, chat_id: int, text: str, n: int) -> RawRecord:
    payload = {
        "update_id": n,
        "message": {
            "message_id": n,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
            "chat": {"id": chat_id, "type": "private"},
            "date": at // 1000,
            "text": text,
        },
    }
    return RawRecord(at, "telegram", payload, f"in.jsonl:{n}", json.dumps(payload))


def agent_reply(at: int, conversation_id: str, n: int) -> RawRecord:
    payload = {"type": "reply", "conversation_id": conversation_id, "agent_id": "ann"}
    return RawRecord(at, "agent", payload, f"in.jsonl:{n}", json.dumps(payload))


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def run_pipeline(records: list[RawRecord]) -> list[dict[str, Any]]:
    """The stages as a runner wires them: parse (log_parsed), desk (log_output via on_output),
    sink (log_output stage=sink on the way in, log_flush once written)."""
    log = structlog.get_logger("supportstream.test")
    writer = ProjectionWriter(FakeWarehouse())
    tickets: set[str] = set()

    def on_output(output: Output) -> None:
        log_output(log, output, stage="desk")
        log_output(log, output, stage="sink")
        tickets.update(t.ticket_id for t in output.tickets)

    runner = LocalRunner(RULES, PSEUDO, writer, on_output=on_output)
    masker = Masker()
    with capture_logs() as logs:
        for record in records:
            for item in parse_record(record, PSEUDO, masker.mask):
                log_parsed(log, item, record.ref)
            runner.feed(record)
        runner.finish(None)
        log_flush(log, writer.rows_written, ticket_ids=tickets)
    return logs


def test_one_contact_can_be_followed_through_every_stage_by_its_conversation_id() -> None:
    conversation = f"telegram:{PSEUDO.h('111')}"
    logs = run_pipeline(
        [
            telegram(T0, 111, SECRET_TEXT, 1),
            telegram(T0 + 1000, 222, "someone else", 2),
            agent_reply(T0 + 60_000, conversation, 3),
        ]
    )
    mine = [line for line in logs if line.get("conversation_id") == conversation]
    assert {line["stage"] for line in mine} == {"parse", "desk", "sink"}
    desk = [line for line in mine if line["stage"] == "desk" and "event_type" in line]
    story = [line["event_type"] for line in desk]
    assert story[:2] == ["contact.received", "ticket.opened"]
    for expected in ("sla.cycle_started", "agent.replied", "sla.cycle_fulfilled"):
        assert expected in story
    assert story.index("agent.replied") < story.index("sla.cycle_fulfilled")
    ticket_id = f"{conversation}#1"
    assert {line["ticket_id"] for line in desk} == {ticket_id}
    assert all(line["log_level"] == "debug" for line in desk)
    # the customer is a pseudonym, the same on every line
    customers = {line["customer_id"] for line in desk}
    assert len(customers) == 1 and "111" not in customers.pop()
    # the sink stage: every event handed to the writer, then the flush that wrote it
    to_sink = [line for line in mine if line["stage"] == "sink"]
    assert {line["table"] for line in to_sink} >= {"events"}
    flushed = [line for line in logs if line["event"] == "sink flushed"]
    assert len(flushed) == 1 and ticket_id in flushed[0]["ticket_ids"]
    assert flushed[0]["rows"]["events"] > 0
    # another contact's lines are not mixed in
    assert all(conversation in line.get("conversation_id", "") for line in mine)


def test_logs_hold_no_text_and_no_identity_in_clear() -> None:
    logs = run_pipeline([telegram(T0, 111, SECRET_TEXT, 1)])
    dump = json.dumps(logs, ensure_ascii=False)
    assert "позвоните" not in dump
    assert "916" not in dump
    assert '"111"' not in dump and ":111" not in dump


def test_dead_letters_are_warnings_with_the_reason() -> None:
    log = structlog.get_logger("t")
    letter = DeadLetter(T0, "survey", "score 9 out of range 1..5 for csat", "{}", "in.jsonl:7")
    with capture_logs() as logs:
        log_parsed(log, letter)
        log_output(log, Output(dead_letters=(letter,)))
    assert [line["log_level"] for line in logs] == ["warning", "warning"]
    assert {line["ref"] for line in logs} == {"in.jsonl:7"}
    assert {line["reason"] for line in logs} == {"score 9 out of range 1..5 for csat"}


def test_configure_logging_writes_json_lines_with_utc_timestamp_and_level() -> None:
    stream = io.StringIO()
    configure_logging(debug=False, stream=stream)
    log = structlog.get_logger("supportstream.test")
    log.debug("hidden")
    log.info("shown", ticket_id="chat:s-1#1")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    (line,) = lines
    assert line["event"] == "shown" and line["level"] == "info"
    assert line["ticket_id"] == "chat:s-1#1"
    assert line["timestamp"].endswith("Z")

    stream = io.StringIO()
    configure_logging(debug=True, stream=stream)
    structlog.get_logger().debug("visible")
    assert json.loads(stream.getvalue())["level"] == "debug"

    stream = io.StringIO()
    configure_logging(debug=False, stream=stream, level=logging.WARNING)
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    assert [json.loads(x)["event"] for x in stream.getvalue().splitlines()] == ["loud"]

"""The single-object Avro codec: exact round trips of every record the processors emit, the
header checked against the Avro specification independently of fastavro, and ``CodecError`` for
anything that is not a message we wrote."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.events import EVENT_TYPES
from processors.model import CycleState, DeadLetter, DomainEvent, TicketState
from schemas import codec
from schemas.codec import CODEC, MAGIC, CodecError, schema_name_for_event

AT = 1_768_460_400_123  # 2026-01-15T07:00:00.123Z

# -------------------------------------------------------------------------------------------------
# The specification's fingerprint, implemented here from its text (not from fastavro)
# -------------------------------------------------------------------------------------------------

_EMPTY64 = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY64 & -(_fp & 1))
    _TABLE.append(_fp)


def rabin64(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) as given in the Avro specification, "Schema Fingerprints"."""
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def canonical_form(schema: Any, namespace: str = "") -> str:
    """Parsing Canonical Form per the specification, for the constructs our schemas use
    (records, primitives, logical types on primitives, unions): [PRIMITIVES] [FULLNAMES]
    [STRIP] [ORDER] [STRINGS] [WHITESPACE]."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return json.dumps(schema)
        return json.dumps(schema if "." in schema else f"{namespace}.{schema}")
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace) for s in schema) + "]"
    kind = schema["type"]
    if kind in _PRIMITIVES:
        return json.dumps(kind)  # {"type": "long", "logicalType": ...} -> "long"
    assert kind == "record", kind
    space = schema.get("namespace", namespace)
    name = schema["name"] if "." in schema["name"] else f"{space}.{schema['name']}"
    fields = ",".join(
        '{"name":' + json.dumps(f["name"]) + ',"type":' + canonical_form(f["type"], space) + "}"
        for f in schema["fields"]
    )
    return '{"name":' + json.dumps(name) + ',"type":"record","fields":[' + fields + "]}"


@pytest.mark.parametrize(
    ("text", "expected_hex"),
    # Reference vectors of the Apache Avro test suite (little-endian bytes, as on the wire).
    [
        ('"int"', "8f5c393f1ad57572"),
        ('"long"', "b71df49344e154d0"),
        ('"string"', "c70345637248018f"),
    ],
)
def test_the_reference_rabin_implementation_matches_the_avro_test_vectors(
    text: str, expected_hex: str
) -> None:
    assert rabin64(text.encode()).to_bytes(8, "little").hex() == expected_hex


@pytest.mark.parametrize("name", CODEC.names)
def test_header_is_the_single_object_marker_and_the_spec_fingerprint(name: str) -> None:
    schema = CODEC.schema_json(name)
    expected_fp = rabin64(canonical_form(schema).encode("utf-8")).to_bytes(8, "little")
    assert CODEC.fingerprint(name) == expected_fp
    record = _sample_record(schema)
    data = CODEC.encode(name, record)
    assert data[:2] == b"\xc3\x01" == MAGIC
    assert data[2:10] == expected_fp
    assert CODEC.decode(data) == (name, record)


def test_every_schema_has_a_distinct_fingerprint() -> None:
    fingerprints = [CODEC.fingerprint(name) for name in CODEC.names]
    assert len(set(fingerprints)) == len(fingerprints)


def _sample_record(schema: dict[str, Any]) -> dict[str, Any]:
    def value(t: Any) -> Any:
        if isinstance(t, list):
            return value(t[1])
        if isinstance(t, dict):
            return AT if t.get("logicalType") == "timestamp-millis" else value(t["type"])
        return {"string": "ёж", "int": -3, "long": 1 << 40, "double": 0.125, "boolean": True}[t]

    return {f["name"]: value(f["type"]) for f in schema["fields"]}


# -------------------------------------------------------------------------------------------------
# Round trips
# -------------------------------------------------------------------------------------------------

_REALISTIC: dict[str, dict[str, Any]] = {
    "contact.received": {
        "channel": "telegram",
        "message_id": "3f2a9c0d1e4b5a6c7d8e",
        "sender": "telegram:9a8b7c6d5e4f3a2b1c0d",
        "subject": "",
        "text": "Здравствуйте! Не проходит оплата, телефон [phone] 🙏",
        "call_status": "",
        "duplicate": False,
    },
    "ticket.opened": {
        "number": 2,
        "channel": "email",
        "tier": "vip",
        "category": "billing",
        "kind": "complaint",
        "priority": "P1",
        "queue": "vip",
        "sla_policy": "vip",
        "language": "en",
        "required_skills": "billing,en",
        "preferred_skills": "",
    },
    "contact.categorized": {
        "category": "other",
        "kind": "question",
        "priority": "P3",
        "queue": "general-l1",
        "sla_policy": "",
        "tier": "prospect",
        "channel": "form",
        "language": "und",
    },
    "ticket.waiting_started": {
        "queue": "billing-l1",
        "priority": "P2",
        "reason": "agent_offline",
        "previous_agent_id": "a.ivanova",
        "required_skills": "en",
    },
    "ticket.waiting_stopped": {
        "queue": "billing-l1",
        "priority": "P2",
        "reason": "assigned",
        "agent_id": "p.petrov",
        "waiting_since": AT - 5_400_000,
        "waited_seconds": 5400.0,
    },
    "agent.presence_changed": {
        "agent_id": "a.ivanova",
        "status": "offline",
        "previous_status": "online",
        "released_tickets": 3,
    },
    "ticket.status_changed": {"from_status": "new", "to_status": "open", "by": "a.ivanova"},
    "ticket.reopened": {
        "reopen_count": 1,
        "to_status": "open",
        "by": "customer",
        "solved_at": AT - 3_600_000,
        "solved_by": "a.ivanova",
    },
    "ticket.assigned": {
        "agent_id": "p.petrov",
        "previous_agent_id": "a.ivanova",
        "handoff": True,
        "by": "rules",
    },
    "ticket.solved": {"by": "a.ivanova", "from_status": "pending"},
    "agent.replied": {
        "agent_id": "a.ivanova",
        "public": False,
        "type": "note",
        "message_id": "",
        "first": False,
    },
    "survey.answered": {"kind": "nps", "score": 0, "agent_id": "p.petrov"},
    "qa.reviewed": {
        "reviewer_id": "lead.smirnova",
        "agent_id": "a.ivanova",
        "quality": None,
        "critical_failed": False,
        "scores": '{"greeting":null,"solution":null}',
        "comment": "всё по скрипту",
        "sequence": 12,
    },
    "customer.upserted": {
        "tier": "active",
        "status": "churned",
        "mrr": None,
        "identities": "email:0123456789abcdef0123,phone:fedcba9876543210fedc",
    },
    "sla.cycle_started": {
        "metric": "first_response",
        "cycle": 1,
        "policy": "standard",
        "due_at": AT + 3_600_000,
        "target_seconds": 3600.0,
    },
    "sla.cycle_paused": {
        "metric": "resolution",
        "cycle": 1,
        "policy": "standard",
        "due_at": AT + 57_600_000,
        "business_seconds": 1234.567,
    },
    "sla.cycle_resumed": {
        "metric": "resolution",
        "cycle": 1,
        "policy": "standard",
        "due_at": AT + 60_000_001,
        "business_seconds": 1234.567,
    },
    "sla.cycle_warned": {
        "metric": "next_response",
        "cycle": 3,
        "policy": "vip",
        "due_at": AT + 1_800_000,
        "business_seconds": 1440.0,
    },
    "sla.cycle_breached": {
        "metric": "first_response",
        "cycle": 1,
        "policy": "vip",
        "due_at": AT,
        "target_seconds": 900.0,
    },
    "sla.cycle_fulfilled": {
        "metric": "next_response",
        "cycle": 2,
        "policy": "vip",
        "due_at": AT - 1,
        "business_seconds": 1800.001,
        "breached": True,
    },
    "sla.cycle_cancelled": {
        "metric": "first_response",
        "cycle": 1,
        "policy": "standard",
        "due_at": 0,
        "business_seconds": 0.0,
    },
    "ticket.acknowledged": {
        "channel": "telegram",
        "policy": "standard",
        "promised_by": AT + 2_340_500,
        "estimate_seconds": 2340.5,
        "basis": "history",
        "samples": 100,
    },
    "promise.kept": {
        "channel": "email",
        "policy": "vip",
        "promised_by": AT,
        "replied_at": AT,
    },
    "promise.broken": {
        "channel": "chat",
        "policy": "standard",
        "promised_by": AT,
        "replied_at": None,
    },
    "incident.opened": {
        "incident_id": "outage#1",
        "category": "outage",
        "opened_at": AT,
        "closed_at": None,
        "tickets": 6,
        "customers": 5,
        "baseline": 0.125,
        "version": 1,
    },
    "incident.joined": {
        "incident_id": "outage#1",
        "category": "outage",
        "opened_at": AT,
        "closed_at": None,
        "tickets": 7,
        "customers": 6,
        "baseline": 0.125,
        "version": 2,
    },
    "incident.closed": {
        "incident_id": "outage#1",
        "category": "outage",
        "opened_at": AT,
        "closed_at": AT + 3_600_000,
        "tickets": 7,
        "customers": 6,
        "baseline": 0.125,
        "version": 3,
    },
}


def test_the_realistic_values_cover_every_event_type() -> None:
    assert set(_REALISTIC) == set(EVENT_TYPES)


def _event(event_type: str, data: dict[str, Any]) -> DomainEvent:
    return DomainEvent(
        event_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        event_type=event_type,
        at=AT,
        ticket_id="telegram:9a8b7c6d5e4f3a2b1c0d#2",
        conversation_id="telegram:9a8b7c6d5e4f3a2b1c0d",
        customer_id="cust-42",
        data=data,
    )


@pytest.mark.parametrize("event_type", sorted(_REALISTIC))
def test_every_event_type_round_trips_exactly(event_type: str) -> None:
    event = _event(event_type, _REALISTIC[event_type])
    data = codec.encode_event(event)
    assert data[2:10] == CODEC.fingerprint(schema_name_for_event(event_type))
    decoded = codec.decode_event(data)
    assert decoded == event
    assert all(type(decoded.data[k]) is type(v) for k, v in event.data.items())


def test_nullable_mrr_round_trips_as_a_number_too() -> None:
    event = _event("customer.upserted", {**_REALISTIC["customer.upserted"], "mrr": 129_900.5})
    assert codec.decode_event(codec.encode_event(event)) == event


def test_instants_stay_exact_integers_far_from_the_epoch() -> None:
    # fastavro would hand back datetimes (and fail beyond year 9999); Millis must stay ints.
    for at in (-62_135_596_800_000, -1, 0, 1, 253_402_300_799_999, 2**62):
        event = replace(_event("ticket.solved", _REALISTIC["ticket.solved"]), at=at)
        decoded = codec.decode_event(codec.encode_event(event))
        assert decoded.at == at and type(decoded.at) is int


def test_ticket_state_round_trips() -> None:
    ticket = TicketState(
        ticket_id="email:0a1b2c3d4e5f6a7b8c9d#1",
        conversation_id="email:0a1b2c3d4e5f6a7b8c9d",
        customer_id="cust-7",
        channel="email",
        category="billing",
        kind="complaint",
        priority="P2",
        queue="billing-l2",
        agent_id="",
        status="solved",
        sla_policy="standard",
        opened_at=AT,
        solved_at=AT + 7_200_000,
        reopen_count=1,
        handoff_count=0,
        inbound_count=3,
        agent_reply_count=2,
        csat=None,
        nps=9,
        tier="active",
        opened_day="2026-01-15",
        first_reply_at=None,
        updated_at=AT + 7_200_000,
        version=12,
    )
    assert codec.decode_ticket(codec.encode_ticket(ticket)) == ticket


def test_cycle_state_round_trips() -> None:
    cycle = CycleState(
        ticket_id="chat:s-1#1",
        metric="resolution",
        cycle=1,
        policy="vip",
        status="breached",
        started_at=AT,
        due_at=AT + 14_400_000,
        warned_at=AT + 11_520_000,
        breached_at=AT + 14_400_000,
        fulfilled_at=None,
        business_seconds=None,
        target_seconds=14_400.0,
        updated_at=AT + 14_400_000,
        version=4,
    )
    assert codec.decode_cycle(codec.encode_cycle(cycle)) == cycle


def test_dead_letter_round_trips() -> None:
    dead = DeadLetter(
        at=AT,
        source="survey",
        reason="score out of range: 11 (nps is 0..10)",
        record='{"at":"2026-01-15T10:00:00+03:00","source":"survey","payload":{"score":11}}',
        ref="input.jsonl:17",
    )
    assert codec.decode_dead_letter(codec.encode_dead_letter(dead)) == dead


def test_raw_contact_round_trips_through_the_generic_api() -> None:
    raw = {
        "at": AT,
        "source": "email",
        "payload": "From: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.com>\r\nSubject: счёт\r\n\r\nтело",
        "received_at": AT + 15,
        "connector": "imap-1",
        "channel_message_id": "<abc@mail.example.com>",
        "content_type": "message/rfc822",
        "sequence": 17,
    }
    assert codec.decode(codec.encode("raw_contact", raw)) == ("raw_contact", raw)


def test_a_raw_contact_of_the_previous_schema_reads_with_no_sequence() -> None:
    """Connectors of the previous release wrote no ``sequence``; their messages still in the
    topic read as null (the desk then orders records of one instant by partition)."""
    from schemas.codec import PREVIOUS_DIR, Codec, load_schema_files

    previous = load_schema_files(PREVIOUS_DIR)["raw_contact"]
    assert "sequence" not in [f["name"] for f in previous["fields"]]
    old = {
        "at": AT,
        "source": "chat",
        "payload": "{}",
        "received_at": AT,
        "connector": "http-1",
        "channel_message_id": "",
        "content_type": "application/json",
    }
    previous_release = Codec(schema_dir=PREVIOUS_DIR, previous_dir=None)
    data = previous_release.encode("raw_contact", old)
    assert data[2:10] != CODEC.fingerprint("raw_contact")  # written by the other schema
    assert codec.decode(data) == ("raw_contact", {**old, "sequence": None})


def test_schema_registry_lists_every_schema_as_json() -> None:
    registry = codec.schema_registry()
    assert set(registry) == set(CODEC.names)
    assert registry["ticket_opened"]["name"] == "TicketOpened"
    registry["ticket_opened"]["name"] = "changed"  # a copy: the codec is not affected
    assert codec.schema_registry()["ticket_opened"]["name"] == "TicketOpened"


# -------------------------------------------------------------------------------------------------
# Errors
# -------------------------------------------------------------------------------------------------


def _valid() -> bytes:
    return codec.encode_event(
        _event("survey.answered", {"kind": "csat", "score": 5, "agent_id": "p.petrov"})
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\xc3\x01\x00", "too short"),
        (b'{"json": true, "not": "avro"}', "not an Avro single-object message"),
        (b"\xc3\x02" + bytes(8) + b"\x00", "marker c302"),
        (b"\xc3\x01" + bytes(8) + b"\x00", "unknown writer schema fingerprint 0000000000000000"),
    ],
)
def test_garbage_raises_codec_error_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        codec.decode(data)


def test_a_truncated_message_raises_codec_error() -> None:
    data = _valid()
    for cut in range(10, len(data)):
        with pytest.raises(CodecError, match="corrupt or truncated survey_answered"):
            codec.decode(data[:cut])


def test_trailing_bytes_raise_codec_error() -> None:
    with pytest.raises(CodecError, match="unexpected bytes"):
        codec.decode(_valid() + b"\x00")


def test_decoding_the_wrong_kind_of_record_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="expected a ticket_state message, got a survey_answered"):
        codec.decode_ticket(_valid())
    dead = codec.encode_dead_letter(DeadLetter(AT, "x", "bad", "{}", "f:1"))
    with pytest.raises(CodecError, match="expected a domain event"):
        codec.decode_event(dead)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (_event("no.such_type", {}), "unknown event type 'no.such_type'"),
        (_event("survey.answered", {"kind": "csat"}), "cannot encode a survey_answered record"),
        (
            _event("survey.answered", {"kind": "csat", "score": 5, "extra": 1}),
            "cannot encode a survey_answered record",
        ),
        (_event("survey.answered", {"kind": "csat", "score": "5"}), "cannot encode"),
    ],
)
def test_records_that_do_not_fit_their_schema_raise_codec_error(
    event: DomainEvent, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        codec.encode_event(event)


def test_unknown_schema_name_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="unknown schema 'nope'"):
        codec.encode("nope", {})


@settings(max_examples=500)
@given(body=st.binary(max_size=64), known=st.booleans())
def test_arbitrary_bytes_never_escape_as_anything_but_codec_error(body: bytes, known: bool) -> None:
    # With a known header the body is parsed for real: corrupt bodies must still be CodecError.
    data = (MAGIC + CODEC.fingerprint("ticket_state") + body) if known else body
    try:
        name, record = codec.decode(data)
    except CodecError:
        return
    assert name == "ticket_state" and isinstance(record, dict)

"""The ``desk-input`` codec (``streams.intake.encode_input`` / ``decode_input``).

Every record the desk applies in production has crossed ``desk-input`` as JSON: an entry that
came back different from what the parse stage built would change what the desk does (a lost
``References`` id threads a reply into a new ticket, an identity pair swapped merges the wrong
customers). So entries holding real parsed items of every type, parsed from realistic records
of every source (the parser tests' fixtures), and entries the intake itself builds from raw
messages, must come back equal. Arbitrary well-typed items are round-tripped too.

A message the desk cannot read is dead-lettered by the desk (``PartitionDesk.apply_input``
catches ``IntakeError`` only): any other exception from ``decode_input`` would stop the desk's
agent on that message at every redelivery. So garbage, another format version, an unknown item
type and corrupted fields must all raise ``IntakeError`` with a message naming the problem.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.ids import Pseudonymizer
from processors.model import (
    CHANNELS,
    IDENTITY_KINDS,
    TIERS,
    AgentAction,
    Contact,
    CrmUpsert,
    DeadLetter,
    EmailThreading,
    Identity,
    Ignored,
    Parsed,
    RawRecord,
    SurveyAnswer,
)
from processors.parsing import parse_envelope, parse_line
from processors.timeutil import to_rfc3339
from schemas.codec import CODEC, RAW_CONTACT
from streams.faust_runner import encode_raw
from streams.intake import (
    FORMAT,
    Entry,
    Intake,
    IntakeError,
    Mark,
    decode_input,
    decode_inputs,
    encode_input,
    entry_to_json,
)
from streams.local import ParseStage

FIXTURES = Path(__file__).resolve().parents[1] / "processors" / "parsing" / "fixtures"
PSEUDO = Pseudonymizer.from_text("intake-test-key")
STAGE = ParseStage(PSEUDO)
AT = "2026-03-02T09:15:00+03:00"
CONVERSATION = "telegram:0123456789abcdef0123"


def _fixture(name: str) -> Any:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


def _line(source: str, payload: Any) -> str:
    return json.dumps({"at": AT, "source": source, "payload": payload}, ensure_ascii=False)


RECORDS: dict[str, str] = {
    "telegram": _line("telegram", _fixture("telegram_message_text.json")),
    "telegram-photo-caption": _line("telegram", _fixture("telegram_group_photo_caption.json")),
    "telegram-edit-ignored": _line("telegram", _fixture("telegram_edited_message.json")),
    "whatsapp": _line("whatsapp", _fixture("whatsapp_text.json")),
    "whatsapp-several-with-statuses": _line(
        "whatsapp", _fixture("whatsapp_several_with_statuses.json")
    ),
    "email-threaded-reply": _line("email", _fixture("mail_reply_threaded.eml")),
    "email-quoted-printable": _line("email", _fixture("mail_alternative_qp_ru.eml")),
    "email-no-boundary-dead-letter": _line("email", _fixture("mail_no_boundary.eml")),
    "chat": _line(
        "chat",
        {
            "session_id": "s-8f41c2",
            "message_id": "m-0003",
            "visitor": {
                "id": "v-77a1",
                "email": " Olga.K@Example.RU ",
                "phone": "+7 (916) 555-01-02",
                "name": "Ольга",
            },
            "text": "Здравствуйте! Сайт выдаёт ошибку 500 при оплате 🙁",
            "page_url": "https://shop.example.com/checkout",
        },
    ),
    "form": _line(
        "form",
        {
            "submission_id": "f-20260302-0042",
            "form_id": "contact-us",
            "email": "petr@example.org",
            "phone": "8 800 555-35-35",
            "name": "Пётр",
            "topic": "Возврат",
            "message": 'Прошу вернуть деньги за заказ 88\n"срочно"\t\\',
            "page_url": "https://shop.example.com/help",
        },
    ),
    "vk": _line("vk", _fixture("vk_message_new.json")),
    "vk-wall-reply": _line("vk", _fixture("vk_wall_reply_new.json")),
    "phone": _line(
        "phone",
        {
            "call_id": "call-5e1f9a",
            "caller": "+7 916 123-45-67",
            "callee": "+7 495 000-00-00",
            "status": "answered",
            "started_at": "2026-03-02T09:14:02+03:00",
            "duration_s": 184,
            "agent_id": "p.petrov",
            "transcript": "Клиент спрашивает про счёт 4417",
        },
    ),
    "agent-private-reply": _line(
        "agent",
        {
            "type": "reply",
            "conversation_id": CONVERSATION,
            "agent_id": "a.ivanova",
            "public": False,
            "message_id": " <Desk-Reply-1.8841@Support.Example.com> ",
        },
    ),
    "agent-status": _line(
        "agent",
        {
            "type": "status",
            "conversation_id": CONVERSATION,
            "agent_id": "a.ivanova",
            "status": "pending",
        },
    ),
    "survey": _line("survey", {"conversation_id": CONVERSATION, "kind": "nps", "score": 9}),
    "crm": _line(
        "crm",
        {
            "customer_id": "cust-1001",
            "tier": "vip",
            "identities": {
                "vk": ["00123456789"],
                "phone": ["8 (916) 123-45-67", "+7 916 123 45 67"],
                "email": ["Ivan.Petrov@Example.RU"],
                "telegram": [508812345],
            },
            "mrr": 1200.5,
        },
    ),
    "crm-churned-without-mrr": _line(
        "crm", {"customer_id": 77, "tier": "prospect", "identities": {}, "status": "churned"}
    ),
    "survey-out-of-range-dead-letter": _line(
        "survey", {"conversation_id": CONVERSATION, "kind": "csat", "score": 7}
    ),
    "bad-json-dead-letter": '{"at": "2026-03-02T09:15:00+03:00", "source": "chat", "payload": {',
}


def _entry(name: str) -> Entry:
    """The record parsed as the intake parses it, held in an entry of raw partition 3."""
    offset = list(RECORDS).index(name)
    ref = f"raw-contacts/3/{offset}"
    line = RECORDS[name]
    items = tuple(parse_line(line, ref, PSEUDO, STAGE.redact))
    refusable = any(isinstance(item, AgentAction | SurveyAnswer) for item in items)
    record = STAGE.redact(line) if refusable else ""
    return Entry(3, offset, 8, items[0].at, offset % 3, ref, record, items)


def test_the_records_cover_every_parsed_type_and_email_threading() -> None:
    items = [item for name in RECORDS for item in _entry(name).items]

    assert {type(item) for item in items} == {
        Contact,
        AgentAction,
        SurveyAnswer,
        CrmUpsert,
        Ignored,
        DeadLetter,
    }
    (reply,) = _entry("email-threaded-reply").items
    assert isinstance(reply, Contact) and reply.threading is not None
    assert reply.threading.references and reply.threading.in_reply_to
    assert len(_entry("whatsapp-several-with-statuses").items) > 1
    assert _entry("survey").record != ""


@pytest.mark.parametrize("name", list(RECORDS))
def test_an_entry_of_parsed_items_round_trips(name: str) -> None:
    entry = _entry(name)

    data = encode_input(entry)

    assert isinstance(data, bytes)
    assert json.loads(data)["format"] == FORMAT
    assert decode_input(data) == entry


@pytest.mark.parametrize("name", [n for n in RECORDS if n != "bad-json-dead-letter"])
def test_an_entry_the_intake_builds_from_a_raw_message_round_trips(name: str) -> None:
    raw = parse_envelope(RECORDS[name], "publish", STAGE.redact)
    assert not isinstance(raw, DeadLetter)
    offset = list(RECORDS).index(name)
    data = encode_raw(raw, connector="test", sequence=offset)

    entry = Intake(STAGE).entry(data, partition=1, offset=offset, partitions=4, timestamp=7)

    assert entry.sequence == offset
    assert decode_input(encode_input(entry)) == entry


@pytest.mark.parametrize("name", [n for n in RECORDS if n != "bad-json-dead-letter"])
def test_only_a_refusable_record_carries_its_line_to_the_desk(name: str) -> None:
    """The desk redacts an agent, survey or review record into a dead letter only when it
    refuses it, so only those carry their line: the envelope as compact JSON, as the raw
    message was published. Other records carry none (writing it was a third of the intake's
    cost per message); the parser's own dead letters still hold the redacted line."""
    raw = parse_envelope(RECORDS[name], "publish", STAGE.redact)
    assert isinstance(raw, RawRecord)
    line = json.dumps(
        {"at": to_rfc3339(raw.at), "source": raw.source, "payload": raw.payload},
        ensure_ascii=False,
        separators=(",", ":"),
    )

    entry = Intake(STAGE).entry(
        encode_raw(raw, connector="test"), partition=0, offset=0, partitions=1, timestamp=0
    )

    if any(isinstance(item, AgentAction | SurveyAnswer) for item in entry.items):
        assert entry.text == line
    else:
        assert entry.text == ""
    for letter in entry.items:
        if isinstance(letter, DeadLetter):
            assert letter.record == STAGE.redact(line)


def test_the_entry_of_an_unreadable_raw_message_round_trips() -> None:
    entry = Intake(STAGE).entry(
        b"\x00\x01 not avro", partition=0, offset=12, partitions=2, timestamp=1_772_432_100_000
    )

    assert isinstance(entry.items[0], DeadLetter)
    assert decode_input(encode_input(entry)) == entry


def test_a_raw_payload_with_an_escaped_lone_surrogate_crosses_desk_input() -> None:
    """JSON may escape half of a surrogate pair on its own (``"\\ud83d"``: an emoji cut in
    two), and ``json.loads`` accepts it. The intake must still put the message on
    ``desk-input`` (as an entry that round-trips, or as a dead letter), not crash on it."""
    payload = '{"session_id":"s-1","message_id":"m-1","visitor":{"id":"v-1"},"text":"hi \\ud83d"}'
    data = CODEC.encode(
        RAW_CONTACT,
        {
            "at": 1_772_432_100_000,
            "source": "chat",
            "payload": payload,
            "received_at": 1_772_432_100_000,
            "connector": "test",
            "channel_message_id": "",
            "content_type": "application/json",
            "sequence": None,
        },
    )
    entry = Intake(STAGE).entry(data, partition=0, offset=0, partitions=1, timestamp=0)

    assert decode_input(encode_input(entry)) == entry


@pytest.mark.parametrize(
    "mark",
    [Mark(0, 0, 1, 0), Mark(4, 1_234_567, 12, 1_772_432_100_000), Mark(1, 0, 2, -1)],
)
def test_a_mark_round_trips(mark: Mark) -> None:
    assert decode_input(encode_input(mark)) == mark


# --------------------------------------------------------------------------------------------
# Arbitrary items
# --------------------------------------------------------------------------------------------

TEXT = st.text(max_size=12)
MILLIS = st.integers(-(2**53), 2**53)
IDENTITIES = st.lists(st.builds(Identity, st.sampled_from(IDENTITY_KINDS), TEXT), max_size=3).map(
    tuple
)
IDS = st.lists(TEXT, max_size=3).map(tuple)
ITEMS: st.SearchStrategy[Parsed] = st.one_of(
    st.builds(
        Contact,
        at=MILLIS,
        channel=st.sampled_from(CHANNELS),
        conversation_id=TEXT,
        identities=IDENTITIES,
        subject=TEXT,
        body=TEXT,
        channel_message_id=TEXT,
        threading=st.none() | st.builds(EmailThreading, TEXT, IDS, IDS),
        call_status=TEXT,
        call_agent_id=TEXT,
        ref=TEXT,
    ),
    st.builds(
        AgentAction,
        at=MILLIS,
        type=st.sampled_from(["reply", "note", "status", "assign"]),
        conversation_id=TEXT,
        agent_id=TEXT,
        status=TEXT,
        public=st.booleans(),
        message_id=TEXT,
        ref=TEXT,
    ),
    st.builds(
        SurveyAnswer,
        at=MILLIS,
        conversation_id=TEXT,
        kind=st.sampled_from(["csat", "nps"]),
        score=st.integers(0, 10),
        ref=TEXT,
    ),
    st.builds(
        CrmUpsert,
        at=MILLIS,
        customer_id=TEXT,
        tier=st.sampled_from(TIERS),
        identities=IDENTITIES,
        mrr=st.none() | st.floats(allow_nan=False, allow_infinity=False),
        status=st.sampled_from(["active", "churned"]),
        ref=TEXT,
    ),
    st.builds(Ignored, at=MILLIS, source=TEXT, reason=TEXT, ref=TEXT),
    st.builds(DeadLetter, at=MILLIS, source=TEXT, reason=TEXT, record=TEXT, ref=TEXT),
)
ENTRIES = st.builds(
    Entry,
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    partitions=st.integers(1, 1000),
    at=MILLIS,
    sequence=st.integers(0, 2**62),
    ref=TEXT,
    record=TEXT,
    items=st.lists(ITEMS, max_size=4).map(tuple),
)
MARKS = st.builds(Mark, st.integers(0, 1000), st.integers(0, 2**62), st.integers(1, 1000), MILLIS)


@settings(max_examples=200, deadline=None)
@given(ENTRIES | MARKS)
def test_any_entry_or_mark_round_trips(message: Entry | Mark) -> None:
    assert decode_input(encode_input(message)) == message


# --------------------------------------------------------------------------------------------
# Unreadable messages
# --------------------------------------------------------------------------------------------

CONTACT = Contact(
    at=1_772_432_100_000,
    channel="email",
    conversation_id="",
    identities=(Identity("email", "ivan.petrov@example.ru"),),
    subject="Re: счёт",
    body="Подскажите",
    channel_message_id="reply-2.ivan@mail.example.ru",
    threading=EmailThreading("reply-2.ivan@mail.example.ru", ("a@b",), ("c@d",)),
    ref="raw-contacts/0/5",
)
VALID_ENTRY: dict[str, Any] = {
    "format": FORMAT,
    "entry": entry_to_json(Entry(0, 5, 2, CONTACT.at, 0, CONTACT.ref, "", (CONTACT,))),
}
VALID_MARK: dict[str, Any] = {"format": FORMAT, "mark": [0, 5, 2, 1_772_432_100_000]}


def _with(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> bytes:
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(changed, ensure_ascii=False).encode()


_DROP = object()
ITEM = ("entry", "items", 0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "unreadable desk-input message: JSONDecodeError", id="empty"),
        pytest.param(b"\xff\xfe\x00\x81garbage", "unreadable desk-input message", id="binary"),
        pytest.param(b"\x00\x02\x10avro", "unreadable desk-input message", id="avro-ish"),
        pytest.param(b"not json", "unreadable desk-input message: JSONDecodeError", id="text"),
        pytest.param(b"[1, 2]", "unreadable desk-input message", id="array"),
        pytest.param(b"null", "unreadable desk-input message", id="null"),
        pytest.param(b'"entry"', "unreadable desk-input message", id="string"),
        pytest.param(b"[" * 100_000, "unreadable desk-input message", id="nested-too-deep"),
        pytest.param(
            _with(VALID_MARK, ("format",), 2), "desk-input format 2, expected 1", id="format-2"
        ),
        pytest.param(
            _with(VALID_MARK, ("format",), 0), "desk-input format 0, expected 1", id="format-0"
        ),
        pytest.param(
            _with(VALID_ENTRY, ("format",), "1"),
            "desk-input format '1', expected 1",
            id="format-text",
        ),
        pytest.param(
            _with(VALID_ENTRY, ("format",), _DROP),
            "desk-input format None, expected 1",
            id="no-format",
        ),
        pytest.param(
            _with(VALID_ENTRY, ("entry",), _DROP),
            "unreadable desk-input message: KeyError",
            id="neither",
        ),
        pytest.param(
            _with(VALID_MARK, ("mark",), [0, 5, 2]),
            "unreadable desk-input message: ValueError",
            id="mark-short",
        ),
        pytest.param(
            _with(VALID_MARK, ("mark", 3), "soon"),
            "unreadable desk-input message: ValueError",
            id="mark-text",
        ),
        pytest.param(
            _with(VALID_MARK, ("mark", 3), None),
            "unreadable desk-input message: TypeError",
            id="mark-null",
        ),
        pytest.param(
            b'{"format": 1, "mark": [0, 5, 2, Infinity]}',
            "unreadable desk-input message",
            id="mark-infinity",
        ),
        pytest.param(
            b'{"format": 1, "mark": [0, 5, 2, 1e400]}',
            "unreadable desk-input message",
            id="mark-overflow",
        ),
        pytest.param(
            b'{"format": 1, "mark": [0, 5, 2, NaN]}', "unreadable desk-input message", id="mark-nan"
        ),
        pytest.param(
            _with(VALID_ENTRY, ("entry", "p"), _DROP),
            "unreadable desk-input message: KeyError",
            id="entry-no-partition",
        ),
        pytest.param(
            _with(VALID_ENTRY, ("entry", "at"), [1]),
            "unreadable desk-input message: TypeError",
            id="entry-at-array",
        ),
        pytest.param(
            _with(VALID_ENTRY, ("entry", "items"), 5),
            "unreadable desk-input message: TypeError",
            id="items-number",
        ),
        pytest.param(
            _with(VALID_ENTRY, ITEM, [1, 2]), "unreadable desk-input message", id="item-array"
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "@item"), "Escalation"),
            "unknown parsed item type 'Escalation'",
            id="unknown-type",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "@item"), "RawRecord"),
            "unknown parsed item type 'RawRecord'",
            id="not-an-item-type",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "@item"), _DROP),
            "unreadable desk-input message: KeyError",
            id="untyped-item",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "@item"), ["Contact"]),
            "unreadable desk-input message: TypeError",
            id="item-type-array",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "body"), _DROP),
            "unreadable desk-input message: TypeError",
            id="item-missing-field",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "urgent"), True),
            "unreadable desk-input message: TypeError",
            id="item-extra-field",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "identities"), [["email"]]),
            "unreadable desk-input message: ValueError",
            id="identity-not-a-pair",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "identities"), 3),
            "unreadable desk-input message: TypeError",
            id="identities-number",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "threading"), ["id", []]),
            "unreadable desk-input message: ValueError",
            id="threading-short",
        ),
        pytest.param(
            _with(VALID_ENTRY, (*ITEM, "threading"), {"message_id": "x"}),
            "unreadable desk-input message: ValueError",
            id="threading-object",
        ),
    ],
)
def test_an_unreadable_message_raises_intake_error_naming_the_problem(
    data: bytes, reason: str
) -> None:
    with pytest.raises(IntakeError, match=re.escape(reason)):
        decode_input(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_intake_error_or_a_message(data: bytes) -> None:
    try:
        decoded = decode_input(data)
    except IntakeError:
        return
    assert isinstance(decoded, Entry | Mark)


ODD_NUMBERS = st.sampled_from([float("inf"), float("-inf"), float("nan"), 0.5, -1, 2**64, True])
"""Values JSON can carry where an integer belongs, each a way ``int()`` can fail or mislead."""
JSON_VALUES = ODD_NUMBERS | st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["Contact", "DeadLetter", "email", "@item"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
PATHS: list[tuple[dict[str, Any], tuple[str | int, ...]]] = [
    (VALID_MARK, ("format",)),
    (VALID_MARK, ("mark",)),
    *[(VALID_MARK, ("mark", i)) for i in range(4)],
    (VALID_ENTRY, ("entry",)),
    *[(VALID_ENTRY, ("entry", key)) for key in VALID_ENTRY["entry"]],
    (VALID_ENTRY, ITEM),
    *[(VALID_ENTRY, (*ITEM, key)) for key in VALID_ENTRY["entry"]["items"][0]],
    (VALID_ENTRY, (*ITEM, "identities", 0)),
    (VALID_ENTRY, (*ITEM, "identities", 0, 1)),
    *[(VALID_ENTRY, (*ITEM, "threading", i)) for i in range(3)],
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_a_corrupted_field_gives_intake_error_or_a_message(
    where: tuple[dict[str, Any], tuple[str | int, ...]], value: Any
) -> None:
    document, path = where
    try:
        decoded = decode_input(_with(document, path, value))
    except IntakeError:
        return
    assert isinstance(decoded, Entry | Mark)


def test_a_large_intake_batch_is_split_into_desk_input_messages_below_the_limit() -> None:
    from streams.intake import decode_inputs, desk_input_messages, encode_entries

    entries = [_entry(name) for name in RECORDS] * 20
    limit = 6_000
    values = desk_input_messages(entries, limit)

    assert len(values) > 1
    assert all(len(value) <= limit for value in values)
    assert [m for value in values for m in decode_inputs(value)] == entries
    assert desk_input_messages(entries) == [encode_entries(entries)]  # 512 KiB: one message


def test_a_batch_becomes_the_desk_input_messages_of_its_entries_in_order() -> None:
    """``Intake.batch``, what the intake agent forwards for the raw messages it took together:
    the entries of every message, in the order given, as ``desk_input_messages`` splits them,
    and the count taken from each raw partition."""
    from streams.intake import desk_input_messages

    intake = Intake(STAGE)
    raws = []
    for offset, name in enumerate(n for n in RECORDS if n != "bad-json-dead-letter"):
        raw = parse_envelope(RECORDS[name], "publish", STAGE.redact)
        assert isinstance(raw, RawRecord)
        data = encode_raw(raw, connector="test", sequence=offset)
        raws.append((data, offset % 3, 100 + offset, 3, 1_757_000_000_000))
    raws.append((b"\x00not avro", 2, 999, 3, 1_757_000_000_000))

    batch = intake.batch(raws)

    entries = [
        intake.entry(value, partition=p, offset=o, partitions=n, timestamp=t)
        for value, p, o, n, t in raws
    ]
    assert batch.messages == desk_input_messages(entries)
    decoded = [entry for message in batch.messages for entry in decode_inputs(message)]
    assert [(e.partition, e.offset) for e in decoded] == [(p, o) for _, p, o, _, _ in raws]
    assert batch.lanes == {p: sum(1 for _, q, _, _, _ in raws if q == p) for p in (0, 1, 2)}
    assert intake.batch([]).messages == [] and intake.batch([]).lanes == {}

"""The JSON Lines envelope ``{at, source, payload}`` and the dispatch: every record that cannot
be understood becomes exactly one dead letter, and nothing ever raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.model import SOURCES, Contact, DeadLetter, Identity, RawRecord, SurveyAnswer
from processors.parsing import PARSERS, UNKNOWN_AT, load_json_text, parse_envelope


def test_every_source_of_the_contract_has_a_parser() -> None:
    assert set(PARSERS) == set(SOURCES)


def test_parse_envelope_reads_the_envelope_and_leaves_the_payload_alone(kit) -> None:
    payload = {"conversation_id": "chat:s1", "kind": "nps", "score": 99}
    text = kit.line("survey", payload)

    assert parse_envelope(text + "\r\n", kit.ref, kit.mask) == RawRecord(
        at=kit.at_ms, source="survey", payload=payload, ref=kit.ref, text=text
    )


def test_parse_envelope_dead_letter_of_an_unreadable_instant(kit) -> None:
    text = '{"at": "2026-03-02 09:15", "source": "chat", "payload": {}}'

    assert parse_envelope(text, kit.ref, kit.mask) == DeadLetter(
        at=UNKNOWN_AT,
        source="",
        reason="field at: '2026-03-02 09:15' is not an rfc 3339 timestamp "
        "(yyyy-mm-ddThh:mm:ss±hh:mm)",
        record=text,
        ref=kit.ref,
    )


def test_trailing_newline_is_not_part_of_the_record(kit) -> None:
    text = kit.line("survey", {"conversation_id": "chat:s1", "kind": "nps", "score": 9})

    assert kit.parse(text + "\n") == [
        SurveyAnswer(at=kit.at_ms, conversation_id="chat:s1", kind="nps", score=9, ref=kit.ref)
    ]


def test_at_in_utc_and_with_fraction(kit) -> None:
    payload = {"conversation_id": "chat:s1", "kind": "nps", "score": 9}

    (utc,) = kit.parse(kit.line("survey", payload, at="2026-03-02T06:15:00Z"))
    (fraction,) = kit.parse(kit.line("survey", payload, at="2026-03-02T09:15:00.250999+03:00"))

    assert isinstance(utc, SurveyAnswer)
    assert isinstance(fraction, SurveyAnswer)
    assert (utc.at, fraction.at) == (kit.at_ms, kit.at_ms + 250)


@pytest.mark.parametrize(
    ("text", "at", "source", "reason"),
    [
        ('{"at": "2026-03-02T09:15:00+03:00", "source": "chat"', UNKNOWN_AT, "", None),
        ("", UNKNOWN_AT, "", "invalid json: Expecting value at column 1"),
        ('["telegram", {}]', UNKNOWN_AT, "", "record must be a json object, got array"),
        ('{"source": "chat", "payload": {}}', UNKNOWN_AT, "", "missing field at"),
        (
            '{"at": 1772432100, "source": "chat", "payload": {}}',
            UNKNOWN_AT,
            "",
            "field at must be a string, got number",
        ),
        (
            '{"at": "2026-03-02T09:15:00", "source": "chat", "payload": {}}',
            UNKNOWN_AT,
            "",
            "field at: '2026-03-02T09:15:00' has no utc offset; rfc 3339 requires one "
            "(e.g. Z or +03:00)",
        ),
        (
            '{"at": "yesterday", "source": "chat", "payload": {}}',
            UNKNOWN_AT,
            "",
            "field at: 'yesterday' is not an rfc 3339 timestamp (yyyy-mm-ddThh:mm:ss±hh:mm)",
        ),
        (
            '{"at": "2026-03-02T09:15:00+03:00", "payload": {}}',
            1_772_432_100_000,
            "",
            "missing field source",
        ),
        (
            '{"at": "2026-03-02T09:15:00+03:00", "source": "fax", "payload": {}}',
            1_772_432_100_000,
            "",
            "unknown source 'fax'",
        ),
        (
            '{"at": "2026-03-02T09:15:00+03:00", "source": "chat"}',
            1_772_432_100_000,
            "chat",
            "missing field payload",
        ),
        (
            '{"at": "2026-03-02T09:15:00+03:00", "source": "survey", '
            '"payload": {"conversation_id": "c", "kind": "csat", "score": NaN}}',
            UNKNOWN_AT,
            "",
            "invalid json: NaN is not a json value",
        ),
    ],
)
def test_unreadable_envelopes_are_dead_letters(kit, text, at, source, reason) -> None:
    (out,) = kit.parse(text)

    assert isinstance(out, DeadLetter)
    assert (out.at, out.source, out.record, out.ref) == (at, source, kit.mask(text), kit.ref)
    if reason is None:
        assert out.reason.startswith("invalid json: ")
    else:
        assert out.reason == reason


def test_dead_letter_record_is_the_masked_line(kit) -> None:
    text = kit.line(
        "form",
        {
            "submission_id": "f1",
            "form_id": "x",
            "email": "ivan@example.ru",
            "phone": "+79161234567",
        },
    )

    (out,) = kit.parse(text)

    assert isinstance(out, DeadLetter)
    assert out.reason == "missing field payload.message"
    assert "ivan@example.ru" not in out.record and "79161234567" not in out.record
    assert out.record == kit.mask(text)


def test_parse_record_dispatches_a_decoded_record(kit) -> None:
    record = RawRecord(
        at=kit.at_ms,
        source="chat",
        payload={"session_id": "s1", "message_id": "m1", "visitor": {"id": "v1"}, "text": "hi"},
        ref="raw-contacts/3/1042",
    )

    assert kit.parse_record(record) == [
        Contact(
            at=kit.at_ms,
            channel="chat",
            conversation_id="chat:s1",
            identities=(),
            subject="",
            body="hi",
            channel_message_id="s1:m1",
            ref="raw-contacts/3/1042",
        )
    ]


def test_parse_record_without_text_dead_letters_the_reencoded_envelope(kit) -> None:
    record = RawRecord(at=kit.at_ms, source="phone", payload={"caller": "+79161234567"}, ref="r/1")

    (out,) = kit.parse_record(record)

    assert isinstance(out, DeadLetter)
    assert out.reason == "missing field payload.call_id"
    assert json.loads(out.record.replace("<digits>", "0")) == {
        "at": "2026-03-02T06:15:00.000Z",
        "source": "phone",
        "payload": {"caller": "+0"},
    }


def test_parse_record_with_unknown_source(kit) -> None:
    record = RawRecord(at=kit.at_ms, source="icq", payload={}, ref="r/2", text="{}")

    assert kit.parse_record(record) == [
        DeadLetter(at=kit.at_ms, source="", reason="unknown source 'icq'", record="{}", ref="r/2")
    ]


def test_identity_values_keep_clear_text_in_contacts(kit) -> None:
    # Masking of stored text happens later in the pipeline; the parser must not do it.
    payload = {
        "session_id": "s1",
        "message_id": "m1",
        "visitor": {"id": "v1", "email": "ivan@example.ru"},
        "text": "my phone is +79161234567",
    }

    (out,) = kit.parse_payload("chat", payload)

    assert isinstance(out, Contact)
    assert out.identities == (Identity("email", "ivan@example.ru"),)
    assert out.body == "my phone is +79161234567"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)

# Keys the parsers look for, so generated payloads reach past the first check.
_keys = st.sampled_from(
    [
        "update_id", "message", "chat", "id", "from", "is_bot", "text", "object", "entry",
        "changes", "value", "messages", "type", "session_id", "message_id", "visitor",
        "submission_id", "form_id", "call_id", "caller", "callee", "status", "started_at",
        "duration_s", "conversation_id", "agent_id", "kind", "score", "customer_id", "tier",
        "identities", "post_id", "post_owner_id", "from_id", "peer_id",
    ]
)  # fmt: skip
_payloads = st.recursive(
    _json,
    lambda children: st.dictionaries(_keys, children, max_size=8) | st.lists(children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(SOURCES), payload=_payloads)
def test_no_payload_makes_a_parser_raise(kit, source: str, payload: object) -> None:
    out = kit.parse_payload(source, payload)

    assert out
    for item in out:
        if isinstance(item, DeadLetter):
            # Ordinary garbage gets a precise reason, not the last-resort catch-all.
            assert "could not be parsed" not in item.reason


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_no_line_makes_parse_line_raise(kit, text: str) -> None:
    assert len(kit.parse(text)) == 1


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=300))
def test_no_mail_text_makes_the_email_parser_raise(kit, raw: str) -> None:
    head = "From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n"
    for payload in (raw, head + raw):
        (out,) = kit.parse_payload("email", payload)
        assert not (isinstance(out, DeadLetter) and "could not be parsed" in out.reason)


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "1899-12-31T23:59:59.999Z",
        "2300-01-01T00:00:00Z",
        "2299-12-31T23:59:59-00:01",
    ],
)
def test_an_instant_the_warehouse_cannot_store_is_refused_with_the_reason(kit, at: str) -> None:
    chat = {"session_id": "s", "message_id": "m", "visitor": {"id": "v"}, "text": "hi"}
    (out,) = kit.parse(kit.line("chat", chat, at=at))

    assert isinstance(out, DeadLetter)
    assert out.at == UNKNOWN_AT
    assert "outside the instants the warehouse stores (1900-01-01 to 2299-12-31 UTC)" in out.reason


@pytest.mark.parametrize("at", ["1900-01-01T00:00:00Z", "2299-12-31T23:59:59.999Z"])
def test_the_first_and_last_storable_instants_are_read(kit, at: str) -> None:
    chat = {"session_id": "s", "message_id": "m", "visitor": {"id": "v"}, "text": "hi"}
    (out,) = kit.parse(kit.line("chat", chat, at=at))

    assert isinstance(out, Contact)


def test_a_lone_surrogate_never_reaches_a_dead_letter_or_a_hash(kit) -> None:
    # The example: half a surrogate pair escaped in an unknown source's record.
    (out,) = kit.parse(
        r'{"at":"2026-03-02T10:00:00Z","source":"instagram","payload":{"text":"\ud800"}}'
    )
    assert isinstance(out, DeadLetter)
    out.record.encode("utf-8")  # storable
    (chat,) = kit.parse(
        r'{"at":"2026-03-02T10:00:00Z","source":"chat","payload":{"session_id":"s",'
        r'"message_id":"m","visitor":{"id":"v","email":"\udc00@x.org"},"text":"\ud83d"}}'
    )
    assert isinstance(chat, Contact) and chat.body == "\ufffd"


def test_a_dead_letter_built_with_a_lone_surrogate_is_made_storable() -> None:
    letter = DeadLetter(0, "chat", "bad \ud800", '{"x": "\udfff"}', "ref\ud800")

    assert (letter.reason, letter.record, letter.ref) == (
        "bad \ufffd",
        '{"x": "\ufffd"}',
        "ref\ufffd",
    )


@pytest.mark.parametrize(
    "line",
    [
        # an envelope of strings only (as an e-mail's) takes the shortcut when they are ASCII
        r'{"at": "2026-03-02T10:00:00+03:00", "source": "email", "payload": "From: a@b.c\r\n\r\n\ud83d"}',
        r'{"at": "2026-03-02T10:00:00+03:00", "source": "email", "payload": "\udc00x", "\ud800": "k"}',
        r'{"at": "2026-03-02T10:00:00+03:00", "source": "email", "payload": "é \udfff"}',
    ],
)
def test_a_lone_surrogate_escape_in_an_envelope_of_strings_becomes_a_replacement(line: str) -> None:
    value = load_json_text(line)
    assert "\ufffd" in value["payload"]
    assert all(not 0xD800 <= ord(c) <= 0xDFFF for key in value for c in key + value[key])


def test_an_envelope_of_ascii_strings_is_read_as_json_reads_it() -> None:
    line = r'{"at": "2026-03-02T10:00:00+03:00", "source": "email", "payload": "a\r\n\u0041"}'
    assert load_json_text(line) == json.loads(line)

"""The project's own contact sources: web chat, feedback form and call records."""

from __future__ import annotations

import pytest

from processors.model import Contact, DeadLetter, Identity

CHAT = {
    "session_id": "s-8f41c2",
    "message_id": "m-0003",
    "visitor": {
        "id": "v-77a1",
        "email": " Olga.K@Example.RU ",
        "phone": "+7 (916) 555-01-02",
        "name": "Ольга",
    },
    "text": "Здравствуйте! Сайт выдаёт ошибку 500 при оплате",
    "page_url": "https://shop.example.com/checkout",
}

FORM = {
    "submission_id": "f-20260302-0042",
    "form_id": "contact-us",
    "email": "petr@example.org",
    "phone": "8 800 555-35-35",
    "name": "Пётр",
    "topic": "Возврат",
    "message": "Прошу вернуть деньги за заказ 88",
    "page_url": "https://shop.example.com/help",
}

CALL = {
    "call_id": "call-5e1f9a",
    "caller": "+7 916 123-45-67",
    "callee": "+7 495 000-00-00",
    "status": "answered",
    "started_at": "2026-03-02T09:14:02+03:00",
    "duration_s": 184,
    "agent_id": "p.petrov",
    "transcript": "Клиент спрашивает про счёт 4417",
}


def test_chat_message_with_email_and_phone(kit) -> None:
    assert kit.parse_payload("chat", CHAT) == [
        Contact(
            at=kit.at_ms,
            channel="chat",
            conversation_id="chat:s-8f41c2",
            identities=(
                Identity("email", "olga.k@example.ru"),
                Identity("phone", "+79165550102"),
            ),
            subject="",
            body="Здравствуйте! Сайт выдаёт ошибку 500 при оплате",
            channel_message_id="s-8f41c2:m-0003",
            ref=kit.ref,
        )
    ]


def test_anonymous_chat_visitor_has_no_identity(kit) -> None:
    payload = {**CHAT, "visitor": {"id": "v-77a1"}}

    (out,) = kit.parse_payload("chat", payload)

    assert isinstance(out, Contact)
    assert out.identities == ()


def test_chat_phone_without_digits_is_left_out_not_dead_lettered(kit) -> None:
    payload = {**CHAT, "visitor": {"id": "v-77a1", "phone": "n/a", "email": None}}

    (out,) = kit.parse_payload("chat", payload)

    assert isinstance(out, Contact)
    assert out.identities == ()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({**CHAT, "text": 500}, "field payload.text must be a string, got number"),
        ({k: v for k, v in CHAT.items() if k != "visitor"}, "missing field payload.visitor"),
        ({**CHAT, "visitor": {"email": "a@b.c"}}, "missing field payload.visitor.id"),
        ({**CHAT, "session_id": ""}, "field payload.session_id must not be empty"),
        ({**CHAT, "visitor": ["v-77a1"]}, "field payload.visitor must be an object, got array"),
    ],
)
def test_malformed_chat_is_a_dead_letter(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("chat", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_form_submission_uses_topic_as_subject(kit) -> None:
    assert kit.parse_payload("form", FORM) == [
        Contact(
            at=kit.at_ms,
            channel="form",
            conversation_id="form:f-20260302-0042",
            identities=(Identity("email", "petr@example.org"), Identity("phone", "+88005553535")),
            subject="Возврат",
            body="Прошу вернуть деньги за заказ 88",
            channel_message_id="f-20260302-0042",
            ref=kit.ref,
        )
    ]


def test_form_without_topic_or_contacts(kit) -> None:
    payload = {"submission_id": 42, "form_id": "contact-us", "message": "Hello"}

    assert kit.parse_payload("form", payload) == [
        Contact(
            at=kit.at_ms,
            channel="form",
            conversation_id="form:42",
            identities=(),
            subject="",
            body="Hello",
            channel_message_id="42",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({k: v for k, v in FORM.items() if k != "message"}, "missing field payload.message"),
        ({k: v for k, v in FORM.items() if k != "form_id"}, "missing field payload.form_id"),
        ({**FORM, "topic": ["a"]}, "field payload.topic must be a string, got array"),
        ({**FORM, "email": 1}, "field payload.email must be a string, got number"),
    ],
)
def test_malformed_form_is_a_dead_letter(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("form", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_answered_call_names_its_agent_and_continues_the_callers_conversation(kit) -> None:
    assert kit.parse_payload("phone", CALL) == [
        Contact(
            at=kit.at_ms,
            channel="phone",
            conversation_id=f"phone:{kit.h('+79161234567')}",
            identities=(Identity("phone", "+79161234567"),),
            subject="",
            body="Клиент спрашивает про счёт 4417",
            channel_message_id="call-5e1f9a",
            call_status="answered",
            call_agent_id="p.petrov",
            ref=kit.ref,
        )
    ]


def test_missed_call_from_an_international_00_number_without_transcript(kit) -> None:
    payload = {
        **{k: v for k, v in CALL.items() if k not in ("agent_id", "transcript")},
        "caller": "0044 20 7946 0958",
        "status": "missed",
        "duration_s": 0,
    }

    assert kit.parse_payload("phone", payload) == [
        Contact(
            at=kit.at_ms,
            channel="phone",
            conversation_id=f"phone:{kit.h('+442079460958')}",
            identities=(Identity("phone", "+442079460958"),),
            subject="",
            body="",
            channel_message_id="call-5e1f9a",
            call_status="missed",
            call_agent_id="",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({k: v for k, v in CALL.items() if k != "agent_id"}, "answered call without agent_id"),
        ({**CALL, "agent_id": " "}, "answered call without agent_id"),
        ({**CALL, "status": "busy"}, "unknown call status 'busy' in payload.status"),
        ({**CALL, "caller": "anonymous"}, "field payload.caller holds no digits"),
        ({k: v for k, v in CALL.items() if k != "caller"}, "missing field payload.caller"),
        ({k: v for k, v in CALL.items() if k != "callee"}, "missing field payload.callee"),
        ({k: v for k, v in CALL.items() if k != "started_at"}, "missing field payload.started_at"),
        (
            {**CALL, "started_at": True},
            "field payload.started_at must be a string or a number, got boolean",
        ),
        (
            {**CALL, "started_at": {"at": 1}},
            "field payload.started_at must be a string or a number, got object",
        ),
        ({**CALL, "started_at": " "}, "field payload.started_at must not be empty"),
        ({**CALL, "duration_s": "184"}, "field payload.duration_s must be a number, got string"),
        ({**CALL, "duration_s": -1}, "field payload.duration_s must not be negative"),
        ({**CALL, "transcript": 7}, "field payload.transcript must be a string, got number"),
    ],
)
def test_malformed_call_is_a_dead_letter(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("phone", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_call_started_at_as_epoch_seconds_is_accepted(kit) -> None:
    # The contract does not fix its format; some telephony systems send epoch seconds.
    (out,) = kit.parse_payload("phone", {**CALL, "started_at": 1772432042})

    assert isinstance(out, Contact)

"""Telegram Bot API updates: which are contacts, their conversation, identity and body."""

from __future__ import annotations

import copy

import pytest

from processors.model import Contact, DeadLetter, Identity, Ignored


def test_text_message_from_a_person_is_a_contact_of_its_chat(kit) -> None:
    out = kit.parse_payload("telegram", kit.json("telegram_message_text.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="telegram",
            conversation_id=f"telegram:{kit.h('508812345')}",
            identities=(Identity("telegram", "508812345"),),
            subject="",
            body="/start Здравствуйте! Не проходит оплата по счёту, см. https://pay.example.com/i/4417",
            channel_message_id="508812345:4021",
            ref=kit.ref,
        )
    ]


def test_group_photo_takes_its_caption_and_the_negative_chat_id(kit) -> None:
    out = kit.parse_payload("telegram", kit.json("telegram_group_photo_caption.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="telegram",
            conversation_id=f"telegram:{kit.h('-1001987654321')}",
            identities=(Identity("telegram", "6011223344"),),
            subject="",
            body="Screenshot: error 500 on checkout",
            channel_message_id="-1001987654321:77",
            ref=kit.ref,
        )
    ]


def test_voice_note_without_caption_is_a_contact_with_empty_body(kit) -> None:
    out = kit.parse_payload("telegram", kit.json("telegram_voice.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="telegram",
            conversation_id=f"telegram:{kit.h('508812345')}",
            identities=(Identity("telegram", "508812345"),),
            subject="",
            body="",
            channel_message_id="508812345:4022",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("telegram_edited_message.json", "edited_message"),
        ("telegram_callback_query.json", "callback_query"),
        ("telegram_my_chat_member.json", "my_chat_member"),
    ],
)
def test_updates_other_than_messages_are_ignored(kit, fixture: str, kind: str) -> None:
    out = kit.parse_payload("telegram", kit.json(fixture))

    assert out == [
        Ignored(
            at=kit.at_ms,
            source="telegram",
            reason=f"telegram update {kind} is not a customer message",
            ref=kit.ref,
        )
    ]


def test_channel_post_is_ignored(kit) -> None:
    update = {
        "update_id": 734512896,
        "channel_post": {
            "message_id": 12,
            "sender_chat": {"id": -1002233445566, "title": "Acme news", "type": "channel"},
            "chat": {"id": -1002233445566, "title": "Acme news", "type": "channel"},
            "date": 1772432400,
            "text": "Плановые работы в субботу",
        },
    }

    assert kit.parse_payload("telegram", update) == [
        Ignored(
            at=kit.at_ms,
            source="telegram",
            reason="telegram update channel_post is not a customer message",
            ref=kit.ref,
        )
    ]


def test_message_from_a_bot_is_ignored(kit) -> None:
    update = kit.json("telegram_message_text.json")
    update["message"]["from"] = {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }

    assert kit.parse_payload("telegram", update) == [
        Ignored(at=kit.at_ms, source="telegram", reason="telegram message from a bot", ref=kit.ref)
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (("update_id",), "missing field payload.update_id"),
        (("message", "chat"), "missing field payload.message.chat"),
        (("message", "chat", "id"), "missing field payload.message.chat.id"),
        (("message", "from"), "missing field payload.message.from"),
        (("message", "from", "id"), "missing field payload.message.from.id"),
        (("message", "from", "is_bot"), "missing field payload.message.from.is_bot"),
        (("message", "message_id"), "missing field payload.message.message_id"),
    ],
)
def test_a_message_missing_what_it_needs_is_a_dead_letter(kit, path, reason: str) -> None:
    update = kit.json("telegram_message_text.json")
    parent = update
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    text = kit.line("telegram", update)

    assert kit.parse(text) == [
        DeadLetter(
            at=kit.at_ms, source="telegram", reason=reason, record=kit.mask(text), ref=kit.ref
        )
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("text", 42), "field payload.message.text must be a string, got number"),
        (("caption", ["x"]), "field payload.message.caption must be a string, got array"),
        (("chat", "508812345"), "field payload.message.chat must be an object, got string"),
    ],
)
def test_wrong_types_are_dead_letters(kit, change, reason: str) -> None:
    update = copy.deepcopy(kit.json("telegram_message_text.json"))
    key, value = change
    update["message"][key] = value

    (out,) = kit.parse_payload("telegram", update)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_chat_id_as_text_or_boolean_is_a_dead_letter(kit) -> None:
    update = kit.json("telegram_message_text.json")
    update["message"]["chat"]["id"] = "508812345"
    (as_text,) = kit.parse_payload("telegram", update)
    update["message"]["from"]["id"] = True
    update["message"]["chat"]["id"] = 508812345
    (as_bool,) = kit.parse_payload("telegram", update)

    assert isinstance(as_text, DeadLetter)
    assert as_text.reason == "field payload.message.chat.id must be an integer, got string"
    assert isinstance(as_bool, DeadLetter)
    assert as_bool.reason == "field payload.message.from.id must be an integer, got boolean"


def test_payload_that_is_not_an_update_object_is_a_dead_letter(kit) -> None:
    (out,) = kit.parse_payload("telegram", [1, 2])

    assert isinstance(out, DeadLetter)
    assert out.reason == "field payload must be an object, got array"

"""WhatsApp Cloud API webhooks: one contact per message in body order, statuses ignored."""

from __future__ import annotations

import pytest

from processors.model import Contact, DeadLetter, Identity, Ignored

MARIA = "79161234567"
JOHN = "14155550123"


def _contact(kit, sender: str, wamid: str, body: str) -> Contact:
    return Contact(
        at=kit.at_ms,
        channel="whatsapp",
        conversation_id=f"whatsapp:{kit.h(sender)}",
        identities=(Identity("whatsapp", sender), Identity("phone", "+" + sender)),
        subject="",
        body=body,
        channel_message_id=wamid,
        ref=kit.ref,
    )


def test_text_message_is_a_contact_tried_as_wa_id_then_phone(kit) -> None:
    out = kit.parse_payload("whatsapp", kit.json("whatsapp_text.json"))

    assert out == [
        _contact(
            kit,
            MARIA,
            "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=",
            "Добрый день! Где мой возврат за заказ 88?",
        )
    ]


def test_several_messages_across_entries_come_out_in_order_and_statuses_are_skipped(kit) -> None:
    out = kit.parse_payload("whatsapp", kit.json("whatsapp_several_with_statuses.json"))

    assert out == [
        _contact(
            kit, MARIA, "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ1MDAxQUFBQUFBQUFBQUFBAA==", "Фото чека"
        ),
        _contact(
            kit,
            JOHN,
            "wamid.HBgLMTQxNTU1NTAxMjMVAgASGBQ1MDAyQkJCQkJCQkJCQkJCAA==",
            "Cancel my order",
        ),
        _contact(kit, MARIA, "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ1MDAzQ0NDQ0NDQ0NDQ0NDAA==", ""),
        _contact(
            kit,
            MARIA,
            "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ1MDA0RERERERERERERERDAA==",
            "Пункт выдачи Acme\nТверская ул., 7, Москва",
        ),
        _contact(
            kit,
            MARIA,
            "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ1MDA1RUVFRUVFRUVFRUVFAA==",
            "Договор, стр. 2",
        ),
    ]


def test_body_with_only_statuses_is_one_ignored(kit) -> None:
    out = kit.parse_payload("whatsapp", kit.json("whatsapp_statuses_only.json"))

    assert out == [
        Ignored(
            at=kit.at_ms, source="whatsapp", reason="whatsapp body holds only statuses", ref=kit.ref
        )
    ]


def _single(kit, message: dict[str, object]) -> list[object]:
    body = kit.json("whatsapp_text.json")
    body["entry"][0]["changes"][0]["value"]["messages"] = [message]
    return kit.parse_payload("whatsapp", body)


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {
                        "id": "priority_express",
                        "title": "Priority Mail Express",
                        "description": "Next Day to 2 Days",
                    },
                },
            },
            "Priority Mail Express",
        ),
        (
            {"type": "button", "button": {"payload": "STOP_PROMOS", "text": "Stop promotions"}},
            "Stop promotions",
        ),
        (
            {
                "type": "video",
                "video": {"mime_type": "video/mp4", "sha256": "ab12", "id": "1234567890"},
            },
            "",
        ),
        (
            {
                "type": "sticker",
                "sticker": {
                    "mime_type": "image/webp",
                    "sha256": "cd34",
                    "id": "55",
                    "animated": False,
                },
            },
            "",
        ),
        ({"type": "location", "location": {"latitude": 55.75, "longitude": 37.61}}, ""),
        (
            {
                "type": "unsupported",
                "errors": [{"code": 131051, "title": "Message type unknown"}],
            },
            "",
        ),
    ],
)
def test_body_by_message_type(kit, message: dict[str, object], body: str) -> None:
    wamid = "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ5OTk5OTk5OTk5OTk5OTk5AA=="
    out = _single(kit, {"from": MARIA, "id": wamid, "timestamp": "1772432406", **message})

    assert out == [_contact(kit, MARIA, wamid, body)]


def test_reaction_is_ignored_not_a_contact(kit) -> None:
    out = _single(
        kit,
        {
            "from": MARIA,
            "id": "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQ3Nzc3Nzc3Nzc3Nzc3Nzc3AA==",
            "timestamp": "1772432407",
            "type": "reaction",
            "reaction": {"message_id": "wamid.HBgLreply", "emoji": "👍"},
        },
    )

    assert out == [
        Ignored(
            at=kit.at_ms,
            source="whatsapp",
            reason="whatsapp reaction message is not a customer contact",
            ref=kit.ref,
        )
    ]


def test_object_other_than_whatsapp_business_account_is_a_dead_letter(kit) -> None:
    body = kit.json("whatsapp_text.json")
    body["object"] = "page"
    text = kit.line("whatsapp", body)

    assert kit.parse(text) == [
        DeadLetter(
            at=kit.at_ms,
            source="whatsapp",
            reason="field payload.object must be 'whatsapp_business_account', got 'page'",
            record=kit.mask(text),
            ref=kit.ref,
        )
    ]
    assert MARIA not in kit.mask(text)  # the stored record is masked


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda b: b.pop("entry"), "missing field payload.entry"),
        (lambda b: b["entry"][0].pop("changes"), "missing field payload.entry[0].changes"),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].pop("from"),
            "missing field payload.entry[0].changes[0].value.messages[0].from: "
            "a message without its sender's wa_id has no conversation",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].pop("id"),
            "missing field payload.entry[0].changes[0].value.messages[0].id",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0]["text"].pop("body"),
            "missing field payload.entry[0].changes[0].value.messages[0].text.body",
        ),
        (
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].update(
                {"from": 79161234567}
            ),
            "field payload.entry[0].changes[0].value.messages[0].from must be a string, got number",
        ),
        (lambda b: b.update({"object": None}), "missing field payload.object"),
    ],
)
def test_malformed_bodies_are_dead_letters_naming_the_path(kit, edit, reason: str) -> None:
    body = kit.json("whatsapp_text.json")
    edit(body)

    (out,) = kit.parse_payload("whatsapp", body)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_interactive_message_without_its_object_and_with_errors_is_a_contact_without_text(
    kit,
) -> None:
    # Seen in captures: Meta could not render the interactive message (131000 "Unsupported
    # webhook payload"); the customer did write, so the ticket opens with an empty text.
    error = {
        "code": 131000,
        "title": "Something went wrong",
        "message": "Something went wrong",
        "error_data": {"details": "Unsupported webhook payload"},
    }
    body = kit.json("whatsapp_text.json")
    value = body["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    del message["text"]
    message.update(type="interactive", errors=[error])
    value["errors"] = [error]

    (out,) = kit.parse_payload("whatsapp", body)

    assert isinstance(out, Contact)
    assert (out.body, out.conversation_id) == ("", f"whatsapp:{kit.h(message['from'])}")

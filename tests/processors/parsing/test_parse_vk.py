"""VK Callback API events: message_new (5.199 and the legacy flat shape), wall_reply_new,
and the event types that are acknowledged and ignored."""

from __future__ import annotations

import pytest

from processors.model import Contact, DeadLetter, Identity, Ignored


def test_message_new_5_199_with_client_info_is_a_dm_contact(kit) -> None:
    out = kit.parse_payload("vk", kit.json("vk_message_new.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="vk",
            conversation_id=f"vk:dm:{kit.h('123456789')}",
            identities=(Identity("vk", "123456789"),),
            subject="",
            body="Здравствуйте, не могу войти в личный кабинет — пишет «неверный пароль»",
            channel_message_id="dm:123456789:311",
            ref=kit.ref,
        )
    ]


def test_legacy_message_new_where_object_is_the_message(kit) -> None:
    out = kit.parse_payload("vk", kit.json("vk_message_new_legacy.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="vk",
            conversation_id=f"vk:dm:{kit.h('123456789')}",
            identities=(Identity("vk", "123456789"),),
            subject="",
            body="Добрый вечер! Заказ не пришёл",
            channel_message_id="dm:123456789:97",
            ref=kit.ref,
        )
    ]


def test_message_without_conversation_message_id_falls_back_to_id(kit) -> None:
    event = kit.json("vk_message_new.json")
    del event["object"]["message"]["conversation_message_id"]

    (out,) = kit.parse_payload("vk", event)

    assert isinstance(out, Contact)
    assert out.channel_message_id == "dm:123456789:5821"


def test_wall_reply_under_a_community_post_keeps_the_negative_owner(kit) -> None:
    out = kit.parse_payload("vk", kit.json("vk_wall_reply_new.json"))

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="vk",
            conversation_id=f"vk:wall:-218765432_1375:{kit.h('987654321')}",
            identities=(Identity("vk", "987654321"),),
            subject="",
            body="У меня тоже не работает оплата с утра, ошибка 500",
            channel_message_id="wall:-218765432_1375:4470",
            ref=kit.ref,
        )
    ]


def test_wall_reply_without_post_owner_id_uses_the_comment_owner_id(kit) -> None:
    event = kit.json("vk_wall_reply_new.json")
    del event["object"]["post_owner_id"]

    (out,) = kit.parse_payload("vk", event)

    assert isinstance(out, Contact)
    assert out.conversation_id == f"vk:wall:-218765432_1375:{kit.h('987654321')}"


def test_the_communitys_own_wall_reply_is_ignored(kit) -> None:
    event = kit.json("vk_wall_reply_new.json")
    event["object"]["from_id"] = -218765432

    assert kit.parse_payload("vk", event) == [
        Ignored(
            at=kit.at_ms,
            source="vk",
            reason="vk wall comment by the community itself",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "confirmation", "group_id": 218765432}, "vk confirmation request"),
        (
            {
                "type": "group_join",
                "object": {"user_id": 123456789, "join_type": "join"},
                "group_id": 218765432,
                "event_id": "e1",
                "v": "5.199",
            },
            "vk event 'group_join' is not a customer contact",
        ),
        (
            {
                "type": "message_reply",
                "object": {
                    "date": 1772432510,
                    "from_id": -218765432,
                    "id": 5822,
                    "out": 1,
                    "peer_id": 123456789,
                    "text": "Здравствуйте! Сбросили пароль, проверьте почту.",
                    "conversation_message_id": 312,
                    "admin_author_id": 555000111,
                },
                "group_id": 218765432,
                "event_id": "e2",
                "v": "5.199",
            },
            "vk event 'message_reply' is not a customer contact",
        ),
        (
            {
                "type": "message_edit",
                "object": {"id": 5821, "peer_id": 123456789, "from_id": 123456789, "text": "x"},
                "group_id": 218765432,
            },
            "vk event 'message_edit' is not a customer contact",
        ),
        (
            {
                "type": "wall_post_new",
                "object": {
                    "id": 1376,
                    "owner_id": -218765432,
                    "from_id": -218765432,
                    "text": "News",
                },
                "group_id": 218765432,
            },
            "vk event 'wall_post_new' is not a customer contact",
        ),
    ],
)
def test_other_event_types_are_ignored(kit, event, reason: str) -> None:
    assert kit.parse_payload("vk", event) == [
        Ignored(at=kit.at_ms, source="vk", reason=reason, ref=kit.ref)
    ]


@pytest.mark.parametrize(
    ("fixture", "edit", "reason"),
    [
        ("vk_message_new.json", lambda e: e.pop("type"), "missing field payload.type"),
        ("vk_message_new.json", lambda e: e.pop("object"), "missing field payload.object"),
        (
            "vk_message_new.json",
            lambda e: e["object"]["message"].pop("from_id"),
            "missing field payload.object.message.from_id",
        ),
        (
            "vk_message_new.json",
            lambda e: e["object"]["message"].pop("peer_id"),
            "missing field payload.object.message.peer_id",
        ),
        (
            "vk_message_new.json",
            lambda e: e["object"]["message"].update({"text": 5}),
            "field payload.object.message.text must be a string, got number",
        ),
        (
            "vk_message_new_legacy.json",
            lambda e: e["object"].pop("from_id"),
            "missing field payload.object.from_id",
        ),
        (
            "vk_wall_reply_new.json",
            lambda e: e["object"].pop("post_id"),
            "missing field payload.object.post_id",
        ),
        (
            "vk_wall_reply_new.json",
            lambda e: (e["object"].pop("post_owner_id"), e["object"].pop("owner_id")),
            "missing field payload.object.post_owner_id",
        ),
        (
            "vk_wall_reply_new.json",
            lambda e: e["object"].pop("text"),
            "missing field payload.object.text",
        ),
    ],
)
def test_missing_fields_are_dead_letters(kit, fixture: str, edit, reason: str) -> None:
    event = kit.json(fixture)
    edit(event)

    (out,) = kit.parse_payload("vk", event)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_message_new_before_api_5_80_names_the_sender_user_id_and_the_text_body(kit) -> None:
    # A callback server set to an API version before 5.80 sends this shape (no from_id,
    # peer_id, text or conversation_message_id).
    event = {
        "type": "message_new",
        "group_id": 100,
        "object": {
            "id": 41,
            "date": 1772432100,
            "out": 0,
            "user_id": 123456789,
            "read_state": 0,
            "title": "",
            "body": "Здравствуйте, заказ не пришёл",
        },
        "secret": "s",
    }

    out = kit.parse_payload("vk", event)

    assert out == [
        Contact(
            at=kit.at_ms,
            channel="vk",
            conversation_id=f"vk:dm:{kit.h('123456789')}",
            identities=(Identity("vk", "123456789"),),
            subject="",
            body="Здравствуйте, заказ не пришёл",
            channel_message_id="dm:123456789:41",
            ref=kit.ref,
        )
    ]

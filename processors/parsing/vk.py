"""VK: a Callback API event (https://dev.vk.com/en/api/callback/getting-started) to a contact.

Two event types are customer contacts (CONTRACT §1):

- ``message_new``: a message to the community. Since API 5.103 the event's ``object`` is
  ``{"message": {...}, "client_info": {...}}``; before, ``object`` was the message itself. Both
  shapes are accepted, because a community's callback server keeps the API version it was set up
  with; before 5.80 the message named its sender ``user_id`` and its text ``body`` (and had no
  ``peer_id``), which is read too. Conversation ``vk:dm:{h(from_id)}``.
- ``wall_reply_new``: a comment under a wall post; ``object`` is the comment plus
  ``post_owner_id``. Every commenter under a post is a conversation of their own:
  ``vk:wall:{post_owner_id}_{post_id}:{h(from_id)}``; a community's owner id is negative.

``confirmation`` (the server check) and every other event type (``message_reply``,
``message_edit``, ``group_join``, ``wall_post_new``, ...) are acknowledged as ``Ignored``.
"""

from __future__ import annotations

from typing import Any

from processors.ids import Pseudonymizer
from processors.model import Contact, Identity, Ignored, Parsed, RawRecord
from processors.parsing._common import as_object, opt_int, req_int, req_object, req_str, show


def parse_vk(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    event = as_object(record.payload, "payload")
    kind = req_str(event, "type", "payload.type")
    if kind == "message_new":
        return [_message_new(record, pseudo, req_object(event, "object", "payload.object"))]
    if kind == "wall_reply_new":
        return _wall_reply_new(record, pseudo, event)
    reason = (
        "vk confirmation request"
        if kind == "confirmation"
        else f"vk event {show(kind)} is not a customer contact"
    )
    return [Ignored(at=record.at, source=record.source, reason=reason, ref=record.ref)]


def _message_new(record: RawRecord, pseudo: Pseudonymizer, obj: dict[str, Any]) -> Contact:
    if "message" in obj:
        message = req_object(obj, "message", "payload.object.message")
        path = "payload.object.message"
    else:  # API < 5.103: the object is the message
        message, path = obj, "payload.object"
    if message.get("from_id") is None and message.get("user_id") is not None:
        # API < 5.80: the sender is ``user_id``, the text ``body``, and there is no
        # ``peer_id`` (a message to the community is a direct message: the peer is the
        # sender) nor ``conversation_message_id``.
        from_id = req_int(message, "user_id", f"{path}.user_id")
        peer_id = opt_int(message, "peer_id", f"{path}.peer_id") or from_id
        text = req_str(message, "body", f"{path}.body")
    else:
        from_id = req_int(message, "from_id", f"{path}.from_id")
        peer_id = req_int(message, "peer_id", f"{path}.peer_id")
        text = req_str(message, "text", f"{path}.text")
    # The per-conversation number is stable for a message in every API version; the global
    # ``id`` is 0 for messages in group chats, so it is only the fallback.
    number = opt_int(message, "conversation_message_id", f"{path}.conversation_message_id")
    if number is None:
        number = req_int(message, "id", f"{path}.id")
    return Contact(
        at=record.at,
        channel="vk",
        conversation_id=f"vk:dm:{pseudo.h(str(from_id))}",
        identities=(Identity("vk", str(from_id)),),
        subject="",
        body=text,
        channel_message_id=f"dm:{peer_id}:{number}",
        ref=record.ref,
    )


def _wall_reply_new(
    record: RawRecord, pseudo: Pseudonymizer, event: dict[str, Any]
) -> list[Parsed]:
    comment = req_object(event, "object", "payload.object")
    comment_id = req_int(comment, "id", "payload.object.id")
    from_id = req_int(comment, "from_id", "payload.object.from_id")
    post_id = req_int(comment, "post_id", "payload.object.post_id")
    # The event adds post_owner_id to the comment object; the comment's own owner_id is the
    # same wall's owner, so it stands in when a relay dropped the extra field.
    owner = opt_int(comment, "post_owner_id", "payload.object.post_owner_id")
    if owner is None:
        if comment.get("owner_id") is None:
            req_int(comment, "post_owner_id", "payload.object.post_owner_id")  # the reason
        owner = req_int(comment, "owner_id", "payload.object.owner_id")
    text = req_str(comment, "text", "payload.object.text")
    group_id = opt_int(event, "group_id", "payload.group_id")
    if group_id is not None and from_id == -group_id:
        # The community answering under its own post is the business speaking, not a customer.
        return [
            Ignored(
                at=record.at,
                source=record.source,
                reason="vk wall comment by the community itself",
                ref=record.ref,
            )
        ]
    return [
        Contact(
            at=record.at,
            channel="vk",
            conversation_id=f"vk:wall:{owner}_{post_id}:{pseudo.h(str(from_id))}",
            identities=(Identity("vk", str(from_id)),),
            subject="",
            body=text,
            channel_message_id=f"wall:{owner}_{post_id}:{comment_id}",
            ref=record.ref,
        )
    ]

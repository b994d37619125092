"""Telegram: a Bot API ``Update`` object (https://core.telegram.org/bots/api#update) to contacts.

Only ``message`` updates sent by a person (``from.is_bot`` false) are customer contacts
(CONTRACT §1). Every other kind of update (``edited_message``, ``channel_post``,
``callback_query``, ``my_chat_member``, ...) and messages from bots are acknowledged as
``Ignored``. The conversation is the chat (``telegram:{h(chat.id)}``), the customer identity the
sender (``from.id``). The body is ``text``, else the media ``caption``; media sent without a
caption (a photo, a voice note, a sticker) is still a contact, with an empty body.
"""

from __future__ import annotations

from processors.ids import Pseudonymizer
from processors.model import Contact, Identity, Ignored, Parsed, RawRecord
from processors.parsing._common import (
    as_object,
    opt_str,
    req_bool,
    req_int,
    req_object,
)


def parse_telegram(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    update = as_object(record.payload, "payload")
    req_int(update, "update_id", "payload.update_id")
    if update.get("message") is None:
        # An Update carries at most one optional field besides update_id; name it so the
        # ignored counter tells edits from button presses.
        kind = next((key[:40] for key in update if key != "update_id"), "unknown")
        return [_ignored(record, f"telegram update {kind} is not a customer message")]

    message = req_object(update, "message", "payload.message")
    chat = req_object(message, "chat", "payload.message.chat")
    chat_id = req_int(chat, "id", "payload.message.chat.id")
    message_id = req_int(message, "message_id", "payload.message.message_id")
    sender = req_object(message, "from", "payload.message.from")
    sender_id = req_int(sender, "id", "payload.message.from.id")
    if req_bool(sender, "is_bot", "payload.message.from.is_bot"):
        return [_ignored(record, "telegram message from a bot")]
    text = opt_str(message, "text", "payload.message.text")
    caption = opt_str(message, "caption", "payload.message.caption")
    return [
        Contact(
            at=record.at,
            channel="telegram",
            conversation_id=f"telegram:{pseudo.h(str(chat_id))}",
            identities=(Identity("telegram", str(sender_id)),),
            subject="",
            body=text or caption,
            channel_message_id=f"{chat_id}:{message_id}",
            ref=record.ref,
        )
    ]


def _ignored(record: RawRecord, reason: str) -> Ignored:
    return Ignored(at=record.at, source=record.source, reason=reason, ref=record.ref)

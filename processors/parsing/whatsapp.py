"""WhatsApp: a Cloud API webhook body to contacts, one per inbound message, in body order.

The body is ``{"object": "whatsapp_business_account", "entry": [{"changes": [{"value":
{"messages": [...], "statuses": [...], ...}, "field": "messages"}]}]}``
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components). Any other
``object`` is a dead letter (CONTRACT §1). ``statuses[]`` report on the business's own outgoing
messages and are ignored; a body with nothing but statuses yields a single ``Ignored``.

Each message's ``from`` (the sender's wa_id, as sent) makes the conversation
``whatsapp:{h(from)}`` and is the first identity; the same number as a phone ``+{digits}`` is
the second, because the contract tries a WhatsApp sender as a phone after its wa_id.

A message Meta cannot describe (``type: "unsupported"``, or an ``interactive`` message without
its ``interactive`` object, both with ``errors[]``) is still a contact, without text: the
customer wrote, and the ticket must open. A message without ``from`` (WhatsApp usernames may
bring those) cannot be put in a conversation: the body is a dead letter whose reason names the
message, and is replayable once the parser learns how such senders are identified.
"""

from __future__ import annotations

from typing import Any, Final

from processors.ids import Pseudonymizer
from processors.model import Contact, Identity, Ignored, Parsed, RawRecord
from processors.parsing._common import (
    Reject,
    as_object,
    opt_list,
    opt_object,
    opt_str,
    req_list,
    req_object,
    req_str,
    show,
)

_OBJECT: Final = "whatsapp_business_account"

# Media whose only text is an optional caption. Audio and stickers have no caption field,
# so they always arrive with an empty body; they are contacts all the same.
_CAPTIONED: Final = frozenset({"image", "video", "document", "audio", "sticker"})

# Message entries that are not something the customer wrote to us: a reaction is an emoji put
# on an existing message (and an empty one removes it), a system message is WhatsApp telling
# that the user changed their number. Opening or reopening tickets on them would be noise.
_NOT_CONTACTS: Final = frozenset({"reaction", "system"})


def parse_whatsapp(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    body = as_object(record.payload, "payload")
    obj = req_str(body, "object", "payload.object")
    if obj != _OBJECT:
        raise Reject(f"field payload.object must be {_OBJECT!r}, got {show(obj)}")

    out: list[Parsed] = []
    saw_status = False
    for e, entry in enumerate(req_list(body, "entry", "payload.entry")):
        entry_path = f"payload.entry[{e}]"
        entry = as_object(entry, entry_path)
        for c, change in enumerate(req_list(entry, "changes", f"{entry_path}.changes")):
            change_path = f"{entry_path}.changes[{c}]"
            value = req_object(as_object(change, change_path), "value", f"{change_path}.value")
            saw_status = saw_status or bool(value.get("statuses"))
            messages = opt_list(value, "messages", f"{change_path}.value.messages")
            for m, message in enumerate(messages):
                path = f"{change_path}.value.messages[{m}]"
                out.append(_message(record, pseudo, as_object(message, path), path))
    if not out:
        reason = (
            "whatsapp body holds only statuses" if saw_status else "whatsapp body holds no messages"
        )
        out.append(Ignored(at=record.at, source=record.source, reason=reason, ref=record.ref))
    return out


def _message(
    record: RawRecord, pseudo: Pseudonymizer, message: dict[str, Any], path: str
) -> Parsed:
    if message.get("from") is None:
        raise Reject(
            f"missing field {path}.from: a message without its sender's wa_id has no conversation"
        )
    sender = req_str(message, "from", f"{path}.from", allow_empty=False)
    wamid = req_str(message, "id", f"{path}.id", allow_empty=False)
    kind = req_str(message, "type", f"{path}.type")
    if kind in _NOT_CONTACTS:
        return Ignored(
            at=record.at,
            source=record.source,
            reason=f"whatsapp {kind} message is not a customer contact",
            ref=record.ref,
        )
    identities = [Identity("whatsapp", sender)]
    digits = "".join(ch for ch in sender if ch.isdigit())
    if digits:
        identities.append(Identity("phone", "+" + digits))
    return Contact(
        at=record.at,
        channel="whatsapp",
        conversation_id=f"whatsapp:{pseudo.h(sender)}",
        identities=tuple(identities),
        subject="",
        body=_body(message, kind, path),
        channel_message_id=wamid,
        ref=record.ref,
    )


def _body(message: dict[str, Any], kind: str, path: str) -> str:
    """The text a message carries, by its ``type``; types without text give ``""``."""
    if kind == "text":
        text = req_object(message, "text", f"{path}.text")
        return req_str(text, "body", f"{path}.text.body")
    if kind in _CAPTIONED:
        media = opt_object(message, kind, f"{path}.{kind}") or {}
        return opt_str(media, "caption", f"{path}.{kind}.caption")
    if kind == "interactive":
        interactive = opt_object(message, "interactive", f"{path}.interactive")
        if interactive is None:
            # Seen in captures: an interactive message Meta could not render to the webhook
            # arrives without its ``interactive`` object, with ``errors`` (131000, "Unsupported
            # webhook payload") instead. The customer did write: a contact without text.
            return ""
        reply_kind = req_str(interactive, "type", f"{path}.interactive.type")
        if reply_kind in ("button_reply", "list_reply"):
            reply = req_object(interactive, reply_kind, f"{path}.interactive.{reply_kind}")
            return req_str(reply, "title", f"{path}.interactive.{reply_kind}.title")
        return ""  # nfm_reply (a WhatsApp Flow's answer) is structured data, not text
    if kind == "button":  # a quick-reply button on a template message
        button = req_object(message, "button", f"{path}.button")
        return req_str(button, "text", f"{path}.button.text")
    if kind == "location":
        location = req_object(message, "location", f"{path}.location")
        parts = (
            opt_str(location, "name", f"{path}.location.name"),
            opt_str(location, "address", f"{path}.location.address"),
        )
        return "\n".join(part for part in parts if part)
    if kind == "order":
        order = opt_object(message, "order", f"{path}.order") or {}
        return opt_str(order, "text", f"{path}.order.text")
    # contacts, unsupported / unknown and future types: a contact without text.
    return ""

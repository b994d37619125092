"""The project's web chat widget: one visitor message to a contact.

Payload (CONTRACT §1): ``{"session_id", "message_id", "visitor": {"id", "email"?, "phone"?,
"name"?}, "text", "page_url"?}``. The conversation is the chat session (``chat:{session_id}``).
The widget's visitor id is a cookie, not a person, so it is not an identity; the e-mail and
then the phone the visitor typed in are, in that order.
"""

from __future__ import annotations

from processors.ids import Pseudonymizer
from processors.model import Contact, Parsed, RawRecord
from processors.parsing._common import as_object, given_identities, req_key, req_object, req_str


def parse_chat(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    session_id = req_key(payload, "session_id", "payload.session_id")
    message_id = req_key(payload, "message_id", "payload.message_id")
    visitor = req_object(payload, "visitor", "payload.visitor")
    req_key(visitor, "id", "payload.visitor.id")
    text = req_str(payload, "text", "payload.text")
    return [
        Contact(
            at=record.at,
            channel="chat",
            conversation_id=f"chat:{session_id}",
            identities=given_identities(visitor, "payload.visitor"),
            subject="",
            body=text,
            channel_message_id=f"{session_id}:{message_id}",
            ref=record.ref,
        )
    ]

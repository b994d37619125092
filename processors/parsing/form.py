"""The web feedback form: one submission to a contact.

Payload (CONTRACT §1): ``{"submission_id", "form_id", "email"?, "phone"?, "name"?, "topic"?,
"message", "page_url"?}``. Each submission is a conversation of its own
(``form:{submission_id}``); the topic is the subject the classifier matches with the message.
"""

from __future__ import annotations

from processors.ids import Pseudonymizer
from processors.model import Contact, Parsed, RawRecord
from processors.parsing._common import as_object, given_identities, opt_str, req_key, req_str


def parse_form(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    submission_id = req_key(payload, "submission_id", "payload.submission_id")
    req_key(payload, "form_id", "payload.form_id")
    message = req_str(payload, "message", "payload.message")
    topic = opt_str(payload, "topic", "payload.topic")
    return [
        Contact(
            at=record.at,
            channel="form",
            conversation_id=f"form:{submission_id}",
            identities=given_identities(payload, "payload"),
            subject=topic,
            body=message,
            channel_message_id=submission_id,
            ref=record.ref,
        )
    ]

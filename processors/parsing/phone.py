"""Telephony: one call record to a contact.

Payload (CONTRACT §1): ``{"call_id", "caller", "callee", "status": "answered" | "missed" |
"voicemail", "started_at", "duration_s", "agent_id"?, "transcript"?}``. Calls from one number
continue one conversation, ``phone:{h(caller in E.164)}``. An answered call is also the
answering agent's public reply (the desk acts on that), so it must name the agent.
"""

from __future__ import annotations

from typing import Final

from processors.ids import Pseudonymizer, normalize_phone
from processors.model import Contact, Identity, Parsed, RawRecord
from processors.parsing._common import (
    Reject,
    as_object,
    opt_str,
    req_key,
    req_number,
    req_str,
    show,
)

CALL_STATUSES: Final = ("answered", "missed", "voicemail")


def parse_phone(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    call_id = req_key(payload, "call_id", "payload.call_id")
    caller = normalize_phone(req_str(payload, "caller", "payload.caller", allow_empty=False))
    if not caller:
        raise Reject("field payload.caller holds no digits")
    req_str(payload, "callee", "payload.callee", allow_empty=False)
    status = req_str(payload, "status", "payload.status")
    if status not in CALL_STATUSES:
        raise Reject(f"unknown call status {show(status)} in payload.status")
    # started_at and duration_s are required by the contract but not used: the contact's
    # instant is the record's ``at``. Their presence is still checked so a truncated record
    # from the telephony system is noticed.
    if payload.get("started_at") is None:
        raise Reject("missing field payload.started_at")
    if req_number(payload, "duration_s", "payload.duration_s") < 0:
        raise Reject("field payload.duration_s must not be negative")
    agent_id = opt_str(payload, "agent_id", "payload.agent_id").strip()
    if status == "answered" and not agent_id:
        raise Reject("answered call without agent_id")
    return [
        Contact(
            at=record.at,
            channel="phone",
            conversation_id=f"phone:{pseudo.h(caller)}",
            identities=(Identity("phone", caller),),
            subject="",
            body=opt_str(payload, "transcript", "payload.transcript"),
            channel_message_id=call_id,
            call_status=status,
            call_agent_id=agent_id,
            ref=record.ref,
        )
    ]

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
    wrong_type,
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
    # instant is the record's ``at``. They are still checked so a truncated or garbled record
    # from the telephony system is noticed. started_at is a timestamp, as text (RFC 3339 from
    # most systems) or a number (epoch seconds from some PBXs); its format is not fixed by the
    # contract, so any such value passes, but ``true`` or an object says the record is broken.
    started_at = payload.get("started_at")
    if started_at is None:
        raise Reject("missing field payload.started_at")
    if isinstance(started_at, bool) or not isinstance(started_at, str | int | float):
        wrong_type("payload.started_at", "a string or a number", started_at)
    if isinstance(started_at, str) and not started_at.strip():
        raise Reject("field payload.started_at must not be empty")
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

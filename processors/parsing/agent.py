"""The agents' desk: one agent record to an ``AgentAction``.

Payload (CONTRACT §1): ``{"type": "reply" | "note" | "status" | "assign", "conversation_id",
"agent_id", "status"?: "open" | "pending" | "solved", "public"?: true, "message_id"?}``, or
``{"type": "presence", "agent_id", "status": "online" | "away" | "offline"}`` (CONTRACT §7: no
conversation; a ``conversation_id`` given anyway is ignored).
``public`` defaults to true; ``status`` is required for (and only read for) a ``status``
record; ``message_id`` (the Message-ID an e-mail reply went out with) is normalised like every
threading id so the customer's answer finds it. Whether the conversation has a ticket is the
desk's question, not the parser's.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

from processors.ids import Pseudonymizer, normalize_message_id
from processors.model import AgentAction, Parsed, RawRecord
from processors.parsing._common import (
    Reject,
    as_object,
    opt_str,
    req_str,
    show,
    wrong_type,
)

ActionType = Literal["reply", "note", "status", "assign", "presence"]
ACTION_TYPES: Final = ("reply", "note", "status", "assign", "presence")
TICKET_STATUSES: Final = ("open", "pending", "solved")
PRESENCE_STATUSES: Final = ("online", "away", "offline")


def parse_agent(record: RawRecord, pseudo: Pseudonymizer) -> list[Parsed]:
    payload = as_object(record.payload, "payload")
    kind = req_str(payload, "type", "payload.type")
    if kind not in ACTION_TYPES:
        raise Reject(f"unknown agent type {show(kind)} in payload.type")
    if kind == "presence":
        return [_presence(record, payload)]
    conversation_id = req_str(
        payload, "conversation_id", "payload.conversation_id", allow_empty=False
    )
    agent_id = req_str(payload, "agent_id", "payload.agent_id", allow_empty=False)
    status = ""
    if kind == "status":
        status = req_str(payload, "status", "payload.status")
        if status not in TICKET_STATUSES:
            raise Reject(f"unknown ticket status {show(status)} in payload.status")
    public = payload.get("public")
    if public is None:
        public = True
    elif not isinstance(public, bool):
        wrong_type("payload.public", "a boolean", public)
    message_id = normalize_message_id(opt_str(payload, "message_id", "payload.message_id"))
    return [
        AgentAction(
            at=record.at,
            type=cast(ActionType, kind),
            conversation_id=conversation_id.strip(),
            agent_id=agent_id.strip(),
            status=status,
            public=public,
            message_id=message_id,
            ref=record.ref,
        )
    ]


def _presence(record: RawRecord, payload: dict[str, Any]) -> AgentAction:
    agent_id = req_str(payload, "agent_id", "payload.agent_id", allow_empty=False)
    status = req_str(payload, "status", "payload.status")
    if status not in PRESENCE_STATUSES:
        raise Reject(
            f"unknown presence status {show(status)} in payload.status "
            "(expected online, away or offline)"
        )
    return AgentAction(
        at=record.at,
        type="presence",
        conversation_id="",
        agent_id=agent_id.strip(),
        status=status,
        ref=record.ref,
    )

"""Hand-built processor output for the sink tests: rows whose effect on the tables is worked
out by hand, without running the processors."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from processors.model import CycleState, DeadLetter, DomainEvent, TicketState

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ms(text: str) -> int:
    """``"2026-03-01T12:00:00.123Z"`` -> Millis."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)


HOUR = 3_600_000
DAY = 24 * HOUR

_TICKET = TicketState(
    ticket_id="chat:s1#1",
    conversation_id="chat:s1",
    customer_id="cust-a",
    channel="chat",
    category="billing",
    kind="question",
    priority="P2",
    queue="billing-l1",
    agent_id="",
    status="new",
    sla_policy="standard",
    opened_at=ms("2026-03-02T09:00:00Z"),
    solved_at=None,
    reopen_count=0,
    handoff_count=0,
    inbound_count=1,
    agent_reply_count=0,
    csat=None,
    nps=None,
    tier="active",
    opened_day="2026-03-02",
    first_reply_at=None,
    updated_at=ms("2026-03-02T09:00:00Z"),
    version=1,
)


def ticket(**changes: Any) -> TicketState:
    return replace(_TICKET, **changes)


_CYCLE = CycleState(
    ticket_id="chat:s1#1",
    metric="first_response",
    cycle=1,
    policy="standard",
    status="active",
    started_at=ms("2026-03-02T09:00:00Z"),
    due_at=ms("2026-03-02T10:00:00Z"),
    warned_at=None,
    breached_at=None,
    fulfilled_at=None,
    business_seconds=None,
    target_seconds=3600.0,
    updated_at=ms("2026-03-02T09:00:00Z"),
    version=1,
)


def cycle(**changes: Any) -> CycleState:
    return replace(_CYCLE, **changes)


def event(
    event_id: str,
    event_type: str,
    at: int,
    *,
    ticket_id: str = "chat:s1#1",
    customer_id: str = "cust-a",
    conversation_id: str = "",
    **data: Any,
) -> DomainEvent:
    return DomainEvent(
        event_id=event_id,
        event_type=event_type,
        at=at,
        ticket_id=ticket_id,
        conversation_id=conversation_id or ticket_id.split("#")[0],
        customer_id=customer_id,
        data=data,
    )


def survey(event_id: str, at: int, kind: str, score: int, **kw: Any) -> DomainEvent:
    return event(event_id, "survey.answered", at, kind=kind, score=score, **kw)


def dead_letter(ref: str, **changes: Any) -> DeadLetter:
    base = DeadLetter(
        at=ms("2026-03-02T09:00:00Z"),
        source="telegram",
        reason="bad JSON",
        record='{"oops": ',
        ref=ref,
    )
    return replace(base, **changes)

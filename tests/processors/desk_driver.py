"""Driving the desk directly with plain inputs, as the runners do (STYLE lesson 15): records
at an instant first, then the timers of that instant when time moves on."""

from __future__ import annotations

import datetime as dt
from typing import Any

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    DomainEvent,
    Identity,
    Millis,
    Output,
    SurveyAnswer,
    TicketState,
)
from processors.pii import Masker
from processors.rules import rules_from_mapping

KEY = "desk-driver-key"
T0 = int(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)  # a Monday
MINUTE = 60_000
HOUR = 60 * MINUTE

ALWAYS = {
    "timezone": "UTC",
    "week": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


def rules(**extra: Any) -> Any:
    base: dict[str, Any] = {
        "version": 1,
        "calendars": {"always": ALWAYS},
        "categories": [{"name": "outage", "keywords": ["down"]}],
        "queues": [{"name": "general", "default": True}],
        "sla_policies": [
            {
                "name": "standard",
                "calendar": "always",
                "targets": {"first_response": "1h", "resolution": "1d"},
            }
        ],
    }
    base.update(extra)
    return rules_from_mapping(base)


class Driver:
    """A desk and everything it emitted, with event time moved as the runners move it."""

    def __init__(self, the_rules: Any) -> None:
        self.desk = Desk(the_rules, Pseudonymizer.from_text(KEY), Masker())
        self.outputs: list[Output] = []
        self.now: Millis | None = None

    def _at(self, at: Millis) -> None:
        # Timers strictly before the record's instant fire first (CONTRACT §3).
        self.outputs.append(self.desk.advance(at, inclusive=False))
        self.now = at

    def handle(self, item: Contact | AgentAction | SurveyAnswer | CrmUpsert) -> Output:
        self._at(item.at)
        output = self.desk.handle(item)
        self.outputs.append(output)
        return output

    def until(self, at: Millis) -> Output:
        """Event time passes ``at``: every timer at or before it fires."""
        output = self.desk.advance(at, inclusive=True)
        self.outputs.append(output)
        self.now = at
        return output

    def chat(self, at: Millis, session: str, text: str = "hello", email: str = "") -> Output:
        identities = (Identity("email", email),) if email else ()
        return self.handle(
            Contact(
                at=at,
                channel="chat",
                conversation_id=f"chat:{session}",
                identities=identities,
                subject="",
                body=text,
                channel_message_id=f"{session}:{at}",
            )
        )

    def reply(self, at: Millis, session: str, agent: str = "anna") -> Output:
        return self.handle(
            AgentAction(at=at, type="reply", conversation_id=f"chat:{session}", agent_id=agent)
        )

    def events(self, event_type: str | None = None) -> list[DomainEvent]:
        return [
            e
            for o in self.outputs
            for e in o.events
            if event_type is None or e.event_type == event_type
        ]

    def ticket(self, session: str, number: int = 1) -> TicketState:
        """The latest snapshot of a chat ticket."""
        ticket_id = f"chat:{session}#{number}"
        found = [t for o in self.outputs for t in o.tickets if t.ticket_id == ticket_id]
        assert found, ticket_id
        return max(found, key=lambda t: t.version)

"""The desk's ticket in the Faust table: the agents-and-quality state (CONTRACT §7) survives the
table's JSON round trip, so a worker that restores its desk from the changelog attributes
replies, surveys and reviews as one that never stopped."""

from __future__ import annotations

import json

from processors.desk import Ticket
from streams.faust_runner import TICKETS


def test_the_reply_tally_and_solver_survive_the_tables_json_round_trip() -> None:
    ticket = Ticket(
        ticket_id="chat:s1#1",
        conversation_id="chat:s1",
        number=1,
        customer_id="c",
        tier="active",
        channel="chat",
        category="other",
        kind="question",
        priority="P3",
        queue="general",
        sla_policy="",
        opened_at=1,
        opened_day="2026-03-02",
        replies=(("anna", 1, 3), ("boris", 1, 5)),
        solved_by="boris",
        sample_key="0123456789abcdef0123",
    )
    stored = json.loads(json.dumps(TICKETS.encode(ticket)))
    restored = TICKETS.decode(stored)
    assert restored == ticket
    assert restored.snapshot().most_active_agent == "boris"

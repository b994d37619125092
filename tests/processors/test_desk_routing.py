"""Routing that waits (CONTRACT §7 "Skills, presence and queues that wait"), driving the desk
directly with plain inputs and checking its events and tickets against cases worked by hand."""

from __future__ import annotations

from typing import Any

import pytest

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import AgentAction, Contact, DomainEvent, Output
from processors.pii import MASKER
from processors.rules import rules_from_mapping

MIN = 60_000
T0 = 1_767_600_000_000  # 2026-01-05 08:00 UTC, a Monday

RU = "Здравствуйте, подскажите, пожалуйста, как поменять тариф"
EN = "Hello, could you please tell me how to change my plan"


class Run:
    """A desk with a rules mapping, fed records at minutes after T0; keeps every output."""

    def __init__(self, rules: dict[str, Any]) -> None:
        base: dict[str, Any] = {"version": 1}
        self.desk = Desk(
            rules_from_mapping({**base, **rules}, "test.yaml"),
            Pseudonymizer.from_text("test-key"),
            MASKER,
        )
        self.events: list[DomainEvent] = []

    def _keep(self, output: Output) -> Output:
        self.events.extend(output.events)
        return output

    def contact(self, minute: int, conversation: str, text: str = RU) -> Output:
        at = T0 + minute * MIN
        self._keep(self.desk.advance(at, inclusive=False))
        return self._keep(
            self.desk.handle(
                Contact(
                    at=at,
                    channel="chat",
                    conversation_id=f"chat:{conversation}",
                    identities=(),
                    subject="",
                    body=text,
                    channel_message_id=f"{conversation}-{minute}",
                )
            )
        )

    def agent(
        self, minute: int, type_: str, agent: str, conversation: str = "", **kw: Any
    ) -> Output:
        at = T0 + minute * MIN
        self._keep(self.desk.advance(at, inclusive=False))
        conversation_id = f"chat:{conversation}" if conversation else ""
        return self._keep(
            self.desk.handle(
                AgentAction(
                    at=at, type=type_, conversation_id=conversation_id, agent_id=agent, **kw
                )  # type: ignore[arg-type]
            )
        )

    def solve(self, minute: int, agent: str, conversation: str) -> Output:
        return self.agent(minute, "status", agent, conversation, status="solved")

    def presence(self, minute: int, agent: str, status: str) -> Output:
        return self.agent(minute, "presence", agent, status=status)

    def agent_of(self, conversation: str) -> str:
        return self.desk.stores.tickets[f"chat:{conversation}#1"].agent_id

    def waiting(self) -> list[str]:
        return sorted(t.split(":")[1].split("#")[0] for t in self.desk.stores.waiting)

    def assigned(self, output: Output) -> list[tuple[str, str]]:
        """(conversation, agent) of the ticket.assigned events of one output, in order."""
        return [
            (e.conversation_id.split(":")[1], e.data["agent_id"])
            for e in output.events
            if e.event_type == "ticket.assigned"
        ]

    def of_type(self, event_type: str) -> list[DomainEvent]:
        return [e for e in self.events if e.event_type == event_type]


PRIORITIES = {
    "categories": [{"name": "outage", "keywords": ["не работает"]}],
    "priorities": [{"when": {"category": "outage"}, "priority": "P1"}],
    "queues": [{"name": "general", "default": True}],
}
DOWN = "Здравствуйте, у меня ничего не работает с самого утра"


def test_capacity_frees_and_the_p1_waiting_longest_goes_first() -> None:
    run = Run({**PRIORITIES, "agents": [{"id": "a", "queues": ["general"], "capacity": 1}]})
    run.contact(0, "A")  # P3 -> a (a is now full)
    run.contact(1, "B")  # P3, waits
    run.contact(2, "C", DOWN)  # P1, waits
    run.contact(3, "D", DOWN)  # P1, waits
    assert run.agent_of("A") == "a"
    assert run.waiting() == ["B", "C", "D"]
    # a solves A: room for one. P1 before P3, and among the P1s C opened first.
    out = run.solve(10, "a", "A")
    assert run.assigned(out) == [("C", "a")]
    assert run.waiting() == ["B", "D"]
    out = run.solve(11, "a", "C")
    assert run.assigned(out) == [("D", "a")]  # the younger P1 still beats the older P3
    out = run.solve(12, "a", "D")
    assert run.assigned(out) == [("B", "a")]
    assert run.waiting() == []
    # The wait is in the events: B waited from minute 1 to minute 12.
    stopped = {e.conversation_id: e.data for e in run.of_type("ticket.waiting_stopped")}
    assert stopped["chat:B"]["waited_seconds"] == 11 * 60
    assert stopped["chat:B"]["waiting_since"] == T0 + MIN
    assert stopped["chat:B"]["reason"] == "assigned"
    assert stopped["chat:B"]["agent_id"] == "a"
    started = {e.conversation_id: e.data for e in run.of_type("ticket.waiting_started")}
    assert started["chat:C"] == {
        "queue": "general",
        "priority": "P1",
        "reason": "no_agent",
        "previous_agent_id": "",
        "required_skills": "",
    }


def test_serving_assigns_again_and_again_until_no_waiting_ticket_has_a_candidate() -> None:
    run = Run(
        {
            **PRIORITIES,
            "agents": [
                {"id": "a", "queues": ["general"], "capacity": 1},
                {"id": "b", "queues": ["general"], "capacity": 2},
            ],
        }
    )
    run.presence(0, "b", "offline")
    run.contact(1, "A")  # -> a
    for minute, name in ((2, "B"), (3, "C"), (4, "D")):
        run.contact(minute, name)  # a full, b offline: all wait
    assert run.waiting() == ["B", "C", "D"]
    out = run.presence(5, "b", "online")  # b takes two, in order; D still waits
    assert run.assigned(out) == [("B", "b"), ("C", "b")]
    assert run.waiting() == ["D"]


def test_an_offline_agents_new_tickets_return_to_the_queue() -> None:
    run = Run(
        {
            **PRIORITIES,
            "agents": [
                {"id": "a", "queues": ["general"], "capacity": 5},
                {"id": "b", "queues": ["general"], "capacity": 5},
            ],
        }
    )
    run.contact(0, "A")  # -> a
    run.contact(1, "B")  # -> b
    run.contact(2, "C")  # -> a
    run.agent(3, "reply", "a", "A")  # A is open now; C stays new
    run.presence(4, "b", "away")  # b keeps B but gets nothing new
    out = run.presence(5, "a", "offline")
    # C (new) loses a and waits; b is away, so nobody can take it. A (open) stays with a.
    assert run.agent_of("A") == "a"
    assert run.agent_of("C") == ""
    assert run.agent_of("B") == "b"
    assert run.waiting() == ["C"]
    unassigned = [e for e in out.events if e.event_type == "ticket.assigned"]
    assert [(e.conversation_id, e.data) for e in unassigned] == [
        (
            "chat:C",
            {"agent_id": "", "previous_agent_id": "a", "handoff": False, "by": "presence"},
        )
    ]
    waiting = [e.data for e in out.events if e.event_type == "ticket.waiting_started"]
    assert waiting[0]["reason"] == "agent_offline"
    assert waiting[0]["previous_agent_id"] == "a"
    presence = [e.data for e in out.events if e.event_type == "agent.presence_changed"]
    assert presence == [
        {"agent_id": "a", "status": "offline", "previous_status": "online", "released_tickets": 1}
    ]
    assert run.desk.stores.tickets["chat:C#1"].handoff_count == 0
    # b comes back: C goes to b at once.
    out = run.presence(6, "b", "online")
    assert run.assigned(out) == [("C", "b")]
    assert run.desk.stores.tickets["chat:C#1"].handoff_count == 0
    # An offline agent gets nothing, even with room; a new ticket goes to b.
    run.contact(7, "D")
    assert run.agent_of("D") == "b"


def test_an_offline_agent_frees_room_for_the_others_at_once() -> None:
    run = Run(
        {
            **PRIORITIES,
            "agents": [
                {"id": "a", "queues": ["general"], "capacity": 1},
                {"id": "b", "queues": ["general"], "capacity": 1},
            ],
        }
    )
    run.contact(0, "A")  # -> a
    run.presence(1, "b", "offline")
    run.contact(2, "B")  # waits
    run.presence(3, "b", "online")  # b takes B
    assert run.agent_of("B") == "b"
    # a goes offline with A still new: A waits, nobody has room (b is full).
    run.presence(4, "a", "offline")
    assert run.waiting() == ["A"]
    # b solves B: A goes to b.
    out = run.solve(5, "b", "B")
    assert run.assigned(out) == [("A", "b")]


SKILLS = {
    "queues": [{"name": "general", "default": True}],
    "categories": [{"name": "billing", "keywords": ["invoice", "счёт"]}],
    "skills": [
        {"when": {"language": "en"}, "require": ["en"]},
        {"when": {"category": "billing"}, "prefer": ["billing"]},
    ],
}


def test_a_ticket_needing_en_never_goes_to_an_agent_without_it() -> None:
    run = Run(
        {
            **SKILLS,
            "agents": [
                {"id": "ru-only", "queues": ["general"], "capacity": 10},
                {"id": "en-speaker", "queues": ["general"], "capacity": 1, "skills": ["en"]},
            ],
        }
    )
    run.contact(0, "E1", EN)
    assert run.agent_of("E1") == "en-speaker"
    run.contact(1, "E2", EN)  # en-speaker is full; ru-only has room but not the skill
    assert run.agent_of("E2") == ""
    assert run.waiting() == ["E2"]
    run.contact(2, "R1", RU)  # needs nothing: ru-only (least loaded among those with room)
    assert run.agent_of("R1") == "ru-only"
    out = run.solve(3, "ru-only", "R1")  # room for ru-only: still not for E2
    assert run.assigned(out) == []
    assert run.waiting() == ["E2"]
    out = run.solve(4, "en-speaker", "E1")
    assert run.assigned(out) == [("E2", "en-speaker")]
    opened = {e.conversation_id: e.data for e in run.of_type("ticket.opened")}
    assert opened["chat:E1"]["language"] == "en"
    assert opened["chat:E1"]["required_skills"] == "en"
    assert opened["chat:R1"]["language"] == "ru"
    assert opened["chat:R1"]["required_skills"] == ""
    assert run.desk.stores.tickets["chat:E2#1"].snapshot().language == "en"


def test_preferred_skills_win_ties_before_the_assignment_mode() -> None:
    run = Run(
        {
            **SKILLS,
            "agents": [
                {"id": "plain", "queues": ["general"], "capacity": 5},
                {"id": "biller", "queues": ["general"], "capacity": 1, "skills": ["billing"]},
                {"id": "biller2", "queues": ["general"], "capacity": 5, "skills": ["billing"]},
            ],
        }
    )
    # least_loaded alone would pick "plain" (listed first); the billing ticket prefers billing.
    run.contact(0, "B1", "Где мой счёт за декабрь, не могу найти")
    assert run.agent_of("B1") == "biller"
    # biller is full: among those with room, biller2 holds the preferred skill.
    run.contact(1, "B2", "Где мой счёт за январь, не могу найти")
    assert run.agent_of("B2") == "biller2"
    # No preference: least_loaded over everybody with room ("plain" has 0).
    run.contact(2, "Q1", RU)
    assert run.agent_of("Q1") == "plain"
    opened = {e.conversation_id: e.data for e in run.of_type("ticket.opened")}
    assert opened["chat:B1"]["preferred_skills"] == "billing"


def test_preferred_skills_in_round_robin_keep_the_ring_order() -> None:
    run = Run(
        {
            **SKILLS,
            "assignment": "round_robin",
            "agents": [
                {"id": "x", "queues": ["general"], "skills": ["billing"]},
                {"id": "y", "queues": ["general"]},
                {"id": "z", "queues": ["general"], "skills": ["billing"]},
            ],
        }
    )
    run.contact(0, "Q1", RU)  # ring starts at x
    run.contact(1, "B1", "Где мой счёт за декабрь, не могу найти")  # after x: y lacks billing -> z
    run.contact(2, "Q2", RU)  # after z: x
    run.contact(3, "B2", "Где мой счёт за январь, не могу найти")  # after x: z (y lacks it)
    assert [run.agent_of(c) for c in ("Q1", "B1", "Q2", "B2")] == ["x", "z", "x", "z"]


def test_assignment_none_never_waits() -> None:
    run = Run(
        {
            **PRIORITIES,
            "assignment": "none",
            "agents": [{"id": "a", "queues": ["general"], "capacity": 1}],
        }
    )
    run.contact(0, "A")
    run.contact(1, "B")
    run.presence(2, "a", "offline")
    run.presence(3, "a", "online")
    run.agent(4, "assign", "a", "A")
    run.solve(5, "a", "A")
    assert run.agent_of("B") == ""
    assert run.waiting() == []
    assert run.of_type("ticket.waiting_started") == []
    assert [e.data["by"] for e in run.of_type("ticket.assigned")] == ["a"]


def test_a_queue_without_agents_never_waits() -> None:
    run = Run(
        {
            "queues": [
                {"name": "vip", "when": {"tier": "vip"}},
                {"name": "general", "default": True},
            ],
            "agents": [{"id": "a", "queues": ["vip"]}],
        }
    )
    run.contact(0, "A")
    assert run.agent_of("A") == ""
    assert run.waiting() == []
    assert run.of_type("ticket.waiting_started") == []


def test_a_waiting_ticket_assigned_by_hand_or_solved_stops_waiting() -> None:
    run = Run({**PRIORITIES, "agents": [{"id": "a", "queues": ["general"], "capacity": 1}]})
    run.contact(0, "A")  # -> a
    run.contact(1, "B")  # waits
    run.contact(2, "C")  # waits
    run.agent(3, "assign", "lead", "B")  # by hand: B stops waiting
    run.solve(4, "lead", "C")  # solved while waiting: C stops waiting
    assert run.waiting() == []
    stopped = [
        (e.conversation_id, e.data["reason"], e.data["agent_id"])
        for e in run.of_type("ticket.waiting_stopped")
    ]
    assert stopped == [("chat:B", "assigned", "lead"), ("chat:C", "solved", "")]
    # a solves A: nothing is waiting any more.
    out = run.solve(5, "a", "A")
    assert run.assigned(out) == []


def test_a_handoff_away_gives_room_and_serves_the_queue() -> None:
    run = Run({**PRIORITIES, "agents": [{"id": "a", "queues": ["general"], "capacity": 1}]})
    run.contact(0, "A")  # -> a
    run.contact(1, "B")  # waits
    out = run.agent(2, "assign", "lead", "A")  # A handed from a to lead: a has room
    assert run.assigned(out) == [("A", "lead"), ("B", "a")]
    assert run.desk.stores.tickets["chat:A#1"].handoff_count == 1


def test_presence_of_an_agent_the_rules_do_not_list_is_recorded_and_harmless() -> None:
    run = Run({**PRIORITIES, "agents": [{"id": "a", "queues": ["general"]}]})
    run.contact(0, "A")
    run.agent(1, "assign", "stranger", "A")  # a manual assign to an agent not in the rules
    out = run.presence(2, "stranger", "offline")  # A is new: it returns to the queue -> a
    assert run.assigned(out) == [("A", ""), ("A", "a")]
    assert run.desk.stores.tickets["chat:A#1"].handoff_count == 1  # only the manual one


@pytest.mark.parametrize("status", ["online", "away"])
def test_presence_events_say_what_changed(status: str) -> None:
    run = Run({**PRIORITIES, "agents": [{"id": "a", "queues": ["general"]}]})
    run.presence(0, "a", "offline")
    out = run.presence(1, "a", status)
    [event] = out.events
    assert event.event_type == "agent.presence_changed"
    assert event.ticket_id == ""
    assert event.data == {
        "agent_id": "a",
        "status": status,
        "previous_status": "offline",
        "released_tickets": 0,
    }
    assert run.desk.stores.presence.get("a", "online") == status

"""The help desk: conversations become tickets, tickets move through their lifecycle.

``Desk`` is the domain core the runners drive. It takes parsed inputs (``Contact``,
``AgentAction``, ``SurveyAnswer``, ``CrmUpsert``) in event-time order and the advance of event
time, and returns ``Output``: the domain events, the snapshots of the tickets and SLA cycles they
changed, and dead letters for records that name no ticket. It does no I/O and never reads the
clock.

Its state lives in mappings handed in by the runner (``DeskStores``): plain dicts in the local
runner, changelogged tables under Faust. Each ticket is a frozen ``Ticket`` replaced on change;
its ``seq`` numbers its events so that event ids are deterministic (``ids.event_id``).

The rules are CONTRACT §1 (Tickets) and §3 (SLA, delegated to ``SlaBook``):

* the first inbound contact of a conversation without a ticket opens ``{conversation}#1``;
  later tickets are ``#2``, ``#3``...; agent and survey records act on the latest ticket;
* classification (category, kind, priority, queue, policy) is decided once, at opening, from
  the opening contact and the customer's tier at that moment;
* ``new`` -> ``open`` on the first public reply; an inbound contact on ``pending`` makes it
  ``open``; on ``solved`` it reopens within ``reopen_within`` of the solve, else opens the next
  ticket; an agent ``open``/``pending`` on a solved ticket reopens it without a response cycle;
* each change of assignee from one agent to another is a handoff;
* CONTRACT §7: a ticket with a first_response target gets a promise when it opens
  (``ticket.acknowledged``, ``processors.promises``), kept or broken by its first public reply
  or by a timer at ``promised_by``; a spike of one contact reason opens an incident the
  tickets join, closed by a timer (``processors.incidents``). The SLA, promise and incident
  timers fire together in one instant order (``advance``).

Agents and quality (CONTRACT §7, ``processors.quality``): every fact names the agent it belongs
to, so the warehouse attributes it without guessing: ``agent.replied`` says whether it was the
ticket's first public reply, ``survey.answered`` names the agent of the latest public reply
before it (not the assignee), ``ticket.reopened`` the agent who recorded the solve it undoes,
and ``qa.reviewed`` the ticket's most active agent when reviewed and the review's quality.

Routing that waits (CONTRACT §7 "Skills, presence and queues that wait", docs/RULES.md): a
ticket that gets no agent when it opens waits in its queue (``stores.waiting``, with a
``ticket.waiting_started`` event), and so does a ``new`` ticket whose agent goes offline. After
every input that gives an agent room or changes an agent's presence, the waiting tickets of
that agent's queues are served in order (priority name, ``opened_at``, ``ticket_id``) until
none has a candidate; each served ticket gets ``ticket.waiting_stopped`` and
``ticket.assigned``. Candidates only shrink while serving (an assignment takes room, nothing
gives it back), so one pass in that order is the contract's "again and again the first
waiting ticket that has a candidate". Tickets of queues the agent does not serve need no look:
nothing changed for them since the last serve left none with a candidate.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import json
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from processors.assignment import Assigner, AssignerState
from processors.classify import Classifier
from processors.fastreplace import replace  # dataclasses.replace, cheaper on the hot path
from processors.identity import CustomerDirectory, Profile, Resolved
from processors.ids import Pseudonymizer, event_id
from processors.incidents import Incident, IncidentBook
from processors.language import LanguageDetector
from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    CycleState,
    DeadLetter,
    DomainEvent,
    Millis,
    Output,
    Parsed,
    QaReview,
    SurveyAnswer,
    TicketState,
)
from processors.pii import Masker
from processors.promises import PromiseBook
from processors.quality import ReplyTally, most_active, score_review, tally_reply, unknown_criteria
from processors.rules import Rules
from processors.sla import FIRST_RESPONSE, SlaOutput
from processors.slabook import SlaBook
from processors.threads import ThreadIndex


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket's whole state. ``seq`` counts the events emitted for it, ``version`` the
    snapshots written to ``tickets``."""

    ticket_id: str
    conversation_id: str
    number: int
    customer_id: str
    tier: str
    channel: str
    category: str
    kind: str
    priority: str
    queue: str
    sla_policy: str
    opened_at: Millis
    opened_day: str
    status: str = "new"
    agent_id: str = ""
    solved_at: Millis | None = None
    reopen_count: int = 0
    handoff_count: int = 0
    inbound_count: int = 1
    agent_reply_count: int = 0
    csat: int | None = None
    nps: int | None = None
    first_reply_at: Millis | None = None
    updated_at: Millis = 0
    seq: int = 0
    version: int = 0
    promised_by: Millis | None = None
    promise_estimate_ms: int | None = None
    promise_basis: str = ""
    promise_outcome: str = ""
    incident_id: str = ""
    replies: ReplyTally = ()  # public replies per agent (processors.quality)
    solved_by: str = ""  # the agent who recorded the latest solve
    sample_key: str = ""  # h(ticket_id): the QA sample's order (CONTRACT §7)
    language: str = "und"
    required_skills: tuple[str, ...] = ()
    preferred_skills: tuple[str, ...] = ()

    # Written out, not generated by @dataclass: compiled (processors/native.py), this stores
    # each field directly, where the generated method stays interpreted and sets each field
    # through the frozen class's __setattr__. The desk builds a Ticket for nearly every
    # record (fastreplace.replace); docs/REPLAY.md, "What runs compiled".
    # tests/processors/test_native_inits.py holds it to the fields above.
    def __init__(
        self,
        ticket_id: str,
        conversation_id: str,
        number: int,
        customer_id: str,
        tier: str,
        channel: str,
        category: str,
        kind: str,
        priority: str,
        queue: str,
        sla_policy: str,
        opened_at: Millis,
        opened_day: str,
        status: str = "new",
        agent_id: str = "",
        solved_at: Millis | None = None,
        reopen_count: int = 0,
        handoff_count: int = 0,
        inbound_count: int = 1,
        agent_reply_count: int = 0,
        csat: int | None = None,
        nps: int | None = None,
        first_reply_at: Millis | None = None,
        updated_at: Millis = 0,
        seq: int = 0,
        version: int = 0,
        promised_by: Millis | None = None,
        promise_estimate_ms: int | None = None,
        promise_basis: str = "",
        promise_outcome: str = "",
        incident_id: str = "",
        replies: ReplyTally = (),
        solved_by: str = "",
        sample_key: str = "",
        language: str = "und",
        required_skills: tuple[str, ...] = (),
        preferred_skills: tuple[str, ...] = (),
    ) -> None:
        object.__setattr__(self, "ticket_id", ticket_id)
        object.__setattr__(self, "conversation_id", conversation_id)
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "customer_id", customer_id)
        object.__setattr__(self, "tier", tier)
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "queue", queue)
        object.__setattr__(self, "sla_policy", sla_policy)
        object.__setattr__(self, "opened_at", opened_at)
        object.__setattr__(self, "opened_day", opened_day)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "solved_at", solved_at)
        object.__setattr__(self, "reopen_count", reopen_count)
        object.__setattr__(self, "handoff_count", handoff_count)
        object.__setattr__(self, "inbound_count", inbound_count)
        object.__setattr__(self, "agent_reply_count", agent_reply_count)
        object.__setattr__(self, "csat", csat)
        object.__setattr__(self, "nps", nps)
        object.__setattr__(self, "first_reply_at", first_reply_at)
        object.__setattr__(self, "updated_at", updated_at)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "promised_by", promised_by)
        object.__setattr__(self, "promise_estimate_ms", promise_estimate_ms)
        object.__setattr__(self, "promise_basis", promise_basis)
        object.__setattr__(self, "promise_outcome", promise_outcome)
        object.__setattr__(self, "incident_id", incident_id)
        object.__setattr__(self, "replies", replies)
        object.__setattr__(self, "solved_by", solved_by)
        object.__setattr__(self, "sample_key", sample_key)
        object.__setattr__(self, "language", language)
        object.__setattr__(self, "required_skills", required_skills)
        object.__setattr__(self, "preferred_skills", preferred_skills)

    def with_seq(self, seq: int) -> Ticket:
        """This ticket with ``seq`` changed: ``replace(ticket, seq=seq)`` for the one change the
        desk makes per event it emits (a third of its copies). Compiled, it reads each field
        from the struct and calls the compiled ``__init__`` directly, where ``replace`` reads
        them through their descriptors and calls the class with a list.
        tests/processors/test_native_inits.py holds it to the fields."""
        return Ticket(
            self.ticket_id,
            self.conversation_id,
            self.number,
            self.customer_id,
            self.tier,
            self.channel,
            self.category,
            self.kind,
            self.priority,
            self.queue,
            self.sla_policy,
            self.opened_at,
            self.opened_day,
            self.status,
            self.agent_id,
            self.solved_at,
            self.reopen_count,
            self.handoff_count,
            self.inbound_count,
            self.agent_reply_count,
            self.csat,
            self.nps,
            self.first_reply_at,
            self.updated_at,
            seq,
            self.version,
            self.promised_by,
            self.promise_estimate_ms,
            self.promise_basis,
            self.promise_outcome,
            self.incident_id,
            self.replies,
            self.solved_by,
            self.sample_key,
            self.language,
            self.required_skills,
            self.preferred_skills,
        )

    def snapshot(self) -> TicketState:
        return TicketState(
            ticket_id=self.ticket_id,
            conversation_id=self.conversation_id,
            customer_id=self.customer_id,
            channel=self.channel,
            category=self.category,
            kind=self.kind,
            priority=self.priority,
            queue=self.queue,
            agent_id=self.agent_id,
            status=self.status,
            sla_policy=self.sla_policy,
            opened_at=self.opened_at,
            solved_at=self.solved_at,
            reopen_count=self.reopen_count,
            handoff_count=self.handoff_count,
            inbound_count=self.inbound_count,
            agent_reply_count=self.agent_reply_count,
            csat=self.csat,
            nps=self.nps,
            tier=self.tier,
            opened_day=self.opened_day,
            first_reply_at=self.first_reply_at,
            updated_at=self.updated_at,
            version=self.version,
            promised_by=self.promised_by,
            promise_estimate_seconds=(
                None if self.promise_estimate_ms is None else self.promise_estimate_ms / 1000
            ),
            promise_basis=self.promise_basis,
            promise_outcome=self.promise_outcome,
            incident_id=self.incident_id,
            most_active_agent=most_active(self.replies),
            sample_key=self.sample_key,
            language=self.language,
        )


@dataclass
class DeskStores:
    """Where the desk keeps its state; a runner may pass its own mappings.

    ``latest`` maps a conversation to its latest ticket id; ``seen`` holds the channel message
    ids already received (a redelivered webhook must not become a second contact);
    ``customer_seq`` numbers each customer's events (and, under ``AGENT_SEQ_PREFIX``, each
    agent's presence events). CONTRACT §7: ``promise_history`` holds
    the latest fulfilled first responses per channel and policy, ``promises`` the pending
    promises (ticket -> promised_by), ``incidents`` each category's counter and open incident,
    ``incident_openings`` the recent openings per category (``processors.incidents``).
    ``presence`` holds the agents who are not online (absent: online); ``waiting`` maps each
    waiting ticket to the instant it started waiting;
    ``held_new`` maps each ``new`` ticket that has an agent to that agent (what an agent going
    offline gives back).
    """

    tickets: MutableMapping[str, Ticket] = field(default_factory=dict)
    latest: MutableMapping[str, str] = field(default_factory=dict)
    seen: MutableMapping[str, str] = field(default_factory=dict)
    profiles: MutableMapping[str, Profile] = field(default_factory=dict)
    identities: MutableMapping[str, str] = field(default_factory=dict)
    message_ids: MutableMapping[str, str] = field(default_factory=dict)
    customer_seq: MutableMapping[str, int] = field(default_factory=dict)
    promise_history: MutableMapping[str, Any] = field(default_factory=dict)
    promises: MutableMapping[str, Any] = field(default_factory=dict)
    incidents: MutableMapping[str, Any] = field(default_factory=dict)
    incident_openings: MutableMapping[str, Any] = field(default_factory=dict)
    presence: MutableMapping[str, str] = field(default_factory=dict)
    waiting: MutableMapping[str, Millis] = field(default_factory=dict)
    held_new: MutableMapping[str, str] = field(default_factory=dict)


AGENT_SEQ_PREFIX = "\x1fagent:"
"""Key prefix of agents' event counters in ``customer_seq`` (no customer id starts so)."""

_WaitKey = tuple[str, Millis, str]  # (priority, opened_at, ticket_id): the serving order


class _Step:
    """Collects what one input produced: events (numbered per ticket), the tickets it touched
    (one snapshot each, the last) and the cycles it changed."""

    __slots__ = ("cycles", "dead_letters", "estimates", "events", "tickets")

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.tickets: dict[str, Ticket] = {}
        self.cycles: dict[tuple[str, str, int], CycleState] = {}
        self.dead_letters: list[DeadLetter] = []
        self.estimates: dict[tuple[str, str], float] = {}

    def output(self) -> Output:
        return Output(
            events=tuple(self.events),
            tickets=tuple(t.snapshot() for t in self.tickets.values()),
            cycles=tuple(self.cycles.values()),
            dead_letters=tuple(self.dead_letters),
            estimates=tuple((c, p, s) for (c, p), s in self.estimates.items()),
        )


class Desk:
    """The ticket processor. One instance per state scope (the whole input locally, a
    partition's keys under Faust)."""

    def __init__(
        self,
        rules: Rules,
        pseudo: Pseudonymizer,
        masker: Masker,
        stores: DeskStores | None = None,
        sla: SlaBook | None = None,
    ) -> None:
        self.rules = rules
        self._pseudo = pseudo
        self._masker = masker
        self.stores = stores if stores is not None else DeskStores()
        self._classifier = Classifier(rules)
        self._assigner = Assigner(rules)
        self.assignments: AssignerState = self._assigner.initial()
        self.customers = CustomerDirectory(pseudo, self.stores.profiles, self.stores.identities)
        self.threads = ThreadIndex(pseudo, self.stores.message_ids)
        self.sla = sla if sla is not None else SlaBook(rules)
        self.promises = PromiseBook(rules, self.stores.promise_history, self.stores.promises)
        self.incidents = IncidentBook(
            rules.incidents, self.stores.incidents, self.stores.incident_openings
        )
        self._reporting_tz = ZoneInfo(rules.reporting_timezone)
        # Per queue, the waiting tickets in serving order; built from stores.waiting on first
        # use (after a restart the stores are what was committed).
        self._wait_index: dict[str, list[_WaitKey]] | None = None

    @property
    def language_detector(self) -> LanguageDetector:
        """The detector of opening contacts' languages (a replay hands it what its parse
        worker detected: ``LanguageDetector.known``)."""
        return self._classifier.languages

    # ---------------------------------------------------------------------------------------
    # Time
    # ---------------------------------------------------------------------------------------

    def advance(self, now: Millis, *, inclusive: bool) -> Output:
        """Fire the SLA timers due before ``now`` (or at it, when ``inclusive``). The runner
        calls this with ``inclusive=False`` before applying a record at ``now`` (records at an
        instant are applied before timers of that instant fire, CONTRACT §3) and with
        ``inclusive=True`` when event time moves past ``now`` with no record."""
        step = _Step()
        limit = now if inclusive else now - 1
        # SLA, promise and incident timers in one instant order; at one instant the SLA's
        # first, then broken promises, then incidents closing.
        while True:
            pending = [
                t
                for t in (
                    self.sla.next_timer(),
                    self.promises.next_timer(),
                    self.incidents.next_timer(),
                )
                if t is not None
            ]
            if not pending or min(pending) > limit:
                break
            instant = min(pending)
            for ticket_id, effects in self.sla.advance(instant, inclusive=True):
                ticket = self.stores.tickets[ticket_id]
                self._sla_effects(step, ticket, effects)
            for at, ticket_id in self.promises.due(instant):
                self._promise_broken(step, self.stores.tickets[ticket_id], at)
            for incident in self.incidents.due(instant):
                self._incident_event(step, incident, "incident.closed")
        return step.output()

    # ---------------------------------------------------------------------------------------
    # Inputs
    # ---------------------------------------------------------------------------------------

    def handle(self, item: Contact | AgentAction | SurveyAnswer | CrmUpsert | QaReview) -> Output:
        step = _Step()
        if isinstance(item, Contact):
            self._contact(step, item)
        elif isinstance(item, AgentAction):
            self._agent(step, item)
        elif isinstance(item, SurveyAnswer):
            self._survey(step, item)
        elif isinstance(item, QaReview):
            self._qa(step, item)
        else:
            self._crm(step, item)
        return step.output()

    def refuses(self, item: Parsed) -> bool:
        """Whether ``handle`` would dead-letter ``item`` whatever time it is applied at: an
        agent or survey record naming a conversation that has no ticket (timers never open
        one). The runners ask before moving event time, because a dead letter moves none
        (CONTRACT §1). A ``qa`` review is refused for an unknown ticket or criterion (§7)."""
        if isinstance(item, AgentAction | SurveyAnswer) and item.conversation_id:
            return item.conversation_id not in self.stores.latest
        if isinstance(item, QaReview):
            return self._qa_refusal(item) != ""
        return False

    def _contact(self, step: _Step, contact: Contact) -> None:
        conversation_id = contact.conversation_id
        if contact.threading is not None:
            conversation_id = self.threads.conversation_of(contact.threading)
            self.threads.remember(contact.threading.message_id, conversation_id)
        customer = self.customers.resolve(contact.identities, fallback=conversation_id)
        message_key = f"{contact.channel}\x1f{contact.channel_message_id}"
        data: dict[str, Any] = {
            "channel": contact.channel,
            "message_id": self._pseudo.h(contact.channel_message_id),
            "sender": customer.sender,
            "subject": self._masker.mask(contact.subject),
            "text": self._masker.mask(contact.body),
            "call_status": contact.call_status,
            "duplicate": False,
        }

        latest_id = self.stores.latest.get(conversation_id)
        latest = self.stores.tickets.get(latest_id) if latest_id else None
        if message_key in self.stores.seen and latest is not None:
            # A redelivery (a webhook retried, a mail fetched twice): recorded, counted nowhere.
            data["duplicate"] = True
            ticket = self._emit(step, latest, "contact.received", contact.at, data)
            self._put(step, ticket, changed=False)
            return
        self.stores.seen[message_key] = conversation_id

        if latest is None or (
            latest.status == "solved"
            and latest.solved_at is not None
            and contact.at - latest.solved_at > self.rules.reopen_within_ms
        ):
            number = 1 if latest is None else latest.number + 1
            ticket = self._open(step, contact, conversation_id, number, customer, data)
        else:
            ticket = self._emit(step, latest, "contact.received", contact.at, data)
            ticket = replace(ticket, inbound_count=ticket.inbound_count + 1)
            if ticket.status == "solved":
                ticket = self._reopen(step, ticket, contact.at, "open", by="customer")
            elif ticket.status == "pending":
                ticket = self._set_status(step, ticket, contact.at, "open", by="customer")
            ticket = self._sla_effects(step, ticket, self.sla.inbound(ticket.ticket_id, contact.at))
            self._put(step, ticket, at=contact.at)

        if contact.call_status == "answered":
            # An answered call is the contact followed at the same instant by a public reply.
            self._reply(step, ticket, contact.at, contact.call_agent_id, message_id="")

    def _open(
        self,
        step: _Step,
        contact: Contact,
        conversation_id: str,
        number: int,
        customer: Resolved,
        received: dict[str, Any],
    ) -> Ticket:
        decided = self._classifier.classify(
            contact.channel,
            contact.subject,
            contact.body,
            customer.tier,
            masked=f"{received['subject']}\n{received['text']}",
        )
        policy = decided.sla_policy
        at = contact.at
        ticket = Ticket(
            ticket_id=f"{conversation_id}#{number}",
            conversation_id=conversation_id,
            number=number,
            customer_id=customer.customer_id,
            tier=customer.tier,
            channel=contact.channel,
            category=decided.category,
            kind=decided.kind,
            priority=decided.priority,
            queue=decided.queue,
            sla_policy=decided.sla_policy_name,
            opened_at=at,
            opened_day=self._day(at),
            updated_at=at,
            sample_key=self._pseudo.h(f"{conversation_id}#{number}"),
            language=decided.language,
            required_skills=tuple(sorted(decided.required_skills)),
            preferred_skills=tuple(sorted(decided.preferred_skills)),
        )
        self.stores.latest[conversation_id] = ticket.ticket_id
        ticket = self._emit(step, ticket, "contact.received", at, received)
        classification = {
            "channel": ticket.channel,
            "tier": ticket.tier,
            "category": ticket.category,
            "kind": ticket.kind,
            "priority": ticket.priority,
            "queue": ticket.queue,
            "sla_policy": ticket.sla_policy,
            "language": ticket.language,
        }
        skills = {
            "required_skills": ",".join(ticket.required_skills),
            "preferred_skills": ",".join(ticket.preferred_skills),
        }
        ticket = self._emit(
            step, ticket, "ticket.opened", at, {"number": number, **classification, **skills}
        )
        ticket = self._acknowledge(step, ticket, at)
        ticket = self._emit(step, ticket, "contact.categorized", at, classification)
        self.assignments, agent = self._pick(ticket)
        if not agent:
            ticket = self._start_waiting(step, ticket, at, "no_agent")
        else:
            ticket = self._emit(
                step,
                ticket,
                "ticket.assigned",
                at,
                {"agent_id": agent, "previous_agent_id": "", "handoff": False, "by": "rules"},
            )
            ticket = replace(ticket, agent_id=agent)
        if policy is not None:
            ticket = self._sla_effects(step, ticket, self.sla.open(ticket.ticket_id, policy, at))
        self._put(step, ticket, at=at)
        self._incident_opening(step, step.tickets[ticket.ticket_id])
        return step.tickets[ticket.ticket_id]

    def _agent(self, step: _Step, action: AgentAction) -> None:
        if action.type == "presence":
            self._presence(step, action)
            return
        ticket = self._latest(step, action.conversation_id, action.at, "agent", action.ref)
        if ticket is None:
            return
        at = action.at
        if action.type == "reply" and action.public:
            self._reply(step, ticket, at, action.agent_id, action.message_id)
        elif action.type in ("reply", "note"):
            if action.message_id:
                self.threads.remember(action.message_id, ticket.conversation_id)
            data = {
                "agent_id": action.agent_id,
                "public": False,
                "type": action.type,
                "message_id": self._pseudo.h(action.message_id) if action.message_id else "",
                "first": False,
            }
            ticket = self._emit(step, ticket, "agent.replied", at, data)
            self._put(step, ticket, changed=False)
        elif action.type == "status":
            self._agent_status(step, ticket, at, action.status, action.agent_id)
        else:
            self._assign(step, ticket, at, action.agent_id)

    def _reply(
        self, step: _Step, ticket: Ticket, at: Millis, agent_id: str, message_id: str
    ) -> None:
        if message_id:
            self.threads.remember(message_id, ticket.conversation_id)
        data = {
            "agent_id": agent_id,
            "public": True,
            "type": "reply",
            "message_id": self._pseudo.h(message_id) if message_id else "",
            "first": ticket.first_reply_at is None,
        }
        ticket = self._emit(step, ticket, "agent.replied", at, data)
        first = ticket.first_reply_at is None
        ticket = replace(
            ticket,
            replies=tally_reply(ticket.replies, agent_id, ticket.seq),
            agent_reply_count=ticket.agent_reply_count + 1,
            first_reply_at=ticket.first_reply_at if ticket.first_reply_at is not None else at,
        )
        if first:
            ticket = self._promise_answered(step, ticket, at)
        if ticket.status == "new":
            ticket = self._set_status(step, ticket, at, "open", by=agent_id)
        ticket = self._sla_effects(step, ticket, self.sla.public_reply(ticket.ticket_id, at))
        self._put(step, ticket, at=at)

    def _agent_status(
        self, step: _Step, ticket: Ticket, at: Millis, status: str, agent_id: str
    ) -> None:
        if status == ticket.status:
            return
        freed = ""
        if ticket.status == "solved":
            ticket = self._reopen(step, ticket, at, status, by=agent_id)
        elif status == "solved":
            ticket = self._emit(
                step, ticket, "ticket.solved", at, {"by": agent_id, "from_status": ticket.status}
            )
            ticket = replace(ticket, status="solved", solved_at=at, solved_by=agent_id)
            ticket = self._stop_waiting(step, ticket, at, "solved", "")
            if ticket.agent_id:
                self.assignments = self._assigner.release(self.assignments, ticket.agent_id)
                freed = ticket.agent_id
            ticket = self._sla_effects(step, ticket, self.sla.status(ticket.ticket_id, at, status))
        else:
            ticket = self._set_status(step, ticket, at, status, by=agent_id)
        self._put(step, ticket, at=at)
        if freed:
            # The solve gave its agent room: the waiting tickets of their queues are served.
            self._serve(step, at, self._assigner.queues_of(freed))

    def _assign(self, step: _Step, ticket: Ticket, at: Millis, agent_id: str) -> None:
        previous = ticket.agent_id
        if agent_id == previous:
            return
        handoff = previous != ""
        ticket = self._stop_waiting(step, ticket, at, "assigned", agent_id)
        ticket = self._emit(
            step,
            ticket,
            "ticket.assigned",
            at,
            {
                "agent_id": agent_id,
                "previous_agent_id": previous,
                "handoff": handoff,
                "by": agent_id,
            },
        )
        ticket = replace(
            ticket, agent_id=agent_id, handoff_count=ticket.handoff_count + int(handoff)
        )
        released = ""
        if ticket.status != "solved":
            if previous:
                self.assignments = self._assigner.release(self.assignments, previous)
                released = previous
            self.assignments = self._assigner.take(self.assignments, agent_id)
        self._put(step, ticket, at=at)
        if released:
            # A handoff away gives the previous agent room.
            self._serve(step, at, self._assigner.queues_of(released))

    # ---------------------------------------------------------------------------------------
    # Presence and waiting tickets (CONTRACT §7)
    # ---------------------------------------------------------------------------------------

    def _presence(self, step: _Step, action: AgentAction) -> None:
        agent, status, at = action.agent_id, action.status, action.at
        previous = self.stores.presence.get(agent, "online")
        if status == "online":
            if agent in self.stores.presence:
                del self.stores.presence[agent]
        else:
            self.stores.presence[agent] = status
        released: list[Ticket] = []
        if status == "offline":
            held = [tid for tid, holder in self.stores.held_new.items() if holder == agent]
            released = sorted(
                (self.stores.tickets[tid] for tid in held), key=lambda t: _wait_key(t)
            )
        key = f"{AGENT_SEQ_PREFIX}{agent}"
        seq = self.stores.customer_seq.get(key, 0) + 1
        self.stores.customer_seq[key] = seq
        step.events.append(
            DomainEvent(
                event_id=event_id(f"agent:{agent}", seq),
                event_type="agent.presence_changed",
                at=at,
                ticket_id="",
                conversation_id="",
                customer_id="",
                data={
                    "agent_id": agent,
                    "status": status,
                    "previous_status": previous,
                    "released_tickets": len(released),
                },
            )
        )
        queues = list(self._assigner.queues_of(agent))
        for ticket in released:
            # Still `new`: nobody answered yet, so the customer loses nothing by another agent
            # taking it. No handoff is counted (CONTRACT §7).
            ticket = self._emit(
                step,
                ticket,
                "ticket.assigned",
                at,
                {"agent_id": "", "previous_agent_id": agent, "handoff": False, "by": "presence"},
            )
            ticket = replace(ticket, agent_id="")
            self.assignments = self._assigner.release(self.assignments, agent)
            ticket = self._start_waiting(step, ticket, at, "agent_offline", previous_agent=agent)
            self._put(step, ticket, at=at)
            queues.append(ticket.queue)
        self._serve(step, at, queues)

    def _pick(self, ticket: Ticket) -> tuple[AssignerState, str]:
        return self._assigner.assign(
            self.assignments,
            ticket.queue,
            required=ticket.required_skills,
            preferred=ticket.preferred_skills,
            unavailable=self.stores.presence,
        )

    def _index(self) -> dict[str, list[_WaitKey]]:
        if self._wait_index is None:
            index: dict[str, list[_WaitKey]] = {}
            for ticket_id in self.stores.waiting:
                ticket = self.stores.tickets[ticket_id]
                index.setdefault(ticket.queue, []).append(_wait_key(ticket))
            for keys in index.values():
                keys.sort()
            self._wait_index = index
        return self._wait_index

    def _start_waiting(
        self, step: _Step, ticket: Ticket, at: Millis, reason: str, *, previous_agent: str = ""
    ) -> Ticket:
        """The ticket waits in its queue, if its queue is one that waits (an agent is listed
        for it and ``assignment`` is not ``none``)."""
        if not self._assigner.serves(ticket.queue) or ticket.ticket_id in self.stores.waiting:
            return ticket
        ticket = self._emit(
            step,
            ticket,
            "ticket.waiting_started",
            at,
            {
                "queue": ticket.queue,
                "priority": ticket.priority,
                "reason": reason,
                "previous_agent_id": previous_agent,
                "required_skills": ",".join(ticket.required_skills),
            },
        )
        index = self._index()  # built before the store changes, so it holds no duplicate
        self.stores.waiting[ticket.ticket_id] = at
        bisect.insort(index.setdefault(ticket.queue, []), _wait_key(ticket))
        return ticket

    def _stop_waiting(
        self,
        step: _Step,
        ticket: Ticket,
        at: Millis,
        reason: str,
        agent_id: str,
        *,
        unindex: bool = True,
    ) -> Ticket:
        """The ticket leaves its queue. ``unindex`` false: the caller is walking the serving
        order and takes the ticket out of it afterwards (``_serve``)."""
        since = self.stores.waiting.get(ticket.ticket_id)
        if since is None:
            return ticket
        if unindex:
            self._unindex(ticket.queue, [_wait_key(ticket)])
        del self.stores.waiting[ticket.ticket_id]
        return self._emit(
            step,
            ticket,
            "ticket.waiting_stopped",
            at,
            {
                "queue": ticket.queue,
                "priority": ticket.priority,
                "reason": reason,
                "agent_id": agent_id,
                "waiting_since": since,
                "waited_seconds": (at - since) / 1000,
            },
        )

    def _serve(self, step: _Step, at: Millis, queues: Iterable[str]) -> None:
        """Serve the waiting tickets of ``queues`` at ``at``, in order, while any has a
        candidate (see the module docstring)."""
        served = [q for q in dict.fromkeys(queues) if self._assigner.serves(q)]
        index = self._index()
        lists = [index[q] for q in served if index.get(q)]
        if not lists:
            return
        presence = self.stores.presence
        taken: dict[str, list[_WaitKey]] = {}
        # Walked lazily, in order; the lists change only after the walk, so it usually ends
        # after a few tickets (when nobody has room any more), however long the queues are.
        for key in heapq.merge(*lists):
            if not self._assigner.anyone_free(self.assignments, served, presence):
                break
            ticket = self.stores.tickets[key[2]]
            state, agent = self._pick(ticket)
            if not agent:
                continue
            self.assignments = state
            taken.setdefault(ticket.queue, []).append(key)
            ticket = self._stop_waiting(step, ticket, at, "assigned", agent, unindex=False)
            ticket = self._emit(
                step,
                ticket,
                "ticket.assigned",
                at,
                {"agent_id": agent, "previous_agent_id": "", "handoff": False, "by": "rules"},
            )
            ticket = replace(ticket, agent_id=agent)
            self._put(step, ticket, at=at)
        for queue, keys in taken.items():
            self._unindex(queue, keys)

    def _unindex(self, queue: str, keys: list[_WaitKey]) -> None:
        waiting = self._index().get(queue, [])
        for key in keys:
            position = bisect.bisect_left(waiting, key)
            if position < len(waiting) and waiting[position] == key:
                del waiting[position]

    def _survey(self, step: _Step, answer: SurveyAnswer) -> None:
        ticket = self._latest(step, answer.conversation_id, answer.at, "survey", answer.ref)
        if ticket is None:
            return
        # Attributed to the agent of the latest public reply before it, not the assignee (§7).
        replied_last = max(ticket.replies, key=lambda entry: entry[2], default=("", 0, 0))[0]
        ticket = self._emit(
            step,
            ticket,
            "survey.answered",
            answer.at,
            {"kind": answer.kind, "score": answer.score, "agent_id": replied_last},
        )
        if answer.kind == "csat":
            ticket = replace(ticket, csat=answer.score)
        else:
            ticket = replace(ticket, nps=answer.score)
        self._put(step, ticket, at=answer.at)

    def _qa(self, step: _Step, review: QaReview) -> None:
        """A quality review (CONTRACT §7): of a known ticket, on the scorecard's criteria."""
        ticket = self.stores.tickets.get(review.ticket_id)
        reason = self._qa_refusal(review)
        if ticket is None or reason:
            step.dead_letters.append(
                DeadLetter(at=review.at, source="qa", reason=reason, record="", ref=review.ref)
            )
            return
        verdict = score_review(self.rules.qa, review.scores)
        scores = json.dumps(dict(review.scores), sort_keys=True, separators=(",", ":"))
        data = {
            "reviewer_id": review.reviewer_id,
            "agent_id": most_active(ticket.replies),
            "quality": verdict.quality,
            "critical_failed": verdict.critical_failed,
            "scores": scores,
            "comment": self._masker.mask(review.comment),
            # Orders two reviews of one instant: the later in the input replaces the earlier.
            "sequence": ticket.seq + 1,
        }
        ticket = self._emit(step, ticket, "qa.reviewed", review.at, data)
        self._put(step, ticket, changed=False)

    def _qa_refusal(self, review: QaReview) -> str:
        """Why the desk dead-letters ``review``, or ``""``."""
        if review.ticket_id not in self.stores.tickets:
            return f"unknown ticket {review.ticket_id!r}"
        if unknown := unknown_criteria(self.rules.qa, review.scores):
            listed = ", ".join(c.name for c in self.rules.qa.scorecard) or "none"
            named = ", ".join(repr(name) for name in unknown)
            return f"unknown criterion {named} (the rules' qa.scorecard lists: {listed})"
        return ""

    def _crm(self, step: _Step, record: CrmUpsert) -> None:
        profile = self.customers.upsert(record)
        seq = self.stores.customer_seq.get(profile.customer_id, 0) + 1
        self.stores.customer_seq[profile.customer_id] = seq
        identities = ",".join(sorted(self.customers.sender(i) for i in profile.identities))
        step.events.append(
            DomainEvent(
                event_id=event_id(f"customer:{profile.customer_id}", seq),
                event_type="customer.upserted",
                at=record.at,
                ticket_id="",
                conversation_id="",
                customer_id=profile.customer_id,
                data={
                    "tier": profile.tier,
                    "status": profile.status,
                    "mrr": profile.mrr,
                    "identities": identities,
                },
            )
        )

    # ---------------------------------------------------------------------------------------
    # Transitions shared by several inputs
    # ---------------------------------------------------------------------------------------

    def _set_status(self, step: _Step, ticket: Ticket, at: Millis, status: str, by: str) -> Ticket:
        ticket = self._emit(
            step,
            ticket,
            "ticket.status_changed",
            at,
            {"from_status": ticket.status, "to_status": status, "by": by},
        )
        ticket = replace(ticket, status=status)
        return self._sla_effects(step, ticket, self.sla.status(ticket.ticket_id, at, status))

    def _reopen(self, step: _Step, ticket: Ticket, at: Millis, status: str, by: str) -> Ticket:
        """A solved ticket comes back: ``status`` is ``open`` (an inbound contact or an agent)
        or ``pending`` (an agent). Resolution resumes or stays paused; no response cycle
        starts here (an inbound contact starts one itself, through ``SlaBook.inbound``)."""
        solved_at = ticket.solved_at if ticket.solved_at is not None else at
        ticket = self._emit(
            step,
            ticket,
            "ticket.reopened",
            at,
            {
                "reopen_count": ticket.reopen_count + 1,
                "to_status": status,
                "by": by,
                "solved_at": solved_at,
                "solved_by": ticket.solved_by,
            },
        )
        ticket = replace(ticket, status=status, reopen_count=ticket.reopen_count + 1)
        if ticket.agent_id:
            self.assignments = self._assigner.take(self.assignments, ticket.agent_id)
        return self._sla_effects(step, ticket, self.sla.reopen(ticket.ticket_id, at, status))

    def _latest(
        self, step: _Step, conversation_id: str, at: Millis, source: str, ref: str
    ) -> Ticket | None:
        ticket_id = self.stores.latest.get(conversation_id)
        if ticket_id is None:
            step.dead_letters.append(
                DeadLetter(
                    at=at,
                    source=source,
                    reason=f"conversation {conversation_id!r} has no ticket",
                    record="",
                    ref=ref,
                )
            )
            return None
        return self.stores.tickets[ticket_id]

    def _emit(
        self, step: _Step, ticket: Ticket, event_type: str, at: Millis, data: dict[str, Any]
    ) -> Ticket:
        seq = ticket.seq + 1
        step.events.append(
            DomainEvent(
                event_id=event_id(ticket.ticket_id, seq),
                event_type=event_type,
                at=at,
                ticket_id=ticket.ticket_id,
                conversation_id=ticket.conversation_id,
                customer_id=ticket.customer_id,
                data=data,
            )
        )
        ticket = ticket.with_seq(seq)
        self.stores.tickets[ticket.ticket_id] = ticket
        return ticket

    def _sla_effects(self, step: _Step, ticket: Ticket, effects: SlaOutput) -> Ticket:
        for effect in effects.events:
            ticket = self._emit(step, ticket, effect.event_type, effect.at, effect.data)
            if (
                effect.event_type == "sla.cycle_fulfilled"
                and effect.data["metric"] == FIRST_RESPONSE
            ):
                # One more fulfilled first response for the promises of this channel/policy.
                self.promises.first_response_fulfilled(
                    ticket.channel,
                    ticket.sla_policy,
                    ticket.ticket_id,
                    effect.at,
                    round(effect.data["business_seconds"] * 1000),
                )
                # What the next promise of this channel and policy would use now (§6 gauge).
                estimate = self.promises.next_estimate(ticket.channel, ticket.sla_policy)
                if estimate is not None:
                    step.estimates[(ticket.channel, ticket.sla_policy)] = estimate / 1000
        for cycle in effects.cycles:
            step.cycles[(cycle.ticket_id, cycle.metric, cycle.cycle)] = cycle
        return ticket

    # ---------------------------------------------------------------------------------------
    # Promises and incidents (CONTRACT §7)
    # ---------------------------------------------------------------------------------------

    def _acknowledge(self, step: _Step, ticket: Ticket, at: Millis) -> Ticket:
        """The ticket's promise, right after ``ticket.opened``."""
        promise = self.promises.promise(ticket.ticket_id, ticket.channel, ticket.sla_policy, at)
        if promise is None:
            return ticket
        ticket = self._emit(
            step,
            ticket,
            "ticket.acknowledged",
            at,
            {
                "channel": ticket.channel,
                "policy": ticket.sla_policy,
                "promised_by": promise.promised_by,
                "estimate_seconds": promise.estimate_ms / 1000,
                "basis": promise.basis,
                "samples": promise.samples,
            },
        )
        return replace(
            ticket,
            promised_by=promise.promised_by,
            promise_estimate_ms=promise.estimate_ms,
            promise_basis=promise.basis,
        )

    def _promise_answered(self, step: _Step, ticket: Ticket, at: Millis) -> Ticket:
        answered = self.promises.first_reply(ticket.ticket_id, at)
        if answered is None:
            return ticket
        outcome, promised_by = answered
        return self._promise_outcome(step, ticket, at, outcome, promised_by, replied_at=at)

    def _promise_broken(self, step: _Step, ticket: Ticket, at: Millis) -> None:
        """``promised_by`` passed without a public reply."""
        ticket = self._promise_outcome(step, ticket, at, "broken", at, replied_at=None)
        self._put(step, ticket, at=at)

    def _promise_outcome(
        self,
        step: _Step,
        ticket: Ticket,
        at: Millis,
        outcome: str,
        promised_by: Millis,
        *,
        replied_at: Millis | None,
    ) -> Ticket:
        ticket = self._emit(
            step,
            ticket,
            f"promise.{outcome}",
            at,
            {
                "channel": ticket.channel,
                "policy": ticket.sla_policy,
                "promised_by": promised_by,
                "replied_at": replied_at,
            },
        )
        return replace(ticket, promise_outcome=outcome)

    def _incident_opening(self, step: _Step, ticket: Ticket) -> None:
        """Detection at an opening: the ticket may open an incident (with the tickets of the
        window) or join the open one."""
        found = self.incidents.opening(
            ticket.category, ticket.opened_at, ticket.customer_id, ticket.ticket_id
        )
        incident = found.incident
        if incident is None:
            return
        if found.opened:
            incident = self._incident_event(step, incident, "incident.opened")
            for other_id in found.earlier:
                self._join(step, self.stores.tickets[other_id], incident, ticket.opened_at)
        self._join(step, self.stores.tickets[ticket.ticket_id], incident, ticket.opened_at)

    def _join(self, step: _Step, ticket: Ticket, incident: Incident, at: Millis) -> None:
        if ticket.incident_id:
            return  # a ticket belongs to the first incident it joined
        ticket = self._emit(step, ticket, "incident.joined", at, incident.data())
        self._put(step, replace(ticket, incident_id=incident.incident_id), at=at)

    def _incident_event(self, step: _Step, incident: Incident, event_type: str) -> Incident:
        """An incident-level event (``incident.opened``, ``incident.closed``): numbered by
        the incident and belonging to no ticket (its tickets carry ``incident.joined``)."""
        if event_type == "incident.opened":
            incident = self.incidents.bump_seq(incident)
        at = incident.closed_at if incident.closed_at is not None else incident.opened_at
        step.events.append(
            DomainEvent(
                event_id=event_id(f"incident:{incident.incident_id}", incident.seq),
                event_type=event_type,
                at=at,
                ticket_id="",
                conversation_id="",
                customer_id="",
                data=incident.data(),
            )
        )
        return incident

    def _put(self, step: _Step, ticket: Ticket, *, at: Millis = 0, changed: bool = True) -> None:
        """Store the ticket; a change bumps its version and queues one snapshot for this step."""
        if changed:
            previous = step.tickets.get(ticket.ticket_id)
            stored = self.stores.tickets.get(ticket.ticket_id)
            base_version = stored.version if stored is not None else 0
            if previous is None:
                ticket = replace(ticket, version=base_version + 1, updated_at=at)
            else:
                ticket = replace(ticket, version=previous.version, updated_at=at)
            step.tickets[ticket.ticket_id] = ticket
            held = self.stores.held_new
            if ticket.status == "new" and ticket.agent_id:
                if held.get(ticket.ticket_id) != ticket.agent_id:
                    held[ticket.ticket_id] = ticket.agent_id
            elif ticket.ticket_id in held:
                del held[ticket.ticket_id]
        self.stores.tickets[ticket.ticket_id] = ticket

    def _day(self, at: Millis) -> str:
        local = dt.datetime.fromtimestamp(at / 1000, tz=dt.UTC).astimezone(self._reporting_tz)
        return local.date().isoformat()


def _wait_key(ticket: Ticket) -> _WaitKey:
    """The serving order of waiting tickets: priority name in text order (P1 before P2), then
    the opening instant, then the ticket id (CONTRACT §7)."""
    return (ticket.priority, ticket.opened_at, ticket.ticket_id)

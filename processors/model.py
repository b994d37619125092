"""The domain's vocabulary: instants, the inputs the processors accept and the records they emit.

Everything here is plain data. Instants are integers: milliseconds since the Unix epoch, UTC
(``Millis``), because the SLA rules are exact to the millisecond and integers compare, hash and
serialise without surprises. Conversions to and from ``datetime`` live at the edges
(``processors.timeutil``).

The flow through the processors is::

    RawRecord --parse--> Contact | AgentAction | SurveyAnswer | CrmUpsert | QaReview
                         | Ignored | DeadLetter
              --desk---> DomainEvent* + TicketState* + CycleState*

``DomainEvent`` rows go to the ``events`` table (and the domain-events topic); ``TicketState`` and
``CycleState`` are snapshots of the aggregates after a change, written to the current-state tables
``tickets`` and ``sla_metrics`` (ReplacingMergeTree on ``version``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

Millis = int
"""An instant: milliseconds since 1970-01-01T00:00:00Z."""

_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")

SOURCES: tuple[str, ...] = (
    "telegram",
    "whatsapp",
    "email",
    "chat",
    "form",
    "vk",
    "phone",
    "agent",
    "survey",
    "crm",
    "qa",
)
"""Every value of the input record's ``source`` key (CONTRACT §1)."""

CHANNELS: tuple[str, ...] = ("telegram", "whatsapp", "email", "chat", "form", "vk", "phone")
"""Sources whose records are customer contacts."""

Tier = Literal["prospect", "active", "vip"]
TIERS: tuple[str, ...] = ("prospect", "active", "vip")
TicketStatus = Literal["new", "open", "pending", "solved"]
IdentityKind = Literal["email", "phone", "telegram", "whatsapp", "vk"]
IDENTITY_KINDS: tuple[str, ...] = ("email", "phone", "telegram", "whatsapp", "vk")


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as it reached the system (a JSON Lines line, or a raw-topic message).

    ``ref`` identifies the record's position in its stream (``"input.jsonl:17"`` or
    ``"raw-contacts/3/1042"``); it names dead letters deterministically. ``text`` is the original
    line, kept so a record that cannot be understood can be dead-lettered as it came.
    """

    at: Millis
    source: str
    payload: Any
    ref: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """One way of recognising a person, normalised: e-mail lower-cased, phone as ``+digits``,
    telegram / vk user ids as decimal text, whatsapp ``wa_id`` as sent."""

    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class EmailThreading:
    """What an e-mail says about its place in a thread. Ids are normalised: angle brackets
    removed, lower-cased. The conversation is decided by the threading processor, which knows
    the ids seen before (CONTRACT §1, Conversations)."""

    message_id: str
    references: tuple[str, ...]
    in_reply_to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Contact:
    """An inbound customer contact on one channel, already parsed.

    ``conversation_id`` is final for every channel except e-mail, where it is empty and
    ``threading`` is set instead. ``identities`` are in the contract's order of trial: the
    channel's sender first, then the e-mail, then the phone given in a chat or form.
    ``channel_message_id`` is the channel's own id of this message (Telegram
    ``chat_id:message_id``, WhatsApp ``wamid``, e-mail Message-ID, ...), used to recognise a
    redelivery; it may be personal and is hashed before it leaves the processors.
    """

    at: Millis
    channel: str
    conversation_id: str
    identities: tuple[Identity, ...]
    subject: str
    body: str
    channel_message_id: str
    threading: EmailThreading | None = None
    call_status: str = ""  # phone only: answered | missed | voicemail
    call_agent_id: str = ""  # phone only: the agent who answered
    ref: str = ""


@dataclass(frozen=True, slots=True)
class AgentAction:
    """A record from the agents' desk (CONTRACT §1 ``agent``). A ``presence`` record names no
    conversation (``conversation_id`` is empty) and says in ``status`` whether the agent is
    ``online``, ``away`` or ``offline`` (CONTRACT §7)."""

    at: Millis
    type: Literal["reply", "note", "status", "assign", "presence"]
    conversation_id: str
    agent_id: str
    status: str = ""  # status: open | pending | solved; presence: online | away | offline
    public: bool = True  # for type == "reply"
    message_id: str = ""  # normalised Message-ID of an e-mail reply, "" otherwise
    ref: str = ""


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    at: Millis
    conversation_id: str
    kind: Literal["csat", "nps"]
    score: int
    ref: str = ""


@dataclass(frozen=True, slots=True)
class CrmUpsert:
    """A customer profile; it replaces the whole previous profile from ``at`` on."""

    at: Millis
    customer_id: str
    tier: Tier
    identities: tuple[Identity, ...]
    mrr: float | None = None
    status: str = "active"  # active | churned
    ref: str = ""


@dataclass(frozen=True, slots=True)
class QaReview:
    """A quality review of a ticket (CONTRACT §1 ``qa``, §7). ``scores`` maps each criterion
    named to its score in 0..1, or ``None`` for not applicable, in the record's order."""

    at: Millis
    ticket_id: str
    reviewer_id: str
    scores: tuple[tuple[str, float | None], ...]
    comment: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A record that is understood and deliberately not a contact (a Telegram edit, a WhatsApp
    status, a VK ``group_join``...). Acknowledged, counted, not a dead letter."""

    at: Millis
    source: str
    reason: str
    ref: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be understood, with the reason. ``record`` is the offending
    record's text, already redacted (PII masked).

    Its text is made storable where it is built: a lone surrogate (half of a UTF-16 pair that
    JSON can escape but no UTF-8 text can hold) in ``reason``, ``record`` or ``ref`` becomes
    U+FFFD, so the dead letter always encodes (Avro, the warehouse insert) and never stops
    the run that reports it (docs/DEAD_LETTERS.md)."""

    at: Millis
    source: str
    reason: str
    record: str
    ref: str = ""

    def __post_init__(self) -> None:
        for name in ("source", "reason", "record", "ref"):
            text = getattr(self, name)
            if _SURROGATE.search(text):
                object.__setattr__(self, name, _SURROGATE.sub("\ufffd", text))


Parsed = Contact | AgentAction | SurveyAnswer | CrmUpsert | QaReview | Ignored | DeadLetter

_FIELD_NAMES: Final[dict[type, tuple[str, ...]]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order, read once per class: how the codecs of parsed items
    (``streams.intake``, ``streams.parse_pool``) walk them, a compiled class
    (``processors.native``) having no ``__slots__`` to read them from."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One fact the processors established. ``data`` holds the event type's own fields (plain
    JSON-compatible values; instants as ``Millis``); ``schemas/`` declares them per type.
    ``event_id`` is deterministic: the same input processed again yields the same ids."""

    event_id: str
    event_type: str
    at: Millis
    ticket_id: str
    conversation_id: str
    customer_id: str
    data: dict[str, Any] = field(default_factory=dict)

    # Written out, not generated by @dataclass, as ``processors.desk.Ticket``'s (compiled, a
    # direct store per field); tests/processors/test_native_inits.py holds it to the fields.
    def __init__(
        self,
        event_id: str,
        event_type: str,
        at: Millis,
        ticket_id: str,
        conversation_id: str,
        customer_id: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        object.__setattr__(self, "event_id", event_id)
        object.__setattr__(self, "event_type", event_type)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "ticket_id", ticket_id)
        object.__setattr__(self, "conversation_id", conversation_id)
        object.__setattr__(self, "customer_id", customer_id)
        object.__setattr__(self, "data", {} if data is None else data)


@dataclass(frozen=True, slots=True)
class TicketState:
    """A ticket as the ``tickets`` table shows it (CONTRACT §4), plus ``version`` (increases with
    every change of the ticket; the ReplacingMergeTree version) and a few helpful extras."""

    ticket_id: str
    conversation_id: str
    customer_id: str
    channel: str
    category: str
    kind: str
    priority: str
    queue: str
    agent_id: str
    status: str
    sla_policy: str
    opened_at: Millis
    solved_at: Millis | None
    reopen_count: int
    handoff_count: int
    inbound_count: int
    agent_reply_count: int
    csat: int | None
    nps: int | None
    tier: str
    opened_day: str  # YYYY-MM-DD in the rules' reporting_timezone
    first_reply_at: Millis | None
    updated_at: Millis
    version: int
    # CONTRACT §7: the first-response promise (None / "" without one) and the incident the
    # ticket belongs to ("" if none).
    promised_by: Millis | None = None
    promise_estimate_seconds: float | None = None
    promise_basis: str = ""  # history | target
    promise_outcome: str = ""  # kept | broken; "" while pending or without a promise
    incident_id: str = ""
    most_active_agent: str = ""  # CONTRACT §7: most public replies, a tie to the latest
    sample_key: str = ""  # h(ticket_id), the QA sample's order
    language: str = "und"  # CONTRACT §7: ISO 639-1 code of the opening contact, or und

    # Written out, not generated by @dataclass, as ``processors.desk.Ticket``'s (compiled, a
    # direct store per field); tests/processors/test_native_inits.py holds it to the fields.
    def __init__(
        self,
        ticket_id: str,
        conversation_id: str,
        customer_id: str,
        channel: str,
        category: str,
        kind: str,
        priority: str,
        queue: str,
        agent_id: str,
        status: str,
        sla_policy: str,
        opened_at: Millis,
        solved_at: Millis | None,
        reopen_count: int,
        handoff_count: int,
        inbound_count: int,
        agent_reply_count: int,
        csat: int | None,
        nps: int | None,
        tier: str,
        opened_day: str,
        first_reply_at: Millis | None,
        updated_at: Millis,
        version: int,
        promised_by: Millis | None = None,
        promise_estimate_seconds: float | None = None,
        promise_basis: str = "",
        promise_outcome: str = "",
        incident_id: str = "",
        most_active_agent: str = "",
        sample_key: str = "",
        language: str = "und",
    ) -> None:
        object.__setattr__(self, "ticket_id", ticket_id)
        object.__setattr__(self, "conversation_id", conversation_id)
        object.__setattr__(self, "customer_id", customer_id)
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "queue", queue)
        object.__setattr__(self, "agent_id", agent_id)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "sla_policy", sla_policy)
        object.__setattr__(self, "opened_at", opened_at)
        object.__setattr__(self, "solved_at", solved_at)
        object.__setattr__(self, "reopen_count", reopen_count)
        object.__setattr__(self, "handoff_count", handoff_count)
        object.__setattr__(self, "inbound_count", inbound_count)
        object.__setattr__(self, "agent_reply_count", agent_reply_count)
        object.__setattr__(self, "csat", csat)
        object.__setattr__(self, "nps", nps)
        object.__setattr__(self, "tier", tier)
        object.__setattr__(self, "opened_day", opened_day)
        object.__setattr__(self, "first_reply_at", first_reply_at)
        object.__setattr__(self, "updated_at", updated_at)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "promised_by", promised_by)
        object.__setattr__(self, "promise_estimate_seconds", promise_estimate_seconds)
        object.__setattr__(self, "promise_basis", promise_basis)
        object.__setattr__(self, "promise_outcome", promise_outcome)
        object.__setattr__(self, "incident_id", incident_id)
        object.__setattr__(self, "most_active_agent", most_active_agent)
        object.__setattr__(self, "sample_key", sample_key)
        object.__setattr__(self, "language", language)


@dataclass(frozen=True, slots=True)
class CycleState:
    """One SLA cycle as the ``sla_metrics`` table shows it (CONTRACT §4)."""

    ticket_id: str
    metric: str  # first_response | next_response | resolution
    cycle: int
    policy: str
    status: str  # active | paused | met | breached | cancelled
    started_at: Millis
    due_at: Millis
    warned_at: Millis | None
    breached_at: Millis | None
    fulfilled_at: Millis | None
    business_seconds: float | None
    target_seconds: float
    updated_at: Millis
    version: int

    # Written out, not generated by @dataclass, as ``processors.desk.Ticket``'s (compiled, a
    # direct store per field); tests/processors/test_native_inits.py holds it to the fields.
    def __init__(
        self,
        ticket_id: str,
        metric: str,
        cycle: int,
        policy: str,
        status: str,
        started_at: Millis,
        due_at: Millis,
        warned_at: Millis | None,
        breached_at: Millis | None,
        fulfilled_at: Millis | None,
        business_seconds: float | None,
        target_seconds: float,
        updated_at: Millis,
        version: int,
    ) -> None:
        object.__setattr__(self, "ticket_id", ticket_id)
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "cycle", cycle)
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "started_at", started_at)
        object.__setattr__(self, "due_at", due_at)
        object.__setattr__(self, "warned_at", warned_at)
        object.__setattr__(self, "breached_at", breached_at)
        object.__setattr__(self, "fulfilled_at", fulfilled_at)
        object.__setattr__(self, "business_seconds", business_seconds)
        object.__setattr__(self, "target_seconds", target_seconds)
        object.__setattr__(self, "updated_at", updated_at)
        object.__setattr__(self, "version", version)


@dataclass(frozen=True, slots=True)
class Output:
    """What one step of the processors produced, in order."""

    events: tuple[DomainEvent, ...] = ()
    tickets: tuple[TicketState, ...] = ()
    cycles: tuple[CycleState, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    estimates: tuple[tuple[str, str, float], ...] = ()
    """(channel, policy, seconds): the first-response estimate the next promise of that
    channel and policy would use, where a fulfilled first response changed it (for the
    metrics; nothing is stored or published)."""

    # Written out, not generated by @dataclass, as ``processors.desk.Ticket``'s (compiled, a
    # direct store per field); tests/processors/test_native_inits.py holds it to the fields.
    def __init__(
        self,
        events: tuple[DomainEvent, ...] = (),
        tickets: tuple[TicketState, ...] = (),
        cycles: tuple[CycleState, ...] = (),
        dead_letters: tuple[DeadLetter, ...] = (),
        estimates: tuple[tuple[str, str, float], ...] = (),
    ) -> None:
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "tickets", tickets)
        object.__setattr__(self, "cycles", cycles)
        object.__setattr__(self, "dead_letters", dead_letters)
        object.__setattr__(self, "estimates", estimates)

"""The pipeline declared as data: topics, their keys and schemas, and the stages between them.

Runners interpret this declaration; they do not restate it. The local runner
(``streams.local``) executes the stages in one process, in event-time order, with the topics
as in-memory hand-offs. The Faust runner creates the same topics on Kafka and one agent per stage.

Keys decide ordering and state locality: everything about one conversation is processed in
order by one owner because both the raw contacts and the desk's state are keyed by
conversation. E-mail threading and identity resolution need indexes that are not keyed by
conversation (message ids, identities); the local runner holds them in one process, the Faust
runner repartitions for them.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # what the message key is
    schema: str  # the Avro record name of the value (schemas/*.avsc)
    partitions: int | None  # None: the deployment's SUPPORTSTREAM_PARTITIONS
    retention_ms: int  # -1: forever
    compacted: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    consumes: str
    produces: tuple[str, ...]
    keyed_by: str
    state: tuple[str, ...]
    doc: str


TOPICS: tuple[Topic, ...] = (
    # Key: the conversation id as the parsers compute it; e-mail ``email:{h(thread root)}``, a crm
    # upsert ``crm:{customer_id}`` (streams/connectors/envelope.py).
    # One partition: the desk applies every record in one global event-time order, because
    # threading, identities and assignment span conversations (docs/PRODUCTION.md). Everything
    # after the desk is partitioned by ticket and scales with SUPPORTSTREAM_PARTITIONS.
    Topic("raw-contacts", "conversation id (or source:record id)", "RawContact", 1, 30 * DAY_MS),
    Topic("domain-events", "ticket id", "DomainEvent", None, -1),
    Topic("ticket-state", "ticket id", "TicketState", None, -1, compacted=True),
    Topic("sla-state", "ticket id/metric/cycle", "CycleState", None, -1, compacted=True),
    Topic("dead-letters", "source", "DeadLetter", 1, 90 * DAY_MS),
)

STAGES: tuple[Stage, ...] = (
    Stage(
        name="parse",
        consumes="raw-contacts",
        produces=("dead-letters",),
        keyed_by="conversation",
        state=(),
        doc="Native channel payloads become contacts, desk actions, surveys and crm upserts; "
        "what cannot be understood becomes a dead letter.",
    ),
    Stage(
        name="desk",
        consumes="raw-contacts",
        produces=("domain-events", "ticket-state", "sla-state", "dead-letters"),
        keyed_by="conversation",
        state=("tickets", "latest", "seen", "profiles", "identities", "message_ids", "sla"),
        doc="Threading, identity, ticket lifecycle, classification, routing, assignment and "
        "SLA timers; emits every change as an event and a state snapshot.",
    ),
    Stage(
        name="sink",
        consumes="domain-events",
        produces=(),
        keyed_by="ticket",
        state=(),
        doc="Batches events, ticket and cycle snapshots and dead letters into ClickHouse, then "
        "commits offsets.",
    ),
)


def topic(name: str) -> Topic:
    for candidate in TOPICS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)

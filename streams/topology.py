"""The pipeline declared as data: topics, their keys and schemas, and the stages between them.

Runners interpret this declaration; they do not restate it. The local runner
(``streams.local``) executes the stages in one process, in event-time order, with the topics
as in-memory hand-offs. The Faust runner creates the same topics on Kafka and one agent per stage.

Keys decide ordering and state locality. Raw contacts are keyed by conversation and split
over ``SUPPORTSTREAM_PARTITIONS`` partitions, so stage ``parse`` runs in parallel, one owner per
partition. The desk's decisions are not all keyed by conversation: e-mail threading maps
message ids, identity resolution maps crm identities to customers, and automatic assignment
reads every agent's load. So the desk applies everything in one event-time order, ``replay``'s:
the Faust runner merges the parsed partitions back into that order on its internal topic
``desk-input`` (``streams.intake``, ``streams.sequencer``); the local runner simply parses
and applies in order. Everything after the desk is partitioned by ticket.
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

    def partition_count(self, deployment: int) -> int:
        """The topic's partitions: its own, else the deployment's (SUPPORTSTREAM_PARTITIONS)."""
        return self.partitions or deployment


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
    # upsert ``crm:{customer_id}`` (streams/connectors/envelope.py). SUPPORTSTREAM_PARTITIONS
    # partitions, parsed in parallel by the workers that own them; the desk merges them back
    # into one event-time order (streams/sequencer.py, docs/PRODUCTION.md).
    Topic("raw-contacts", "conversation id (or source:record id)", "RawContact", None, 30 * DAY_MS),
    Topic("domain-events", "ticket id", "DomainEvent", None, -1),
    Topic("ticket-state", "ticket id", "TicketState", None, -1, compacted=True),
    Topic("sla-state", "ticket id/metric/cycle", "CycleState", None, -1, compacted=True),
    Topic("dead-letters", "source", "DeadLetter", 1, 90 * DAY_MS),
    # Every ticket.acknowledged (the promise, CONTRACT §7), keyed by conversation, for the
    # gateway that sends the auto-reply (docs/PROMISES.md). A day of them is plenty: an
    # acknowledgement not sent within a day is not worth sending.
    Topic("acknowledgements", "conversation id", "TicketAcknowledged", None, DAY_MS),
)

STAGES: tuple[Stage, ...] = (
    Stage(
        name="parse",
        consumes="raw-contacts",
        produces=("desk-input",),
        keyed_by="conversation",
        state=(),
        doc="Native channel payloads become contacts, desk actions, surveys and crm upserts; "
        "what cannot be understood becomes a dead letter. In parallel over the raw partitions; "
        "the Faust runner forwards each record's meaning on its internal desk-input topic.",
    ),
    Stage(
        name="desk",
        consumes="desk-input",
        produces=(
            "domain-events",
            "ticket-state",
            "sla-state",
            "dead-letters",
            "acknowledgements",
        ),
        keyed_by="one event-time order (at, then publisher sequence, then raw partition)",
        state=(
            "tickets",
            "latest",
            "seen",
            "profiles",
            "identities",
            "message_ids",
            "promise_history",
            "promises",
            "incidents",
            "incident_openings",
            "sla",
            "assigner",
            "presence",
            "waiting",
            "merge buffer",
        ),
        doc="Merges the parsed partitions into replay's order, then threading, identity, "
        "ticket lifecycle, classification, routing, assignment, SLA timers, promises and "
        "incidents; emits every change as an event and a state snapshot, and each promise on "
        "acknowledgements.",
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

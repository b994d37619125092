"""The catalogue of domain events: each type's name and the fields of its ``data``.

This is the single list the processors emit from, the Avro schemas in ``schemas/`` declare
(one ``.avsc`` per event type, checked against this catalogue in tests), and the ``events``
table stores (the common columns plus ``data`` as JSON).

Field types use Avro's vocabulary: ``string``, ``int``, ``long``, ``double``, ``boolean``,
``timestamp`` (an instant, ``Millis``), and ``?`` for a nullable field. Personal values never
appear in clear: identities and customers' message ids are keyed hashes, texts are masked.
"""

from __future__ import annotations

from typing import Final

FieldSpec = tuple[str, str]

# Every incident event carries the whole incident after the change (CONTRACT §7 Incidents).
_INCIDENT_FIELDS: Final[tuple[FieldSpec, ...]] = (
    ("incident_id", "string"),
    ("category", "string"),
    ("opened_at", "timestamp"),
    ("closed_at", "timestamp?"),
    ("tickets", "int"),
    ("customers", "int"),
    ("baseline", "double"),
    ("version", "int"),
)

EVENT_TYPES: Final[dict[str, tuple[FieldSpec, ...]]] = {
    # A customer contact reached a conversation (every inbound message and call).
    "contact.received": (
        ("channel", "string"),
        ("message_id", "string"),  # keyed hash of the channel's message id
        ("sender", "string"),  # "kind:h(value)" of the identity the customer was found by
        ("subject", "string"),  # masked
        ("text", "string"),  # masked
        ("call_status", "string"),  # phone only, "" otherwise
        ("duplicate", "boolean"),  # a redelivery of a message already received
    ),
    # A ticket was opened by the contact above; classification is decided here, once.
    "ticket.opened": (
        ("number", "int"),
        ("channel", "string"),
        ("tier", "string"),
        ("category", "string"),
        ("kind", "string"),
        ("priority", "string"),
        ("queue", "string"),
        ("sla_policy", "string"),
        ("language", "string"),  # CONTRACT §7: ISO 639-1 code among the rules' languages, or und
        ("required_skills", "string"),  # comma-separated, sorted; "" if none
        ("preferred_skills", "string"),
    ),
    "contact.categorized": (
        ("category", "string"),
        ("kind", "string"),
        ("priority", "string"),
        ("queue", "string"),
        ("sla_policy", "string"),
        ("tier", "string"),
        ("channel", "string"),
        ("language", "string"),
    ),
    "ticket.status_changed": (
        ("from_status", "string"),
        ("to_status", "string"),
        ("by", "string"),  # agent id, or "customer" for an inbound contact
    ),
    "ticket.reopened": (
        ("reopen_count", "int"),
        ("to_status", "string"),
        ("by", "string"),
        ("solved_at", "timestamp"),
        ("solved_by", "string"),  # the agent who recorded the solve undone (§7), "" if unknown
    ),
    "ticket.assigned": (
        ("agent_id", "string"),
        ("previous_agent_id", "string"),
        ("handoff", "boolean"),
        ("by", "string"),  # "rules" (automatic assignment) or the agent id of the assign record
    ),
    # CONTRACT §7: a ticket started waiting in its queue for an agent (no candidate when it
    # opened: reason no_agent; its agent went offline while it was new: agent_offline).
    "ticket.waiting_started": (
        ("queue", "string"),
        ("priority", "string"),
        ("reason", "string"),  # no_agent | agent_offline
        ("previous_agent_id", "string"),  # the agent who went offline, "" if none
        ("required_skills", "string"),  # comma-separated, sorted; "" if none
    ),
    # It stopped waiting: assigned (by the rules when served, or by hand) or solved.
    "ticket.waiting_stopped": (
        ("queue", "string"),
        ("priority", "string"),
        ("reason", "string"),  # assigned | solved
        ("agent_id", "string"),  # the agent it went to, "" when solved
        ("waiting_since", "timestamp"),
        ("waited_seconds", "double"),
    ),
    # An agent's presence record (CONTRACT §7); no ticket. ``released_tickets``: the new
    # tickets an agent going offline gave back to their queues.
    "agent.presence_changed": (
        ("agent_id", "string"),
        ("status", "string"),  # online | away | offline
        ("previous_status", "string"),
        ("released_tickets", "int"),
    ),
    "ticket.solved": (
        ("by", "string"),
        ("from_status", "string"),
    ),
    "agent.replied": (
        ("agent_id", "string"),
        ("public", "boolean"),
        ("type", "string"),  # reply | note
        ("message_id", "string"),  # keyed hash of the reply's Message-ID, "" if none
        ("first", "boolean"),  # the ticket's first public reply (§7 first_responses)
    ),
    "survey.answered": (
        ("kind", "string"),
        ("score", "int"),
        ("agent_id", "string"),  # the agent of the latest public reply before it (§7), or ""
    ),
    # A quality review of a ticket (CONTRACT §7); a later one by the same reviewer replaces it.
    "qa.reviewed": (
        ("reviewer_id", "string"),
        ("agent_id", "string"),  # the ticket's most active agent when reviewed, "" if none
        ("quality", "double?"),  # 0..100, one decimal; null when every criterion was N/A
        ("critical_failed", "boolean"),
        ("scores", "string"),  # JSON object criterion -> score or null, sorted keys
        ("comment", "string"),  # masked
        ("sequence", "int"),  # the ticket's event number: orders reviews of one instant
    ),
    "customer.upserted": (
        ("tier", "string"),
        ("status", "string"),
        ("mrr", "double?"),
        ("identities", "string"),  # comma-separated "kind:h(value)", sorted
    ),
    # The SLA cycle events (CONTRACT §3). ``due_at`` is the due instant as computed at the event.
    "sla.cycle_started": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("target_seconds", "double"),
    ),
    "sla.cycle_paused": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("business_seconds", "double"),
    ),
    "sla.cycle_resumed": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("business_seconds", "double"),
    ),
    "sla.cycle_warned": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("business_seconds", "double"),
    ),
    "sla.cycle_breached": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("target_seconds", "double"),
    ),
    "sla.cycle_fulfilled": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("business_seconds", "double"),
        ("breached", "boolean"),
    ),
    "sla.cycle_cancelled": (
        ("metric", "string"),
        ("cycle", "int"),
        ("policy", "string"),
        ("due_at", "timestamp"),
        ("business_seconds", "double"),
    ),
    # CONTRACT §7 Honest promises: the ticket's first-response promise, right after
    # ticket.opened; published on `acknowledgements` too (keyed by conversation).
    "ticket.acknowledged": (
        ("channel", "string"),
        ("policy", "string"),
        ("promised_by", "timestamp"),
        ("estimate_seconds", "double"),
        ("basis", "string"),  # history | target
        ("samples", "int"),  # fulfilled first responses the estimate could use
    ),
    # The first public reply came at or before promised_by.
    "promise.kept": (
        ("channel", "string"),
        ("policy", "string"),
        ("promised_by", "timestamp"),
        ("replied_at", "timestamp?"),
    ),
    # The first public reply came later, or promised_by passed without one (replied_at null).
    "promise.broken": (
        ("channel", "string"),
        ("policy", "string"),
        ("promised_by", "timestamp"),
        ("replied_at", "timestamp?"),
    ),
    # CONTRACT §7 Incidents. Every incident event carries the incident after the change;
    # opened and closed belong to no ticket, joined to the ticket that joined it.
    "incident.opened": _INCIDENT_FIELDS,
    "incident.joined": _INCIDENT_FIELDS,
    "incident.closed": _INCIDENT_FIELDS,
}

DEAD_LETTER_FIELDS: Final[tuple[FieldSpec, ...]] = (
    ("at", "timestamp"),
    ("source", "string"),
    ("reason", "string"),
    ("record", "string"),  # the offending record, PII masked
    ("ref", "string"),
)

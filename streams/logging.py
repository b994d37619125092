"""Structured JSON logs that let an SRE follow one contact through every stage.

``configure_logging`` sets structlog up once per process: one JSON object per line, ISO 8601 UTC
timestamps, the level, the logger's name. The ``log_*`` helpers write the same keys at every
stage, so ``grep`` / ``jq`` on one id finds the whole story of a contact:

=============  ==================================================================================
key            meaning
=============  ==================================================================================
``stage``      ``parse`` (a record understood or refused), ``desk`` (what the processors decided),
               ``sink`` (handed to / written by the projection writer)
``conversation_id``, ``ticket_id``, ``customer_id``
               the processors' ids; identities inside them are keyed hashes (CONTRACT §1), so
               they can be logged and searched
``event_type``, ``event_id``
               the domain event (``contact.received``, ``ticket.opened``, ``sla.cycle_breached``…)
``ref``        the input position (``week.jsonl:17`` or ``raw-contacts/3/1042``)
=============  ==================================================================================

Texts, subjects, senders and message ids are never logged, even masked: the logs need the ids
only, and a log pipeline is a poor place for personal data.

Levels: per-record lines (parse lines, domain events, state snapshots) at ``debug``
(``--debug`` shows them): a service handling thousands of records a second must not write a
line for each at ``info``, and with debug off the lines are not even built (``debug_enabled``);
the §6 counters say how much happened. Dead letters at ``warning``; flushes of the sink at
``info``. Example, following one conversation::

    supportstream --debug replay ... 2>&1 | jq -c 'select(.conversation_id == "chat:s-1")'
"""

from __future__ import annotations

import logging as _stdlib_logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog

from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    DeadLetter,
    DomainEvent,
    Ignored,
    Millis,
    Output,
    Parsed,
    QaReview,
    SurveyAnswer,
)
from processors.timeutil import to_rfc3339

__all__ = ["configure_logging", "debug_enabled", "log_flush", "log_output", "log_parsed"]

# The event fields worth a log line: what routes and measures, never what the customer wrote.
_EVENT_FIELDS: tuple[str, ...] = (
    "channel",
    "duplicate",
    "number",
    "tier",
    "category",
    "kind",
    "priority",
    "queue",
    "sla_policy",
    "from_status",
    "to_status",
    "by",
    "agent_id",
    "previous_agent_id",
    "handoff",
    "public",
    "type",
    "reopen_count",
    "metric",
    "cycle",
    "policy",
    "due_at",
    "business_seconds",
    "target_seconds",
    "breached",
    "score",
    "status",
)
_INSTANT_FIELDS = frozenset({"due_at", "solved_at"})


def configure_logging(
    debug: bool, stream: TextIO | None = None, *, level: int | None = None
) -> None:
    """JSON lines on ``stream`` (default stderr): ``debug`` and above with ``debug``, else
    ``info`` and above. ``level`` (a ``logging`` level) overrides both: batch commands such as
    ``replay`` pass ``logging.WARNING`` so that a run's events do not flood the terminal."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False, sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            level
            if level is not None
            else (_stdlib_logging.DEBUG if debug else _stdlib_logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(stream if stream is not None else sys.stderr),
        cache_logger_on_first_use=False,
    )


def debug_enabled(logger: Any) -> bool:
    """Whether ``logger`` writes debug lines (structlog's filtering loggers answer it; any
    other logger is taken to). Hot paths ask once and skip building lines nobody reads."""
    check = getattr(logger, "is_enabled_for", None)
    return True if check is None else bool(check(_stdlib_logging.DEBUG))


def _instant(ms: Millis | None) -> str | None:
    return None if ms is None else to_rfc3339(ms)


def log_parsed(logger: Any, item: Parsed, ref: str = "") -> None:
    """Stage ``parse``: one record understood (debug) or refused (warning)."""
    if isinstance(item, DeadLetter):
        logger.warning(
            "dead letter",
            stage="parse",
            source=item.source,
            reason=item.reason,
            at=_instant(item.at),
            ref=item.ref or ref,
        )
    elif isinstance(item, Contact):
        logger.debug(
            "contact parsed",
            stage="parse",
            channel=item.channel,
            # e-mail: decided by threading in the desk (the desk's contact.received names it)
            conversation_id=item.conversation_id or None,
            at=_instant(item.at),
            ref=item.ref or ref,
        )
    elif isinstance(item, AgentAction | SurveyAnswer):
        logger.debug(
            "record parsed",
            stage="parse",
            source="agent" if isinstance(item, AgentAction) else "survey",
            conversation_id=item.conversation_id,
            at=_instant(item.at),
            ref=item.ref or ref,
        )
    elif isinstance(item, QaReview):
        logger.debug(
            "record parsed",
            stage="parse",
            source="qa",
            ticket_id=item.ticket_id,
            at=_instant(item.at),
            ref=item.ref or ref,
        )
    elif isinstance(item, CrmUpsert):
        logger.debug(
            "record parsed",
            stage="parse",
            source="crm",
            customer_id=item.customer_id,
            at=_instant(item.at),
            ref=item.ref or ref,
        )
    elif isinstance(item, Ignored):
        logger.debug(
            "record ignored",
            stage="parse",
            source=item.source,
            reason=item.reason,
            ref=item.ref or ref,
        )


def _event_fields(event: DomainEvent) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_type": event.event_type,
        "event_id": event.event_id,
        "at": _instant(event.at),
        "ticket_id": event.ticket_id,
        "conversation_id": event.conversation_id,
        "customer_id": event.customer_id,
    }
    data = event.data
    for name in _EVENT_FIELDS:
        if name in data:
            value = data[name]
            fields[name] = _instant(value) if name in _INSTANT_FIELDS else value
    return fields


def log_output(logger: Any, output: Output, stage: str = "desk") -> None:
    """Everything one processor step emitted.

    ``stage="desk"``: each domain event and each ticket / cycle snapshot at debug, each dead
    letter at warning. ``stage="sink"``: each event, snapshot and dead letter handed to the
    projection writer, at debug (the writer batches; :func:`log_flush` says when they land).
    """
    sink = stage == "sink"
    for event in output.events:
        fields = _event_fields(event)
        if sink:
            logger.debug("event to sink", stage=stage, table="events", **fields)
        else:
            logger.debug("domain event", stage=stage, **fields)
    for ticket in output.tickets:
        logger.debug(
            "ticket to sink" if sink else "ticket state",
            stage=stage,
            table="tickets",
            ticket_id=ticket.ticket_id,
            conversation_id=ticket.conversation_id,
            customer_id=ticket.customer_id,
            status=ticket.status,
            queue=ticket.queue,
            priority=ticket.priority,
            agent_id=ticket.agent_id,
            version=ticket.version,
        )
    for cycle in output.cycles:
        logger.debug(
            "cycle to sink" if sink else "cycle state",
            stage=stage,
            table="sla_metrics",
            ticket_id=cycle.ticket_id,
            metric=cycle.metric,
            cycle=cycle.cycle,
            policy=cycle.policy,
            status=cycle.status,
            due_at=_instant(cycle.due_at),
            version=cycle.version,
        )
    for letter in output.dead_letters:
        if sink:
            logger.debug(
                "dead letter to sink",
                stage=stage,
                table="dead_letters",
                source=letter.source,
                ref=letter.ref,
            )
        else:
            logger.warning(
                "dead letter",
                stage=stage,
                source=letter.source,
                reason=letter.reason,
                at=_instant(letter.at),
                ref=letter.ref,
            )


def log_flush(
    logger: Any, rows: Mapping[str, int], *, ticket_ids: Iterable[str] = (), failed: str = ""
) -> None:
    """Stage ``sink``: a flush of the projection writer finished (info) or failed (error).
    ``rows`` is rows written per table by this flush; ``ticket_ids`` (optional) the tickets in
    it, for following one ticket to the warehouse."""
    ids = sorted(set(ticket_ids))
    if failed:
        logger.error("sink flush failed", stage="sink", error=failed, rows=dict(rows))
    else:
        logger.info("sink flushed", stage="sink", rows=dict(rows), ticket_ids=ids or None)

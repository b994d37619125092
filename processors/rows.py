"""The warehouse rows of the desk's outputs, compiled: one tuple per record, its values in the
order of its table's columns (``sinks.writer`` names the columns; the tables: docs/ANALYTICS.md,
"Tables").

A replay builds a row for every event, ticket state and SLA cycle it keeps (the writer keeps
only a batch's last version of each), about 72,000 for the generated week, on the desk's core:
compiled, reading a compiled record's fields is a load from its struct rather than a
descriptor call (docs/REPLAY.md, "What runs compiled").

Instants become UTC-aware datetimes (``processors.timeutil.to_datetime``: exact, integer
arithmetic), what a ``DateTime64(3, 'UTC')`` column takes from either backend. An event's
``data`` becomes JSON text with sorted keys, the same text whichever encoder makes it
(``event_data_json``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Final

import orjson

from processors.model import CycleState, DeadLetter, DomainEvent, Millis, TicketState
from processors.timeutil import to_datetime

__all__ = [
    "DataNotJson",
    "cycle_row",
    "dead_letter_id",
    "dead_letter_row",
    "event_data_json",
    "event_row",
    "ticket_row",
]


class DataNotJson(ValueError):
    """An event's ``data`` holds something JSON cannot (the writer's ``SinkError``)."""


def _maybe_instant(ms: Millis | None) -> dt.datetime | None:
    return None if ms is None else to_datetime(ms)


def dead_letter_id(dead: DeadLetter) -> str:
    """A deterministic id: the same record dead-lettered again gets the same id."""
    text = "\x1f".join((dead.source, dead.ref, str(dead.at), dead.reason, dead.record))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# One encoder for every event: json.dumps with options builds a new JSONEncoder per call, which
# was most of the cost of encoding the payloads on a replay.
_DATA_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
_PLAIN: Final = frozenset({str, int, bool, type(None)})
_SORTED: Final = orjson.OPT_SORT_KEYS


def event_data_json(event: DomainEvent) -> str:
    """The event's data as JSON text with sorted keys, the same text whichever way it is made.

    orjson makes it (a fifth of the json module's time) when every value is text, an integer
    below 2**64, a boolean, null, or a float that both write alike: the json module writes
    ``repr``'s exponent form (``1e-05``, ``1e+16``) below 1e-4 and from 1e16 and ``NaN`` for
    NaN, where orjson writes ``0.00001`` and ``null``. Anything else, and what orjson refuses
    (lone surrogates, non-text keys, integers beyond 64 bits), goes the json module's way.
    """
    data = event.data
    for value in data.values():
        kind = type(value)
        if kind is float:
            number: float = value
            if not (1e-4 <= abs(number) < 1e16 or number == 0.0):
                return _json_data(event)
        elif kind not in _PLAIN:
            return _json_data(event)
    try:
        encoded: bytes = orjson.dumps(data, option=_SORTED)
    except orjson.JSONEncodeError:
        return _json_data(event)
    return encoded.decode("utf-8")


def _json_data(event: DomainEvent) -> str:
    try:
        text: str = _DATA_ENCODER.encode(event.data)
    except (TypeError, ValueError) as exc:
        raise DataNotJson(f"event {event.event_id} has data that is not JSON: {exc}") from exc
    return text


def event_row(e: DomainEvent) -> tuple[Any, ...]:
    """A row of ``events``."""
    return (
        e.event_id,
        e.event_type,
        to_datetime(e.at),
        e.ticket_id,
        e.conversation_id,
        e.customer_id,
        event_data_json(e),
    )


def ticket_row(t: TicketState) -> tuple[Any, ...]:
    """A row of ``tickets``."""
    return (
        t.ticket_id,
        t.conversation_id,
        t.customer_id,
        t.channel,
        t.category,
        t.kind,
        t.priority,
        t.queue,
        t.agent_id,
        t.status,
        t.sla_policy,
        to_datetime(t.opened_at),
        _maybe_instant(t.solved_at),
        t.reopen_count,
        t.handoff_count,
        t.inbound_count,
        t.agent_reply_count,
        t.csat,
        t.nps,
        t.tier,
        dt.date.fromisoformat(t.opened_day),
        _maybe_instant(t.first_reply_at),
        to_datetime(t.updated_at),
        t.version,
        _maybe_instant(t.promised_by),
        t.promise_estimate_seconds,
        t.promise_basis,
        t.promise_outcome,
        t.incident_id,
        t.most_active_agent,
        t.sample_key,
        t.language,
    )


def cycle_row(c: CycleState) -> tuple[Any, ...]:
    """A row of ``sla_metrics``."""
    return (
        c.ticket_id,
        c.metric,
        c.cycle,
        c.policy,
        c.status,
        to_datetime(c.started_at),
        to_datetime(c.due_at),
        _maybe_instant(c.warned_at),
        _maybe_instant(c.breached_at),
        _maybe_instant(c.fulfilled_at),
        c.business_seconds,
        c.target_seconds,
        to_datetime(c.updated_at),
        c.version,
    )


def dead_letter_row(d: DeadLetter) -> tuple[Any, ...]:
    """A row of ``dead_letters``."""
    return (dead_letter_id(d), to_datetime(d.at), d.source, d.reason, d.record, d.ref)

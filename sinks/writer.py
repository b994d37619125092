"""The projection writer: processors' output -> rows in ``events``, ``tickets``, ``sla_metrics``
and ``dead_letters``, in batches.

Idempotence — replaying the same input, or redelivering it under at-least-once, must not change
the tables, not even ``SELECT count()`` without FINAL. Three layers, each covering what the
previous one cannot (verified on chdb in ``tests/sinks/test_writer.py``):

1. *Coalescing in the batch.* A ticket changes many times within one batch; only its highest
   ``version`` is kept (ReplacingMergeTree would discard the others anyway). Fewer rows, and a
   batch's content is a pure function of the input between two flush points.
2. *An insert deduplication token per batch*: a hash of the table and of the batch's row keys
   and versions (events and dead letters have immutable ids, so the key is enough). The tables
   set ``non_replicated_deduplication_window``, so ClickHouse remembers recent tokens and a
   batch sent again writes nothing. This covers the common cases cheaply and with no window
   of visible duplicates: a retry after a failed or timed-out insert (the sealed batch is
   resent unchanged, see :meth:`ProjectionWriter.flush`) and a deterministic replay (same
   input, same flush points, same batches). It cannot cover a redelivery whose batch
   boundaries differ from the first delivery (a crash mid-run, a restart from an older
   offset, a different ``batch_size``), nor a replay older than the window. (Measured on
   chdb: with the window set, ClickHouse already drops a byte-identical block without any
   token; the token makes the batch's identity explicit — its keys and versions, sorted — so
   the same batch in another row order or serialisation is dropped too, see
   ``test_the_batch_token_ignores_row_order``.)
3. *Keys and ReplacingMergeTree + :meth:`ProjectionWriter.compact`.* Every row has a
   deterministic key (event ids, ticket id, (ticket, metric, cycle), a content hash for dead
   letters), so whatever slipped through layer 2 collapses to one row per key under FINAL, and
   ``OPTIMIZE TABLE ... FINAL`` (``compact()``) makes that physical, after which ``count()``
   without FINAL is the number of keys again. ``supportstream replay`` calls it once at the
   end; it rewrites the tables, so it is not for the live hot path, where readers use FINAL.

Together: after any sequence of (re)deliveries followed by ``compact()``, every table holds
exactly one row per key — the same as a single clean run — and a deterministic replay is a
no-op even without ``compact()``.

Ordering: the caller (local runner, Faust worker) must ``flush()`` *before* it commits input
offsets or producer transactions; a batch that is not yet in the warehouse must stay
redeliverable. Within a flush, tables go in a fixed order — facts (``events``) first, then the
current-state projections, then dead letters — so a reader never sees a ticket state whose
events are not there yet. A failed insert raises :class:`sinks.backend.SinkError` and keeps its
sealed batch (same rows, same token) for the next ``flush()``; nothing is lost or reordered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from processors.model import CycleState, DeadLetter, DomainEvent, Output, TicketState
from processors.rows import (
    DataNotJson,
    cycle_row,
    dead_letter_id,
    dead_letter_row,
    event_row,
    ticket_row,
)
from processors.timeutil import to_datetime
from sinks.backend import DATABASE, Backend, SinkError

__all__ = ["TABLES", "ProjectionWriter", "dead_letter_id", "instant"]


T = TypeVar("T")


instant = to_datetime
"""``Millis`` -> the UTC-aware datetime a ``DateTime64(3, 'UTC')`` column takes (exact:
integer arithmetic, no float rounding): ``processors.timeutil.to_datetime``."""


@dataclass(frozen=True)
class _Table(Generic[T]):
    """How one record type becomes rows of one table."""

    name: str
    columns: tuple[str, ...]
    sorting_key: tuple[str, ...]  # the table's ORDER BY (sinks/migrations), what FINAL merges on
    key: Callable[[T], Hashable]
    version: Callable[[T], int]
    row: Callable[[T], tuple[Any, ...]]


_EVENTS: _Table[DomainEvent] = _Table(
    name="events",
    columns=(
        "event_id",
        "event_type",
        "at",
        "ticket_id",
        "conversation_id",
        "customer_id",
        "data",
    ),
    sorting_key=("event_type", "at", "event_id"),
    key=lambda e: e.event_id,
    version=lambda e: 0,
    row=event_row,
)

_TICKETS: _Table[TicketState] = _Table(
    name="tickets",
    columns=(
        "ticket_id",
        "conversation_id",
        "customer_id",
        "channel",
        "category",
        "kind",
        "priority",
        "queue",
        "agent_id",
        "status",
        "sla_policy",
        "opened_at",
        "solved_at",
        "reopen_count",
        "handoff_count",
        "inbound_count",
        "agent_reply_count",
        "csat",
        "nps",
        "tier",
        "opened_day",
        "first_reply_at",
        "updated_at",
        "version",
        "promised_by",
        "promise_estimate_seconds",
        "promise_basis",
        "promise_outcome",
        "incident_id",
        "most_active_agent",
        "sample_key",
        "language",
    ),
    sorting_key=("ticket_id",),
    key=lambda t: t.ticket_id,
    version=lambda t: t.version,
    row=ticket_row,
)

_CYCLES: _Table[CycleState] = _Table(
    name="sla_metrics",
    columns=(
        "ticket_id",
        "metric",
        "cycle",
        "policy",
        "status",
        "started_at",
        "due_at",
        "warned_at",
        "breached_at",
        "fulfilled_at",
        "business_seconds",
        "target_seconds",
        "updated_at",
        "version",
    ),
    sorting_key=("ticket_id", "metric", "cycle"),
    key=lambda c: (c.ticket_id, c.metric, c.cycle),
    version=lambda c: c.version,
    row=cycle_row,
)

_DEAD_LETTERS: _Table[DeadLetter] = _Table(
    name="dead_letters",
    columns=("dead_letter_id", "at", "source", "reason", "record", "ref"),
    sorting_key=("dead_letter_id",),
    key=dead_letter_id,
    version=lambda d: 0,
    row=dead_letter_row,
)

# The flush order (see the module docstring): facts first, then current state, then rejects.
TABLES: tuple[str, ...] = ("events", "sla_metrics", "tickets", "dead_letters")


@dataclass
class _Batch:
    """Rows sealed for one INSERT; resent unchanged (same token) until it succeeds."""

    rows: list[tuple[Any, ...]]
    token: str


@dataclass
class _Buffer(Generic[T]):
    table: _Table[T]
    # The item itself, not its row: a ticket changes many times within a batch and only the
    # version kept is ever turned into a row (at seal time), which halves the row building.
    open: dict[Hashable, tuple[int, T]] = field(default_factory=dict)
    sealed: list[_Batch] = field(default_factory=list)

    def add(self, item: T) -> None:
        key = self.table.key(item)
        version = self.table.version(item)
        held = self.open.get(key)
        # Keep the highest version; on a tie the later one (a re-emission of the same state).
        if held is None or version >= held[0]:
            self.open[key] = (version, item)

    def seal(self) -> None:
        if not self.open:
            return
        row = self.table.row
        try:
            rows = [row(item) for _, item in self.open.values()]
        except DataNotJson as exc:
            raise SinkError(str(exc)) from exc
        # The table's name, then a line per row: its key and version, sorted.
        ident = sorted(f"{key!r}\x1f{version}" for key, (version, _) in self.open.items())
        text = "\n".join([self.table.name, *ident])
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        self.sealed.append(_Batch(rows, f"ss-{self.table.name}-{digest[:40]}"))
        self.open = {}

    @property
    def pending(self) -> int:
        return len(self.open) + sum(len(b.rows) for b in self.sealed)


class ProjectionWriter:
    """Batches processor output per table and writes it through a :class:`Backend`.

    ``batch_size`` bounds the rows held per table: a table whose buffer reaches it is flushed
    at once; everything else waits for :meth:`flush`. ``rows_written`` counts, per table, the
    rows handed to the warehouse in successful inserts (a batch the warehouse recognised as a
    duplicate still counts: the writer cannot tell, and did the work).
    """

    def __init__(self, backend: Backend, batch_size: int = 5000, *, database: str = DATABASE):
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self.backend = backend
        self.batch_size = batch_size
        self.database = database
        self.rows_written: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._events: _Buffer[DomainEvent] = _Buffer(_EVENTS)
        self._cycles: _Buffer[CycleState] = _Buffer(_CYCLES)
        self._tickets: _Buffer[TicketState] = _Buffer(_TICKETS)
        self._dead: _Buffer[DeadLetter] = _Buffer(_DEAD_LETTERS)

    # -- intake ----------------------------------------------------------------------------

    def add_output(self, output: Output) -> None:
        """Everything one processor step produced."""
        if output.events:
            self._add(self._events, output.events)
        if output.cycles:
            self._add(self._cycles, output.cycles)
        if output.tickets:
            self._add(self._tickets, output.tickets)
        if output.dead_letters:
            self._add(self._dead, output.dead_letters)

    def add_events(self, events: Iterable[DomainEvent]) -> None:
        self._add(self._events, events)

    def add_tickets(self, tickets: Iterable[TicketState]) -> None:
        self._add(self._tickets, tickets)

    def add_cycles(self, cycles: Iterable[CycleState]) -> None:
        self._add(self._cycles, cycles)

    def add_dead_letters(self, dead_letters: Iterable[DeadLetter]) -> None:
        self._add(self._dead, dead_letters)

    @property
    def pending(self) -> int:
        """Rows accepted but not yet in the warehouse."""
        return sum(buffer.pending for buffer in self._buffers())

    # -- output ----------------------------------------------------------------------------

    def flush(self) -> int:
        """Write every buffered row; return how many rows this call wrote.

        Call before committing the input that produced them (see the module docstring). On a
        :class:`SinkError` the unsent batches stay sealed and the next call resends them with
        the same tokens, which is what makes a retry after an uncertain insert safe.
        """
        written = 0
        for buffer in self._buffers():
            buffer.seal()
            written += self._send(buffer)
        return written

    def compact(self) -> None:
        """Flush, then merge every table down to one row per key (``OPTIMIZE ... FINAL``).

        For the end of a replay or a maintenance window: it rewrites whole tables. Afterwards
        ``count()`` without FINAL equals the number of distinct keys, whatever duplicates
        at-least-once delivery had let in.

        A table holding one row per key already is left as it is: merging it would change
        nothing a reader sees (with FINAL or without) and would rewrite it all (the events of a
        replay into a fresh warehouse: a twentieth of the replay's time).
        """
        self.flush()
        for buffer in self._buffers():
            table = buffer.table
            name = f"{self.database}.{table.name}"
            counted = self.backend.query(
                f"SELECT count() AS n, uniqExact({', '.join(table.sorting_key)}) AS k FROM {name}"
            )[0]
            if int(counted["n"]) != int(counted["k"]):
                self.backend.execute(f"OPTIMIZE TABLE {name} FINAL")

    # -- internals -------------------------------------------------------------------------

    def _buffers(self) -> Sequence[_Buffer[Any]]:
        by_name: dict[str, _Buffer[Any]] = {
            "events": self._events,
            "sla_metrics": self._cycles,
            "tickets": self._tickets,
            "dead_letters": self._dead,
        }
        return [by_name[name] for name in TABLES]

    def _add(self, buffer: _Buffer[T], items: Iterable[T]) -> None:
        for item in items:
            buffer.add(item)
            if len(buffer.open) >= self.batch_size:
                buffer.seal()
                self._send(buffer)

    def _send(self, buffer: _Buffer[Any]) -> int:
        written = 0
        table = buffer.table
        while buffer.sealed:
            batch = buffer.sealed[0]
            self.backend.insert(
                f"{self.database}.{table.name}", table.columns, batch.rows, dedup_token=batch.token
            )
            # Dropped only once the insert returned: a failure keeps it for the next flush().
            buffer.sealed.pop(0)
            written += len(batch.rows)
            self.rows_written[table.name] += len(batch.rows)
        return written

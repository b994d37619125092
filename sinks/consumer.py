"""The sink: domain events and state snapshots from Kafka into ClickHouse, each fact once.

``SinkConsumer`` reads the four output topics of the desk (``domain-events``, ``ticket-state``,
``sla-state``, ``dead-letters``), decodes each message (``schemas.codec``), hands the records to
a :class:`sinks.writer.ProjectionWriter` (batches per table, one insert per batch, a
deterministic deduplication token per batch), and commits the consumed offsets *after* the
rows are in ClickHouse.

Delivery is at-least-once end to end, and the warehouse makes it look exactly-once:

* Offsets are committed only after ``writer.flush()`` returned, i.e. after every row taken
  from those offsets was accepted by ClickHouse. A crash before the commit redelivers
  messages whose rows may already be stored; nothing is ever committed that is not stored.
* A redelivered row writes nothing new: event ids are deterministic (ticket id + sequence),
  snapshots carry their version, and every table is a ReplacingMergeTree on that identity,
  so ``FINAL`` (and after ``OPTIMIZE ... FINAL``, a plain ``count()``) shows one row per fact.
  A batch resent unchanged (a retried insert) is dropped outright by its token.
* While ClickHouse is down, flushing raises a retryable :class:`SinkError`; the consumer keeps
  its sealed batches (same rows, same tokens), stops reading, backs off exponentially and
  tries again, for as long as it takes: no message is skipped, so nothing is lost. A
  non-retryable error (the schema does not match) stops the sink without committing.
* A message that cannot be decoded is not dropped either: it becomes a ``dead_letters`` row
  naming the topic, partition and offset.

The Kafka client is behind :class:`RecordSource` (the production adapter is
:class:`KafkaSource`, kafka-python), so the ordering above is tested without a broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from processors.model import CycleState, DeadLetter, DomainEvent, TicketState
from schemas.codec import CODEC, CodecError
from sinks.backend import SinkError
from sinks.writer import ProjectionWriter

__all__ = [
    "SINK_TOPICS",
    "Backoff",
    "KafkaSource",
    "RecordSource",
    "SinkConsumer",
    "SinkStats",
    "SourceRecord",
]

log = structlog.get_logger("supportstream.sink")

SINK_TOPICS: tuple[str, ...] = ("domain-events", "ticket-state", "sla-state", "dead-letters")
"""The topology topics the sink consumes (logical names, without the deployment's prefix)."""

TopicPartition = tuple[str, int]

IDLE_POLL_S = 0.05
"""How long the sink sleeps after a poll that brought nothing (the latency it adds)."""

JOIN_POLL_MS = 200
"""How long one poll may wait while the sink joins its group (``KafkaSource.poll``)."""


class SourceRecord(NamedTuple):
    """One message as the sink takes it (a tuple: one is made per message, and a frozen
    dataclass took four times as long to build)."""

    topic: str  # logical name, one of SINK_TOPICS
    partition: int
    offset: int
    value: bytes


class RecordSource(Protocol):
    """Where the sink's messages come from (Kafka in production, a list in tests)."""

    def poll(self, timeout_s: float, max_records: int) -> Sequence[SourceRecord]:
        """The next messages, in offset order per partition; empty after ``timeout_s``."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition)."""
        ...

    def keep_alive(self) -> None:
        """Called while the sink waits for ClickHouse: stay in the group, read nothing."""
        ...

    def caught_up(self) -> bool:
        """Whether there is nothing left to read: partitions assigned, each read to its end.
        False while a rebalance leaves the sink without partitions."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff for retryable warehouse errors: ``first_s`` doubling up to
    ``max_s``. ``give_up_after_s`` (None: never) bounds the total wait."""

    first_s: float = 0.5
    max_s: float = 30.0
    give_up_after_s: float | None = None

    def delays(self) -> Callable[[], float]:
        current = self.first_s

        def next_delay() -> float:
            nonlocal current
            delay = current
            current = min(current * 2, self.max_s)
            return delay

        return next_delay


@dataclass
class SinkStats:
    messages: int = 0
    flushes: int = 0
    commits: int = 0
    retries: int = 0
    undecodable: int = 0
    rows: dict[str, int] = field(default_factory=dict)


class SinkConsumer:
    """Consume, batch, insert, then commit.

    ``batch_rows`` bounds the messages taken between two flushes; ``linger_s`` bounds how long
    a message waits for its batch to fill while messages keep coming (a poll that brings
    nothing flushes at once: :meth:`step`). ``sleep`` and ``clock`` are injected for tests.
    ``on_flush`` sees the rows written per table after each successful flush, ``on_failure``
    each failed flush (metrics).
    """

    def __init__(
        self,
        source: RecordSource,
        writer: ProjectionWriter,
        *,
        batch_rows: int = 5000,
        linger_s: float = 1.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_flush: Callable[[Mapping[str, int]], None] | None = None,
        on_failure: Callable[[SinkError], None] | None = None,
    ) -> None:
        if batch_rows <= 0 or linger_s < 0:
            raise ValueError("batch_rows must be positive and linger_s not negative")
        self.source = source
        self.writer = writer
        self.batch_rows = batch_rows
        self.linger_s = linger_s
        self.backoff = backoff if backoff is not None else Backoff()
        self._sleep = sleep
        self._clock = clock
        self._on_flush = on_flush
        self._on_failure = on_failure
        self.stats = SinkStats()
        self._pending: dict[TopicPartition, int] = {}  # next offset, taken but not committed
        self._taken = 0
        self._oldest: float | None = None  # when the oldest uncommitted message was taken
        self._last_message: float = clock()
        # The writer's row counts when the last flush was reported: a table whose buffer fills
        # inserts while messages are taken, and those rows belong to the next flush's report.
        self._reported: dict[str, int] = dict(writer.rows_written)

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, *, should_stop: Callable[[], bool] = lambda: False, idle_exit_s: float | None = None
    ) -> SinkStats:
        """Consume until ``should_stop()`` or, with ``idle_exit_s``, until no message came
        for that long and the source has nothing left (a sink that lost its partitions in a
        rebalance, or the broker for a moment, is waiting, not idle); then flush and commit
        what was taken. A warehouse that refuses a batch for good (a ``SinkError`` out of a
        checkpoint) stops the sink there: nothing is stored or committed on the way out."""
        refused = False
        try:
            while not should_stop():
                if self.step() or idle_exit_s is None:
                    continue
                if self._clock() - self._last_message >= idle_exit_s:
                    if self.source.caught_up():
                        break
                    self._last_message = self._clock()  # not idle: wait another period
        except SinkError:
            refused = True
            raise
        finally:
            if not refused:
                self.checkpoint()
        return self.stats

    def step(self, timeout_s: float = 0.2) -> int:
        """Poll once, take what came, and checkpoint when the batch is full, old enough, or
        the stream has gone quiet: a poll that brought nothing for ``timeout_s`` ends the
        burst, and its rows go in now rather than after the rest of the linger (the end of a
        backlog, a quiet stream's last records). A steady trickle still waits for the linger,
        so it is inserted in batches, not row by row (ClickHouse's Kafka engine flushes the
        same way: when a poll times out empty, or at its flush interval)."""
        records = self.source.poll(timeout_s, max(1, self.batch_rows - self._taken))
        now = self._clock()
        self._take_all(records)
        if records:
            self._last_message = now
            if self._oldest is None:
                self._oldest = now
        due = self._oldest is not None and now - self._oldest >= self.linger_s
        quiet = not records and self._taken > 0
        if self._taken >= self.batch_rows or due or quiet:
            self.checkpoint()
        return len(records)

    def checkpoint(self) -> None:
        """Make everything taken durable, then commit it — in that order.

        1. ``writer.flush()``: every buffered row goes to ClickHouse (events first, then the
           current-state tables, then dead letters). Retried with backoff while ClickHouse
           is unreachable; the writer resends its sealed batches with the same tokens.
        2. Only then ``source.commit(offsets)``. Committing first would lose the rows of a
           crash between the two steps; flushing first at worst redelivers rows that are
           already stored, which the tokens and ReplacingMergeTree absorb.
        """
        offsets = self._store_taken()
        if not offsets:
            return
        try:
            self.source.commit(offsets)
            self.stats.commits += 1
        except Exception as exc:
            # A rebalance took the partitions away, or the broker is gone for a moment: the
            # rows are stored, so the worst outcome is that they are delivered again.
            log.warning("offset commit failed; messages will be redelivered", error=str(exc))

    def on_revoked(self) -> None:
        """Partitions are being taken away (a rebalance): store every row taken, but commit
        nothing. The Kafka client runs this on its network thread, where a commit cannot be
        made; the partitions' next owner reads again from the last committed offsets, and the
        rows it writes a second time are absorbed (tokens, ReplacingMergeTree)."""
        self._store_taken()

    def _store_taken(self) -> dict[TopicPartition, int]:
        """Flush every row taken to the warehouse (with retries) and forget what was taken;
        the offsets those rows came up to, for the caller to commit (empty: nothing taken)."""
        if not self._pending:
            return {}
        self._flush_with_retry()
        offsets = dict(self._pending)
        self._pending.clear()
        self._taken = 0
        self._oldest = None
        return offsets

    # -- internals -------------------------------------------------------------------------

    def _take_all(self, records: Sequence[SourceRecord]) -> None:
        """Decode what one poll brought and hand it to the writer, one call per table.

        A message that cannot be decoded becomes a ``dead_letters`` row naming it; the
        others of the poll are taken as usual."""
        events: list[DomainEvent] = []
        tickets: list[TicketState] = []
        cycles: list[CycleState] = []
        letters: list[DeadLetter] = []
        decode_event, decode_ticket = CODEC.decode_event, CODEC.decode_ticket
        decode_cycle, decode_letter = CODEC.decode_cycle, CODEC.decode_dead_letter
        for record in records:
            topic = record.topic
            try:
                if topic == "domain-events":
                    events.append(decode_event(record.value))
                elif topic == "ticket-state":
                    tickets.append(decode_ticket(record.value))
                elif topic == "sla-state":
                    cycles.append(decode_cycle(record.value))
                elif topic == "dead-letters":
                    letters.append(decode_letter(record.value))
                else:
                    raise CodecError(f"the sink does not consume topic {topic!r}")
            except CodecError as exc:
                self.stats.undecodable += 1
                letters.append(
                    DeadLetter(
                        at=0,  # its instant is unknown: the epoch, never the wall clock
                        source="sink",
                        reason=f"undecodable {topic} message: {exc}",
                        record=record.value[:2000].hex(),
                        ref=f"{topic}/{record.partition}/{record.offset}",
                    )
                )
            self._pending[(topic, record.partition)] = record.offset + 1
        self.writer.add_events(events)
        self.writer.add_tickets(tickets)
        self.writer.add_cycles(cycles)
        self.writer.add_dead_letters(letters)
        self.stats.messages += len(records)
        self._taken += len(records)

    def _flush_with_retry(self) -> None:
        next_delay = self.backoff.delays()
        started = self._clock()
        while True:
            try:
                self.writer.flush()
                break
            except SinkError as exc:
                if self._on_failure is not None:
                    self._on_failure(exc)
                waited = self._clock() - started
                limit = self.backoff.give_up_after_s
                if not exc.retryable or (limit is not None and waited >= limit):
                    raise
                delay = next_delay()
                self.stats.retries += 1
                log.warning("ClickHouse unavailable; retrying", error=str(exc), in_s=delay)
                self.source.keep_alive()
                self._sleep(delay)
        self.stats.flushes += 1
        reported, self._reported = self._reported, dict(self.writer.rows_written)
        written = {
            table: count - reported.get(table, 0)
            for table, count in self._reported.items()
            if count != reported.get(table, 0)
        }
        if written:  # one line per batch, not per row: at most one a linger period
            log.info("sink flushed", stage="sink", rows=written)
        for table, count in written.items():
            self.stats.rows[table] = self.stats.rows.get(table, 0) + count
        if self._on_flush is not None and written:
            self._on_flush(written)


class KafkaSource:
    """:class:`RecordSource` over kafka-python: one consumer in group ``group_id`` on the four
    sink topics (``prefix`` + logical name). Auto-commit is off: :class:`SinkConsumer`
    commits, after the rows are stored. Offsets start at the earliest message for a new group.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        prefix: str,
        *,
        topics: Sequence[str] = SINK_TOPICS,
        client_id: str = "supportstream-sink",
        on_revoke: Callable[[], None] | None = None,
    ) -> None:
        self._prefix = prefix
        self._logical = {f"{prefix}{name}": name for name in topics}
        try:
            self._consumer: Any = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_interval_ms=600_000,
                # A backlog is read in large fetches (the defaults, 1 MiB per partition, made
                # many small round trips); a poll still returns at most max_records.
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
                # kafka-python checks each batch's CRC-32C in pure Python: a seventh of the
                # sink's CPU. The broker validated it on produce and TCP guards the wire; a
                # corrupt value would still fail Avro decoding and become a dead letter.
                check_crcs=False,
            )
        except KafkaError as exc:
            raise SinkError(f"cannot reach Kafka at {bootstrap}: {exc}", retryable=True) from exc
        self._consumer.subscribe(list(self._logical), listener=_Listener(on_revoke))

    def poll(self, timeout_s: float, max_records: int) -> Sequence[SourceRecord]:
        # kafka-python waits for records by fetching again as soon as a fetch comes back
        # empty; a broker that answers an empty fetch at once (noida-db; Kafka itself when
        # fetch.max.wait.ms is short) makes that a busy loop, which cost an idle sink most of
        # a core. So poll without waiting, and sleep between polls that bring nothing.
        #
        # Joining the group (at start, after a rebalance) is the exception: kafka-python moves
        # a join forward only inside a poll, and a poll of 0 ms started a join it then gave
        # up, again and again: a new sink took 10 s or more to receive anything while the
        # broker spent half a core on join requests. Until it has its partitions, the sink
        # polls patiently.
        deadline = time.monotonic() + timeout_s
        while True:
            wait_ms = JOIN_POLL_MS if self._joining() else 0
            batches = self._consumer.poll(timeout_ms=wait_ms, max_records=max_records)
            if batches or time.monotonic() >= deadline:
                break
            if not wait_ms:
                time.sleep(IDLE_POLL_S)
        out: list[SourceRecord] = []
        for tp, messages in batches.items():
            name = self._logical[tp.topic]
            out.extend(SourceRecord(name, tp.partition, m.offset, m.value) for m in messages)
        return out

    def _joining(self) -> bool:
        """Whether the consumer has no partitions yet or its group asks it to join again."""
        if not self._consumer.assignment():
            return True
        coordinator = getattr(self._consumer, "_coordinator", None)
        need_rejoin = getattr(coordinator, "need_rejoin", None)
        return bool(need_rejoin()) if callable(need_rejoin) else False

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._consumer.commit(
            {
                KafkaTopicPartition(f"{self._prefix}{topic}", partition): OffsetAndMetadata(
                    offset, "", -1
                )
                for (topic, partition), offset in offsets.items()
            }
        )

    def keep_alive(self) -> None:
        # Polling with every partition paused keeps the group membership (and the heartbeat)
        # alive without taking messages the sink could not store yet.
        assigned = self._consumer.assignment()
        self._consumer.pause(*assigned)
        try:
            self._consumer.poll(timeout_ms=0)
        finally:
            self._consumer.resume(*assigned)

    def caught_up(self) -> bool:
        assigned = self._consumer.assignment()
        if not assigned:
            return False
        try:
            ends = self._consumer.end_offsets(list(assigned))
            return all(self._consumer.position(tp) >= ends[tp] for tp in assigned)
        except KafkaError:
            return False

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Before partitions move to another sink, what was taken from them is stored
    (``on_revoke`` is the consumer's ``on_revoked``)."""

    def __init__(self, on_revoke: Callable[[], None] | None) -> None:
        self._on_revoke = on_revoke

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self._on_revoke is not None and revoked:
            self._on_revoke()

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass

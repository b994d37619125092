"""The one place that reaches into Faust's and aiokafka's internals (STYLE 13).

Everything the workers need from the frameworks that no public API gives is here, behind the
functions, each saying which internal it relies on and why; ``tests/streams/faust/
test_faust_port.py`` is their contract suite, so a framework upgrade that moves one of them
fails there, by name, rather than as a wrong result under load.

* :func:`committed_offset`: the offset Faust last committed for a partition.
* :func:`highwater`: a partition's end offset, or None when the broker does not answer soon.
* :func:`install_fetch_backoff`: aiokafka fetches again at once after an empty fetch
  response; against a broker that answers empty fetches without waiting (noida-db, or Kafka
  with a short ``fetch.max.wait.ms``) an idle consumer spins. A short pause after an empty
  response bounds that.
* :func:`install_lean_standby`: a standby copy of a table followed its changelog through
  Faust's per-message path (a message, an event and a queue round trip each, two debug
  f-strings, a buffer applied every thousand events). The patch takes the standby
  partitions' records out of each fetch and applies them to the table's store in one batch
  per partition, with the recovery's own bookkeeping (:func:`follow_standby_changelogs`).
* :func:`install_seek_to_start_without_commit`: after a rebalance Faust seeks each partition
  to its committed offset, and a partition with none keeps whatever position the consumer
  reached meanwhile; records it fetched during table recovery are then dropped unprocessed
  (faust-streaming 0.15; faust-streaming#216/#221 are the same family). The patch seeks such
  a partition to its first offset, as ``auto_offset_reset=earliest`` promises.
* :func:`install_member_id_kept_on_illegal_generation`: aiokafka forgets its member id when
  the coordinator answers ILLEGAL_GENERATION (a commit or heartbeat of a generation a
  rebalance has just ended) and joins again as a new member; the old member stays in the
  group until the coordinator expires it, and while it is there it can be the leader of the
  next generation that never syncs. Kafka's Java consumer keeps its member id on that error
  (only UNKNOWN_MEMBER_ID resets it); the patch does the same.
* :func:`install_rejoin_on_empty_assignment`: a SyncGroup answer without an assignment for
  this member (empty bytes: the leader did not assign it) made aiokafka's coordinator task die
  on decoding it, and the worker ran on without ever joining its group again. The patch treats
  it as a failed join: it says so and joins again.
* :func:`install_tables_start_without_pause`: Faust's table manager sleeps a second before
  it starts the tables, in case more are defined meanwhile; the workers define theirs before
  the app starts, so the patch leaves the sleep out (a second of every start and failover).
* :func:`reseek_stalled_recovery`: a changelog fetch that lands while a rebalance begins is
  dropped by Faust's ``getmany`` (the generation changed) after aiokafka has moved past it;
  Faust's recovery then waits for offsets that will never come again. Called every second,
  it seeks such a partition back to what the recovery has read.
* :class:`TableWrites`: the desk table's writes go to its store at once and to its changelog
  as record batches (:class:`RecordBatches`) the desk awaits before its input ends, in the
  bytes Faust's own ``send_changelog`` writes (its serializers), instead of one message each
  through Faust's producer buffer, whose flush before a commit also gave up after 0.1 s
  without a send (faust-streaming 0.15: offsets were committed with their changelog writes
  still buffered).
* :class:`MemoryStoreWithOffsets` (:func:`keep_changelog_offsets`): Faust's in-memory store
  answers no changelog offset, so at every rebalance Faust's recovery read a table's whole
  changelog again, even on the worker whose store already held it (the desk paused while a
  second worker joined). This store knows the offset it holds of each partition (the desk's
  delivered writes, the batches recovery and standby apply) and answers it; it drops a
  partition, and forgets its offset, when the worker holds it no longer.
* :class:`RecordBatches`: the desk's outputs handed to aiokafka's producer as one record batch
  per partition (``create_batch``/``send_batch``, public aiokafka API reached through Faust's
  producer, which has no batch call), partitioned by aiokafka's own partitioner (Kafka's
  murmur2 of the key, as ``send`` does) with the partition of each key remembered. One
  ``send`` per message cost a future, Faust's wrapper and a pure-Python murmur2 each, and
  every batch waited out the producer's linger although the input's messages were complete.
* :func:`awaits`: where a task waits, frame by frame through the coroutines, async generators
  and awaitables it awaits (mode's SIGUSR1 dump stops at the first async generator, and a
  Faust agent is one); the workers log it for their own tasks on SIGUSR2.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import time
from collections.abc import (
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from typing import Any

import orjson
import structlog
from faust.stores.memory import Store as FaustMemoryStore
from faust.types import TP
from faust.utils.tracing import finish_span
from yarl import URL

FETCH_BACKOFF_S = 0.05
"""The pause after a fetch response that brought no records (the latency it can add)."""

RECOVERY_STALL_S = 3.0
"""How long a changelog partition behind its highwater may bring nothing during recovery
before it is sought back to what the recovery has read."""

PATCHED = "_supportstream_patched"
"""The attribute marking a framework method this module replaced."""

log = structlog.get_logger("supportstream.worker")


def _replace(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Set ``owner.name`` to ``make(original)``, marked with ``PATCHED``, unless it is a
    replacement already: every ``install_*`` below is idempotent through this."""
    original = getattr(owner, name)
    if getattr(original, PATCHED, False):
        return
    replacement = make(original)
    setattr(replacement, PATCHED, True)
    setattr(owner, name, replacement)


Sent = tuple[asyncio.Future[Any], int]
"""One record batch handed to the producer: its delivery (RecordMetadata of its first
record, once the broker has it) and how many records it holds."""


class RecordBatches:
    """Sends lists of messages through the worker's Kafka producer as record batches: the
    messages of one topic partition, in the order given, in as few batches as the producer's
    ``max_batch_size`` allows, each closed so the producer sends it without lingering (the
    list is complete). Each key goes to the partition aiokafka's ``send`` would choose (its
    default partitioner: Kafka's murmur2, as the Java client), remembered per topic until the
    topic's partition count changes, unless the caller names the partition."""

    MAX_KEYS = 200_000
    """Keys whose partition is remembered, per topic, before the memory starts over."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._partitions: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    async def send(
        self, messages: list[tuple[str, bytes, bytes | None]], partition: int | None = None
    ) -> list[Sent]:
        """Hand ``messages`` (topic, key, value; a None value is a deletion) to the producer,
        to ``partition`` if given; returns their batches, whose futures complete when the
        broker has them (the producer's ``acks``)."""
        if not messages:
            return []
        producer = self._app.producer._ensure_producer()  # aiokafka's AIOKafkaProducer
        keys: dict[str, dict[bytes, int]] = {}  # each topic's, checked once per call
        batches: dict[tuple[str, int], Any] = {}
        sent: list[Sent] = []
        for topic, key, value in messages:
            target = partition
            if target is None:
                known = keys.get(topic)
                if known is None:
                    known = keys[topic] = await self._keys(producer, topic)
                target = known.get(key)
                if target is None:
                    partitions = self._partitions[topic][0]
                    target = known[key] = int(producer._partitioner(key, partitions, partitions))
            batch = batches.get((topic, target))
            if batch is None:
                batch = batches[topic, target] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                # Full (an empty batch takes any one message, so this one fits the next).
                sent.append(await self._send(producer, batch, topic, target))
                batch = batches[topic, target] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, target), batch in batches.items():
            batch.close()
            sent.append(await self._send(producer, batch, topic, target))
        return sent

    async def deliver(
        self, messages: list[tuple[str, bytes, bytes | None]], partition: int | None = None
    ) -> dict[TP, int]:
        """:meth:`send`, then wait until the broker has every batch (a failed one raises);
        returns the offset of the last message written to each topic partition."""
        sent = await self.send(messages, partition)
        delivered = await asyncio.gather(*(future for future, _ in sent))
        # A partition's batches are in the order they were sent: its last one ends last.
        return {
            TP(meta.topic, meta.partition): meta.offset + count - 1
            for meta, (_, count) in zip(delivered, sent, strict=True)
        }

    @staticmethod
    async def _send(producer: Any, batch: Any, topic: str, partition: int) -> Sent:
        return await producer.send_batch(batch, topic, partition=partition), batch.record_count()

    async def _keys(self, producer: Any, topic: str) -> dict[bytes, int]:
        """The remembered partitions of ``topic``'s keys, forgotten if its partitions
        changed (or too many are remembered)."""
        await producer.client._wait_on_metadata(topic)
        partitions = sorted(producer.client.cluster.partitions_for_topic(topic))
        known = self._partitions.get(topic)
        if known is None or known[0] != partitions or len(known[1]) >= self.MAX_KEYS:
            known = self._partitions[topic] = (partitions, {})
        return known[1]


class MemoryStoreWithOffsets(FaustMemoryStore[Any, Any]):
    """Faust's in-memory table store, which also knows the changelog offset it holds of each
    partition, and holds a partition only while its worker does.

    Faust's recovery starts each changelog partition it restores (active or standby) at the
    store's ``persisted_offset``; Faust's memory store answers None, so every rebalance read
    the whole changelog again into a store that already held it. This one answers the offset
    of the last changelog message its partition holds: recorded by
    :meth:`set_persisted_offset` (:meth:`TableWrites.flush` once the broker has the writes,
    as Faust's own changelog send does) and by :meth:`apply_changelog_batch` (recovery's and
    a standby's batches, :func:`follow_standby_changelogs` included). A rebalance that leaves
    the partition on this worker, active or standby, resumes there: a worker that keeps the
    desk reads nothing, one that takes it over from its standby copy reads the tail.

    What it holds of a partition is a prefix of that partition's changelog, or nothing:

    * a partition revoked (no longer assigned to the worker, neither active nor standby) is
      dropped with its offset (:meth:`on_rebalance`); assigned again, it is restored from
      the changelog's start, which holds what other workers wrote meanwhile. An offset
      recorded for a dropped partition before it is assigned again (a write still in flight)
      is not trusted;
    * Faust's store drops, when a rebalance's recovery completes, the keys of every
      partition not active on the worker, a standby's among them, while its recovery keeps
      following the standby from its offset: the copy was no longer a prefix. Here the
      partitions active or standby on the worker are kept (:meth:`on_recovery_completed`);
    * a key's partition is what Faust's store keeps for the keys it applied from the
      changelog (``_key_partition``), and :class:`TableWrites` records it for the keys it
      writes (:attr:`key_partitions`), so dropping a partition drops all of its keys.

    The offsets it recorded and the messages it applied since the last rebalance are logged
    for the active partitions once their recovery completes (``table recovered``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.offsets: dict[TP, int] = {}
        self.applied: dict[TP, int] = {}  # changelog messages applied since the rebalance
        self._resumed_from: dict[TP, int | None] = {}
        self._dropped: set[TP] = set()  # revoked, not assigned again since

    @property
    def key_partitions(self) -> dict[Any, int]:
        """The partition of each key the store holds (Faust's memory store's own map)."""
        partitions: dict[Any, int] = self._key_partition  # type: ignore[assignment]
        return partitions

    def persisted_offset(self, tp: TP) -> int | None:
        return self.offsets.get(tp)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        if tp not in self._dropped:
            self.offsets[tp] = offset

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        events = batch if isinstance(batch, list) else list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        offsets, applied, dropped = self.offsets, self.applied, self._dropped
        for event in events:
            message = event.message
            tp = message.tp
            applied[tp] = applied.get(tp, 0) + 1
            if tp not in dropped:
                offsets[tp] = message.offset

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        # Called by the table before Faust's recovery asks for the offsets (TableManager).
        topic = self.table.changelog_topic.get_topic_name()
        held = {tp for tp in assigned if tp.topic == topic}
        gone = {tp for tp in revoked if tp.topic == topic}
        self._dropped -= held
        if gone:
            if held:
                self._drop({tp.partition for tp in gone})
            else:  # nothing of the table is left here, keys of no known partition included
                self.data.clear()
                self._key_partition.clear()
            for tp in gone:
                self.offsets.pop(tp, None)
            self._dropped |= gone
        self.applied.clear()
        self._resumed_from = {tp: self.persisted_offset(tp) for tp in held}

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        held = active_tps | standby_tps
        partitions = {tp.partition for tp in held}
        self._drop({p for p in set(self._key_partition.values()) if p not in partitions})
        for tp in [tp for tp in self.offsets if tp.partition not in partitions]:
            del self.offsets[tp]
            self._dropped.add(tp)
        for tp in sorted(active_tps):
            log.info(
                "table recovered",
                partition=f"{tp.topic}/{tp.partition}",
                resumed_from=self._resumed_from.get(tp),
                read=self.applied.get(tp, 0),
                offset=self.offsets.get(tp),
            )

    def _drop(self, partitions: set[int]) -> None:
        if not partitions:
            return
        data, key_partition = self.data, self._key_partition
        for key in [k for k, p in key_partition.items() if p in partitions]:
            data.pop(key, None)
            del key_partition[key]


def keep_changelog_offsets(table: Any) -> Any:
    """Give ``table`` (not started, its store not built yet) a
    :class:`MemoryStoreWithOffsets` if its store is Faust's in-memory one (``memory://``);
    any other store (``rocksdb://`` persists its offsets itself) is left to Faust. Returns
    the table. Builds the store as Faust's ``Collection._new_store_by_url`` does and sets it
    where ``Collection.data`` keeps it (``_data``); ``test_faust_port`` checks both."""
    url = URL(table._store or table.app.conf.store)
    if url.scheme != "memory":
        return table
    if table._data is not None:
        raise RuntimeError(f"table {table.name}: its store is built already")
    table._data = MemoryStoreWithOffsets(
        url,
        table.app,
        table,
        table_name=table.name,
        key_type=table.key_type,
        key_serializer=table.key_serializer,
        value_serializer=table.value_serializer,
        value_type=table.value_type,
        loop=table.loop,
        options=table.options,
    )
    return table


_DELETED = object()


class TableWrites(MutableMapping[str, Any]):
    """One partition of a Faust table, written as Faust writes it but sent as batches.

    ``table[key] = value`` in Faust writes the store, then queues one changelog message in
    Faust's producer buffer, whose task hands it to the producer later, one ``send`` each
    (``Table.on_key_set``). Here a write goes to the store at
    once, as Faust's does, and its changelog message waits in :attr:`pending` until
    :meth:`flush`, which serializes it exactly as Faust's ``send_changelog`` does (the
    table's key and value serializers through its changelog topic, a deletion as a null
    value), sends the writes as record batches to the partition's changelog in the order
    they were made, and returns once the broker has them. Faust's recovery and standby
    replicas read that changelog as their own. Every write of the partition must come
    through one such view: writes of Faust's own path could overtake these in the changelog.
    """

    def __init__(self, table: Any, batches: RecordBatches, partition: int) -> None:
        self.table = table
        self.partition = partition
        self.pending: list[tuple[str, Any]] = []
        self._batches = batches
        # Reads go to the store, as writes do: Faust's Table.__getitem__ adds per-key hooks
        # (its monitor's count, windowed tables' expiry) this table has no use for, and a
        # missing key raised through each of its layers. The in-memory store keeps its
        # values in a plain dict, read directly.
        store = table.data
        inner = getattr(store, "data", None)
        self._reads: Mapping[str, Any] = inner if isinstance(inner, dict) else store
        # A store that drops a partition's keys needs to know which keys are this one's.
        self._key_partitions: dict[Any, int] | None = (
            store.key_partitions if isinstance(store, MemoryStoreWithOffsets) else None
        )

    def __getitem__(self, key: str) -> Any:
        return self._reads[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._reads.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._reads

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table.data[key] = value
        self.pending.append((key, value))
        if self._key_partitions is not None:
            self._key_partitions[key] = self.partition

    def __delitem__(self, key: str) -> None:
        del self.table.data[key]
        self.pending.append((key, _DELETED))
        if self._key_partitions is not None:
            self._key_partitions.pop(key, None)

    async def flush(self) -> None:
        """Send the pending writes to the changelog and wait until the broker has them (a
        failure raises: the store then holds writes its changelog lacks, and the caller
        must not go on with it). The store then records the changelog offset it holds, as
        Faust's own send does: the recovery of a rebalance that leaves the partition here
        resumes there (a RocksDB store's, or a :class:`MemoryStoreWithOffsets`)."""
        if not self.pending:
            return
        topic = self.table.changelog_topic
        name = topic.get_topic_name()
        messages: list[tuple[str, bytes, bytes | None]] = []
        key_serializer, value_serializer = self.table.key_serializer, self.table.value_serializer
        # A string key under Faust's JSON serializer is orjson's encoding of it (what Faust's
        # json codec calls), and a raw value is the bytes themselves: written directly, as
        # the contract suite checks against prepare_key/prepare_value; other serializers
        # go through Faust's.
        json_keys = key_serializer == "json"
        raw_values = value_serializer == "raw"
        for key, value in self.pending:
            if json_keys and type(key) is str:
                key_bytes = orjson.dumps(key)
            else:
                key_bytes, _ = topic.prepare_key(key, key_serializer)
            value_bytes = None
            if value is not _DELETED:
                if raw_values and type(value) is bytes:
                    value_bytes = value
                else:
                    value_bytes, _ = topic.prepare_value(value, value_serializer)
            messages.append((name, key_bytes, value_bytes))
        self.pending = []
        for tp, last in (await self._batches.deliver(messages, self.partition)).items():
            self.table.data.set_persisted_offset(tp, last)


def committed_offset(app: Any, tp: TP) -> int:
    """The offset Faust last committed for ``tp`` (or found committed when the partition was
    assigned); 0 if none. Faust keeps it in ``Consumer._committed_offset`` (no accessor)."""
    return int(getattr(app.consumer, "_committed_offset", {}).get(tp) or 0)


async def highwater(app: Any, tp: TP, timeout_s: float = 5.0) -> int | None:
    """The end offset of ``tp``, or None when the broker is slow or away (simply not now)."""
    try:
        highwaters = await asyncio.wait_for(app.consumer.highwaters(tp), timeout=timeout_s)
    except Exception:
        return None
    end = highwaters.get(tp)
    return None if end is None else int(end)


def install_fetch_backoff(fetcher_class: Any = None, delay_s: float = FETCH_BACKOFF_S) -> None:
    """Make aiokafka's fetcher pause ``delay_s`` after a fetch response without records
    (``Fetcher._proc_fetch_request`` returns whether it added records). Idempotent."""
    if fetcher_class is None:
        from aiokafka.consumer.fetcher import Fetcher

        fetcher_class = Fetcher

    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def proc_fetch_request(self: Any, *args: Any, **kwargs: Any) -> Any:
            added = await original(self, *args, **kwargs)
            if not added:
                try:
                    await asyncio.sleep(delay_s)
                except asyncio.CancelledError:
                    # As the original does: a fetch cancelled by ``close()`` or an
                    # unassignment ends quietly (``Fetcher.close`` awaits its cancelled
                    # fetch tasks).
                    return added
            return added

        return proc_fetch_request

    _replace(fetcher_class, "_proc_fetch_request", make)


def install_drain_without_a_task_per_message(consumer_class: Any = None) -> None:
    """Replace Faust's ``Consumer._drain_messages`` (the loop that hands every fetched
    message to its stream) with Faust 0.15's body in which each message is delivered by
    :func:`_deliver` instead of ``await self.wait_first(callback(message),
    self.suspend_flow.wait())``. Idempotent.

    Why: ``wait_first`` makes four tasks for every message (the delivery, the wait for the
    flow to be suspended, and the consumer's stopped and crashed events), waits for the
    first, and cancels the other three: about 22 µs a message alone on this machine, about a
    sixth of a worker's intake of a backlog (py-spy); a standby paid it for every changelog
    message too, until :func:`install_lean_standby` took those out of the fetch. The
    delivery (Faust's ``Conductor.on_message``: the message's stream, its buffer) almost
    always finishes at once, so :func:`_deliver` runs it first and only when it has to wait
    (a full stream buffer, a busy lock) waits as ``wait_first`` did, for it or for the flow
    to be suspended (a rebalance), whichever comes first."""
    if consumer_class is None:
        from faust.transport.consumer import Consumer

        consumer_class = Consumer

    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def drain_messages(self: Any, fetcher: Any) -> None:
            # Faust 0.15's body (faust/transport/consumer.py), its one wait_first replaced.
            from faust.transport.consumer import CONSUMER_FETCHING

            callback = self.callback
            getmany = self.getmany
            consumer_should_stop = self._stopped.is_set
            fetcher_should_stop = fetcher._stopped.is_set
            get_read_offset = self._read_offset.__getitem__
            set_read_offset = self._read_offset.__setitem__
            set_flag = self.diag.set_flag
            unset_flag = self.diag.unset_flag
            commit_every = self._commit_every
            acks_enabled_for = self.app.topics.acks_enabled_for
            yield_every = 100
            num_since_yield = 0
            sleep = asyncio.sleep
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    set_flag(CONSUMER_FETCHING)
                    ait = getmany(timeout=1.0)
                    await self.sleep(0)
                    if not self.should_stop:
                        async for tp, message in ait:
                            num_since_yield += 1
                            if num_since_yield > yield_every:
                                await sleep(0)
                                num_since_yield = 0
                            offset = message.offset
                            r_offset = get_read_offset(tp)
                            if r_offset is None or offset >= r_offset:
                                gap = offset - (r_offset or 0)
                                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                                if commit_every is not None and self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                                await _deliver(self, callback(message))
                                set_read_offset(tp, offset)
                        unset_flag(CONSUMER_FETCHING)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    self.log.info("Broker stopped consumer, shutting down...")
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    self.log.info("Consumer shutting down for user cancel.")
                    return
                raise
            except Exception as exc:
                self.log.exception("Drain messages raised: %r", exc)
                raise
            finally:
                unset_flag(CONSUMER_FETCHING)

        return drain_messages

    _replace(consumer_class, "_drain_messages", make)


async def _deliver(consumer: Any, delivery: Coroutine[Any, Any, Any]) -> None:
    """Run ``delivery`` to its end if it gets there without waiting (no task made); if it
    has to wait, wait as Faust's drain loop did: for it, or for the consumer's flow to be
    suspended (a rebalance), or for the consumer to stop or crash, whichever is first, the
    delivery cancelled in the other cases (``Service.wait_first``)."""
    try:
        waiting_for = delivery.send(None)
    except StopIteration:
        return
    await consumer.wait_first(_Resumed(delivery, waiting_for), consumer.suspend_flow.wait())


class _Resumed:
    """A coroutine run up to its first wait, awaited from there: what it waits for is handed
    to the task awaiting this, and what that task sends or throws goes to the coroutine (as
    ``await`` delegates: PEP 380)."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_for: Any) -> None:
        self._coroutine = coroutine
        self._waiting_for = waiting_for

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_for = self._coroutine, self._waiting_for
        while True:
            try:
                sent = yield waiting_for
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # a cancellation, thrown in by the task
                try:
                    waiting_for = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting_for = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


class _ChangelogMessage:
    """What Faust's stores read of a changelog message (``event.message``), copied from
    aiokafka's record: the in-memory store its value and partition, the RocksDB store its
    key, value, partition, ``tp`` and offset."""

    __slots__ = ("headers", "key", "offset", "partition", "topic", "tp", "value")

    def __init__(self, tp: TP, record: Any) -> None:
        self.tp = tp
        self.topic = tp.topic
        self.partition = tp.partition
        self.offset = record.offset
        self.key = record.key
        self.value = record.value
        self.headers = record.headers


class _ChangelogEvent:
    """What Faust's stores read of a changelog event: its decoded key and value (as the
    changelog channel decodes them) and its message."""

    __slots__ = ("key", "message", "value")

    def __init__(self, key: Any, value: Any, message: _ChangelogMessage) -> None:
        self.key = key
        self.value = value
        self.message = message


class _Standbys:
    """One consumer's standby bookkeeping beyond Faust's: the last offset of each standby
    partition whose records were left to Faust's path, with the generation they were left in
    (until Faust's recovery has read up to it, that partition stays on Faust's path, so the
    two paths never apply a partition's messages out of order; a rebalance ends it, as the
    recovery then seeks the partition to its standby offset and Faust's queue is cleared),
    and the partitions said to follow, once per generation."""

    def __init__(self) -> None:
        self.left_to_faust: dict[TP, tuple[int, int]] = {}
        self.following: dict[TP, int] = {}  # the generation each was last said to follow in


def follow_standby_changelogs(
    consumer: Any, records: Mapping[Any, list[Any]], active_partitions: Any
) -> Mapping[Any, list[Any]]:
    """Apply to their tables the ``records`` (one fetch: topic partition -> aiokafka records)
    of changelog partitions this worker holds as standby, as Faust's recovery would apply
    them; returns the other partitions' records, for Faust's ``getmany``.

    Faust's path turns every such record into a message and an event, queues it for the
    recovery task (``Recovery._slurp_changelogs``), which takes it off the queue with a
    timeout, logs it twice and buffers it until ``standby_buffer_size`` events are waiting.
    Here one fetch's records of a partition are decoded as the changelog channel decodes
    them and applied in one ``table.apply_changelog_batch`` (the store's own: an in-memory
    dict update, or a RocksDB write batch that also persists the offset), and the recovery's
    own bookkeeping is updated as its loop does: ``standby_offsets``, the time a standby
    partition last brought something, the last flush, and ``tables.on_standbys_ready()``
    once no standby partition is behind its highwater. A record at or below the standby
    offset is skipped, as there.

    A partition's records take this path only if they are what Faust's ``getmany`` would
    deliver now (the consumer's flow is on, the partition is among those the fetch was for or
    buffered) and what the recovery would apply as standby: the partition is in its
    ``standby_tps`` and not its ``active_tps`` (a partition restored as active stays on
    Faust's path), for the generation the consumer is in (the recovery has taken the latest
    rebalance in: its ``standby_tps`` are this generation's), with the app's flow control on
    and nothing of Faust's path still to apply before (the changelog queue empty, and the
    partition's records last left to Faust's path, if any, read by the recovery). Runs
    without awaiting anything, so no rebalance happens in the middle of a fetched batch.
    Any other records go to Faust's ``getmany`` unchanged, which checks and delivers them
    as before."""
    app = consumer.app
    tables = app.tables
    recovery = tables.recovery
    standby_tps = recovery.standby_tps
    if not standby_tps or not any(tp in standby_tps for tp in records):
        return records
    standbys = getattr(consumer, "_supportstream_standbys", None)
    if standbys is None:
        standbys = consumer._supportstream_standbys = _Standbys()
    generation = app.consumer_generation_id
    faust_delivers = consumer.flow_active  # getmany drops a whole fetch otherwise
    lean = (
        faust_delivers
        and app.flow_control.is_active()
        and recovery._generation_id == generation
        and tables.changelog_queue.empty()
    )
    buffered = consumer._buffered_partitions
    standby_offsets = recovery.standby_offsets
    rest: dict[Any, list[Any]] = {}
    applied = False
    for tp, batch in records.items():
        if tp not in standby_tps or not batch:
            rest[tp] = batch
            continue
        delivered = faust_delivers and (
            active_partitions is None or tp in active_partitions or tp in buffered
        )
        left = standbys.left_to_faust.get(tp)
        faust_has_some = (
            left is not None
            and left[0] == generation
            and not _at_least(standby_offsets.get(tp), left[1])
        )
        table = recovery.tp_to_table.get(tp)
        if not (
            lean
            and delivered
            and not faust_has_some
            and tp not in recovery.active_tps
            and table is not None
            and table._on_changelog_event is None
            and _apply_standby_batch(app, recovery, table, tp, batch)
        ):
            rest[tp] = batch
            if delivered:  # Faust's path takes them: the next ones must wait for it
                standbys.left_to_faust[tp] = (generation, batch[-1].offset)
            continue
        standbys.left_to_faust.pop(tp, None)
        if standbys.following.get(tp) != generation:
            standbys.following[tp] = generation
            log.info(
                "standby table follows its changelog in fetched batches",
                partition=f"{tp.topic}/{tp.partition}",
                offset=recovery.standby_offsets.get(tp),
                generation=generation,
            )
        consumer._read_offset[tp] = batch[-1].offset  # as the drain loop records it
        app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))  # as getmany does
        applied = True
    if applied:
        _maybe_standbys_ready(recovery, tables)
    return rest


def _at_least(offset: int | None, wanted: int) -> bool:
    return offset is not None and offset >= wanted


def _apply_standby_batch(app: Any, recovery: Any, table: Any, tp: TP, batch: list[Any]) -> bool:
    """Decode and apply the records of ``batch`` above the partition's standby offset; False
    (nothing applied) if one does not decode, for Faust's path to report it as it does."""
    seen = recovery.standby_offsets.get(tp)
    topic = table.changelog_topic
    schema = topic.schema
    json_keys = table.key_serializer == "json" and table.key_type is str
    raw_values = table.value_serializer == "raw" and table.value_type is bytes
    events: list[_ChangelogEvent] = []
    try:
        for record in batch:
            if seen is not None and record.offset <= seen:
                continue
            message = _ChangelogMessage(tp, record)
            raw_key = message.key
            # The decoding the changelog channel's schema does, for this table's codecs
            # directly (the contract suite compares them); other codecs through it.
            if json_keys and raw_key is not None:
                key = orjson.loads(raw_key)
            else:
                key = schema.loads_key(app, message)
            value = message.value if raw_values else schema.loads_value(app, message)
            events.append(_ChangelogEvent(key, value, message))
    except Exception:
        return False
    if not events:
        return True
    now = time.monotonic()
    # Events Faust's path buffered for the table are older than these: applied first.
    waiting = recovery.buffers.get(table)
    if waiting:
        table.apply_changelog_batch(waiting)
        waiting.clear()
    table.apply_changelog_batch(events)
    recovery.standby_offsets[tp] = events[-1].message.offset
    recovery._standby_events_received_at[tp] = now
    recovery._last_flush_at = now
    return True


def _maybe_standbys_ready(recovery: Any, tables: Any) -> None:
    """What the recovery loop does after a standby event: once no standby partition is
    behind its highwater, the standbys are ready (for Faust's ``standbys_ready``)."""
    if recovery._standbys_span is None and tables.standbys_ready:
        return
    try:
        remaining = recovery.standby_remaining_total()
    except TypeError:  # a standby offset not built yet (None): not ready
        return
    if remaining:
        return
    if recovery._standbys_span is not None:
        finish_span(recovery._standbys_span)
        recovery._standbys_span = None
    tables.on_standbys_ready()


def install_lean_standby(consumer_class: Any = None) -> None:
    """Replace Faust's ``Consumer._wait_next_records`` (the fetch ``getmany`` starts with:
    it returns the fetched records and the partitions fetched) with one that passes what it
    fetched through :func:`follow_standby_changelogs` and returns the rest. Idempotent.

    Why: a standby copy of the desk's table follows every write of the desk, and Faust's
    path cost it about 75 µs a changelog message (py-spy: a message, an event and a queue
    round trip per message, two debug f-strings, its buffering): most of the second worker's
    CPU on a machine it shares with the desk, which made two workers slower than one."""
    if consumer_class is None:
        from faust.transport.consumer import Consumer

        consumer_class = Consumer

    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def wait_next_records(self: Any, timeout: float) -> Any:
            records, active_partitions = await original(self, timeout)
            if records:
                records = follow_standby_changelogs(self, records, active_partitions)
            return records, active_partitions

        return wait_next_records

    _replace(consumer_class, "_wait_next_records", make)


def install_seek_to_start_without_commit(consumer_class: Any = None) -> None:
    """Replace Faust's ``Consumer.perform_seek`` (run once the tables have recovered, before
    the streams resume) with one that does what it did, then seeks every assigned stream
    partition the group has no committed offset for (or offset 0) to its earliest offset,
    forgetting any offset this consumer remembered committing for it. Idempotent.

    Why: during recovery after a rebalance the fetcher keeps fetching the newly assigned
    partitions and Faust discards what it fetched (its flow is suspended). ``perform_seek``
    then moves each partition back to its committed offset, but aiokafka's
    ``seek_to_committed`` skips a partition without one, so its position stays after the
    discarded records and they are never processed: a raw partition a killed worker had
    parsed but not committed lost every record (the failover test found it; the desk's merge
    then waited for that partition for ever). Changelog partitions are left to Faust's
    recovery, which seeks them itself."""
    if consumer_class is None:
        from faust.transport.consumer import Consumer

        consumer_class = Consumer

    async def perform_seek(self: Any) -> None:
        # Faust 0.15's body, unchanged: positions and read offsets from the committed ones.
        committed = await self.seek_to_committed()
        self._read_offset.update(
            {tp: o if o is not None and o >= 0 else None for tp, o in committed.items()}
        )
        self._committed_offset.update(
            {TP(tp.topic, tp.partition): o or None for tp, o in committed.items() if o is not None}
        )
        # The fix: a partition without a committed offset starts at its beginning.
        by_tp = {(tp.topic, tp.partition): o for tp, o in committed.items()}
        changelogs = set(self.app.tables.changelog_topics)
        uncommitted = sorted(
            tp
            for tp in self.assignment()
            if tp.topic not in changelogs and not (by_tp.get((tp.topic, tp.partition)) or 0) > 0
        )
        if not uncommitted:
            return
        earliest = await self.earliest_offsets(*uncommitted)
        for tp in uncommitted:
            self._committed_offset[tp] = None
            await self.seek(tp, int(earliest.get(tp) or 0))

    _replace(consumer_class, "perform_seek", lambda original: perform_seek)


def install_member_id_kept_on_illegal_generation(coordinator_class: Any = None) -> None:
    """Replace aiokafka's ``GroupCoordinator.reset_generation`` with one that does what it did
    but keeps the member id when the error being handled is ILLEGAL_GENERATION. Idempotent.

    aiokafka 0.14 calls ``reset_generation()`` from the branches of its commit, heartbeat,
    join and sync handlers that handle UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION, each with the
    error's class in a local ``error_type`` (``test_faust_port`` checks every call site). The
    original forgets the member id in both cases, so after ILLEGAL_GENERATION the consumer
    joins as a new member while its old id is still a member. Kafka removes that ghost only
    after the rebalance timeout (a delay of a whole rebalance timeout at every such commit);
    the test broker (noida-db) never does, and when the ghost was the leader every later
    generation waited for its SyncGroup for ever: two workers starting together, one of them
    committing its first offsets while the other joined, stalled for good (the failover test
    and the two-worker benchmark, one run in a few). Kafka's Java consumer keeps the member
    id on ILLEGAL_GENERATION and rejoins under it; so does this."""
    if coordinator_class is None:
        from aiokafka.consumer.group_coordinator import GroupCoordinator

        coordinator_class = GroupCoordinator
    from aiokafka.errors import IllegalGenerationError

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def reset_generation(self: Any) -> None:
            member_id = self.member_id
            handled = sys._getframe(1).f_locals.get("error_type")
            original(self)
            if handled is IllegalGenerationError:
                self.member_id = member_id

        return reset_generation

    _replace(coordinator_class, "reset_generation", make)


def install_rejoin_on_empty_assignment(rebalance_class: Any = None) -> None:
    """Replace aiokafka's ``CoordinatorGroupRebalance.perform_group_join`` (JoinGroup and
    SyncGroup; returns ``(protocol, assignment bytes)``, or None for "back off and join
    again") with one that returns None, and asks for a rejoin, when the assignment bytes are
    empty. Idempotent.

    The coordinator answers empty bytes to a member the leader's assignment left out. The
    test broker did so to a leader whose own JoinGroup answer had listed only the other
    member; aiokafka 0.14 then failed to decode the empty assignment inside its coordination
    task, which died ("Unexpected error in coordinator routine"): the worker kept running, in
    no generation, and never joined again, so when the desk's worker was killed nobody took
    the desk over (the failover test, one run in a few). Joining again gives the group a
    generation with every member in it."""
    if rebalance_class is None:
        from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance

        rebalance_class = CoordinatorGroupRebalance

    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def perform_group_join(self: Any) -> Any:
            joined = await original(self)
            if joined is not None and not joined[1]:
                log.warning(
                    "no assignment for this worker in its group's generation; joining again",
                    group=self.group_id,
                    generation=self._coordinator.generation,
                )
                self._coordinator.request_rejoin()
                return None
            return joined

        return perform_group_join

    _replace(rebalance_class, "perform_group_join", make)


def install_tables_start_without_pause(manager_class: Any = None) -> None:
    """Replace Faust's ``TableManager.on_start`` with the same steps without its first one,
    a one-second sleep (faust-streaming 0.15) that leaves room for tables defined while the
    app starts. The workers define their one table before the app starts, and the pause was
    a second of every worker start and restart (a failover's included) during which nothing
    joined the group. Idempotent."""
    if manager_class is None:
        from faust.tables.manager import TableManager

        manager_class = TableManager

    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def on_start(self: Any) -> None:
            if not self.should_stop:
                await self._update_channels()
                await self.recovery.start()

        return on_start

    _replace(manager_class, "on_start", make)


async def reseek_stalled_recovery(
    app: Any,
    sought: dict[TP, float],
    stall_s: float = RECOVERY_STALL_S,
    clock: Callable[[], float] = time.monotonic,
) -> list[TP]:
    """While Faust recovers its tables, seek every active changelog partition that is behind
    its highwater and has brought nothing for ``stall_s`` (since the recovery started, its
    last record, or this function's last seek of it, kept in ``sought``) back to the offset
    after the last one the recovery applied. Returns the partitions sought. Called every
    second by the workers.

    Why: faust-streaming 0.15's ``Consumer.getmany`` drops the records of a fetch when the
    consumer generation changes while it hands them out, and aiokafka has already moved the
    partition's position past them. A changelog partition whose records were dropped that way
    just as the recovery sought it (the failover test's surviving worker, after the broker
    restart: read to 11, dropped, the recovery waiting for offset 10 for ever) is never read
    again. Faust's recovery applies only offsets above what it has seen, so a seek back that
    was not needed only costs a fetch. Relies on ``Recovery.in_recovery``, ``active_tps``,
    ``active_offsets``, ``active_highwaters``, ``_recovery_started_at`` and
    ``_active_events_received_at`` (``test_faust_port`` checks they exist)."""
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        return []
    now = clock()
    stalled: dict[TP, int] = {}
    for tp in list(recovery.active_tps):
        applied = recovery.active_offsets.get(tp)
        highwater = recovery.active_highwaters.get(tp)
        if applied is None or highwater is None or highwater < 0 or applied >= highwater:
            continue
        last = max(
            recovery._active_events_received_at.get(tp) or 0.0,
            recovery._recovery_started_at or 0.0,
            sought.get(tp, 0.0),
        )
        if now - last >= stall_s:
            stalled[tp] = applied + 1
    if not stalled:
        return []
    log.warning(
        "table recovery stalled behind the changelog's end; reading it again",
        partitions={f"{tp.topic}/{tp.partition}": offset for tp, offset in stalled.items()},
    )
    await app.consumer.seek_wait(stalled)
    for tp in stalled:
        sought[tp] = now
    return sorted(stalled)


_WRAPPERS = frozenset({"async_generator_asend", "async_generator_athrow", "coroutine_wrapper"})


def _first_attribute(obj: Any, names: tuple[str, ...]) -> Any:
    return next((v for v in (getattr(obj, name, None) for name in names) if v is not None), None)


def _frame_of(awaited: Any) -> Any:
    """The frame of a coroutine, an async generator or a generator (None for anything else)."""
    return _first_attribute(awaited, ("cr_frame", "ag_frame", "gi_frame"))


def awaits(task: asyncio.Task[Any], limit: int = 80) -> list[str]:
    """Where ``task`` waits: ``file:line function`` for each coroutine, async generator or
    generator in the chain of what it awaits (``cr_await``, ``ag_await``, ``gi_yieldfrom``,
    and what an ``async_generator_asend`` or a ``coroutine_wrapper`` drives),
    outermost first, and the awaited object that ends the chain (a future, an event's waiter).
    CPython's attributes, not Faust's; a chain longer than ``limit`` is cut."""
    chain: list[str] = []
    current: Any = task.get_coro()
    while current is not None and len(chain) < limit:
        frame = _frame_of(current)
        if frame is None:
            # ``async for`` awaits an ``async_generator_asend``, and ``await`` of an object
            # whose ``__await__`` is a coroutine's a ``coroutine_wrapper``: both name what
            # they drive only to the garbage collector.
            driven = None
            if type(current).__name__ in _WRAPPERS:
                driven = next(
                    (r for r in gc.get_referents(current) if _frame_of(r) is not None), None
                )
            if driven is not None:
                current = driven
                continue
            chain.append(f"awaiting {type(current).__name__}: {current!r}"[:200])
            break
        code = frame.f_code
        chain.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        current = _first_attribute(current, ("cr_await", "ag_await", "gi_yieldfrom"))
    return chain


def log_where_tasks_wait(marker: str = "/streams/") -> int:
    """Log, one warning each, where every task of the running loop that passes through a
    frame of ``marker``'s files waits (:func:`awaits`); returns how many were logged. The
    workers call it on SIGUSR2: a worker that applies nothing and logs nothing shows where
    its desk and intake stand."""
    logged = 0
    for task in asyncio.all_tasks():
        chain = awaits(task)
        if any(marker in line for line in chain):
            log.warning("where a task waits", task=task.get_name(), awaits=chain)
            logged += 1
    return logged

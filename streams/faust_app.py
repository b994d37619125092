"""The production runner: the topology of ``streams.topology`` as a Faust app on Kafka.

Topics (``{SUPPORTSTREAM_TOPIC_PREFIX}{name}``)::

    raw-contacts (N, key: conversation) --intake agent (parse)--> desk-input (1)
    desk-input + desk-ticks (1)  --desk agent--> domain-events  (N, key: ticket id)
                                                 ticket-state   (N, key: ticket id, compacted)
                                                 sla-state      (N, key: ticket/metric/cycle)
                                                 dead-letters   (1, key: source)
    desk state: one Faust table, changelog ``{group}-desk-state-changelog`` (1 partition)

N is ``SUPPORTSTREAM_PARTITIONS``. The workers of one consumer group split the partitions of
``raw-contacts``: each parses the raw messages of the partitions it owns (the ``intake`` agent,
``streams.intake``) and forwards what each means to ``desk-input``. The desk (the ``desk``
agent, on whichever worker owns ``desk-input``'s one partition) merges those entries back into
``replay``'s order (``streams.sequencer``) and applies them. The sink (``supportstream sink``,
``sinks.consumer``) reads the four output topics in its own consumer group, split over as many
sink processes as there are partitions.

**Why the desk applies one order.** ``replay`` applies every record in one global order of
``at``, and the desk's decisions are not all keyed by conversation: e-mail threading maps
message ids to conversations, identity resolution maps crm identities to customers (a crm
record changes the tier every later contact of that customer sees, whatever its channel), and
automatic assignment reads the open-ticket load of every agent across queues. A conversation-
partitioned desk gives different tickets as soon as a crm update and a contact, or two tickets
competing for the same agent, are applied in another order than event time. So the parse
stage, the per-record work (Avro, native payloads, e-mail MIME, keyed hashes), runs in
parallel over the raw partitions, and the desk, the cross-conversation decisions, applies the
merged order: exactly what ``replay`` computes (the differential tests prove it with one
worker, two workers splitting the partitions, and a worker killed mid-stream). The desk fails
over to a hot standby (``SUPPORTSTREAM_STANDBY_REPLICAS``, Faust's ``table_standby_replicas``)
in seconds. docs/PRODUCTION.md discusses the alternatives and what each would give up.

**The merge's marks.** An entry is applied once every raw partition has gone past its instant.
A partition that holds nothing more says so: every ``tick_interval_s`` the timer sends, for
each raw partition this worker actively owns whose committed offset is its end (everything in
it parsed, forwarded and flushed: Faust flushes the producer before it commits), a mark with
that offset and the wall clock less ``tick_grace_ms`` (``streams.intake.Mark``). The intake
sends the same mark as soon as a batch it forwarded read a partition to its end: the last
entries of a backlog do not wait for Faust's commit and the timer's next round.

**SLA timers.** Faust has no per-key timers. The desk's table holds every ticket's SLA state,
from which the desk rebuilds its due index (``processors.timers.TimerQueue``) whenever it
takes a partition (after a restart, a rebalance or a failover). Event time fires timers as in
replay: before a record at ``t``, everything due before ``t``. The wall clock fires the rest
(CONTRACT §3, live mode): every ``tick_interval_s`` the worker that *actively* owns the desk
partition (``assigned_actives``) sends a tick, the wall clock, to ``desk-ticks``. The desk
moves event time to the tick, but never past the merge's frontier
(``streams.sequencer.Merge.fire_bound``): while a backlog is being applied the records move
time themselves, and a wall-clock tick must not fire timers ahead of records still waiting on
a raw partition. The tick goes through the topic rather than straight to the desk so that it
is applied in the same stream as the entries, one at a time, with the table writes attributed
to the partition (Faust tables are written only inside stream iteration). Firing is
idempotent: a timer that has fired is no longer in the state, so a repeated, duplicated (two
workers during a rebalance) or late tick emits nothing new. The grace is in the marks: a
mark promises that what its partition receives later is stamped at or after ``now - grace``,
which lets a record stamped just before a due instant, still in flight from a connector, be
applied first. With a 1 s interval and a 2 s grace a breach is raised 2-4 s after its due
instant.

**Delivery.** ``processing_guarantee=at_least_once``: Faust flushes the producer (outputs and
changelog) before committing source offsets. What a crash between the two could do to the
desk, and how one input stays all-or-nothing, is ``streams.faust_runner.PartitionDesk``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import structlog
from faust.types import TP

from processors.ids import Pseudonymizer
from processors.language import LanguageDetector
from processors.native import describe
from processors.rules import Rules
from streams.faust_port import (
    RecordBatches,
    TableWrites,
    committed_offset,
    highwater,
    install_drain_without_a_task_per_message,
    install_fetch_backoff,
    install_lean_standby,
    install_member_id_kept_on_illegal_generation,
    install_rejoin_on_empty_assignment,
    install_seek_to_start_without_commit,
    install_tables_start_without_pause,
    keep_changelog_offsets,
    log_where_tasks_wait,
    reseek_stalled_recovery,
)
from streams.faust_runner import Message, PartitionDesk
from streams.intake import Intake, Mark, Raw, encode_input
from streams.kafka_admin import topic_name
from streams.local import LIVE_MAX_AHEAD_MS, ParseStage
from streams.metrics import PipelineMetrics
from streams.settings import (
    DEFAULT_KAFKA_COMPRESSION,
    Settings,
    int_setting,
    seconds_setting,
)
from streams.topology import DAY_MS, TOPICS, Topic

log = structlog.get_logger("supportstream.worker")

DESK_PARTITIONS = 1
"""Partitions of ``desk-input`` and ``desk-ticks``: the desk's one global order (above)."""

DESK_KEY = b"desk"

INTAKE_BATCH = 500
"""Raw messages the intake parses per batch, and so at most the entries of one desk-input
message. The desk applies each desk-input message as one transaction of its table, and a key
changed several times within one is written once: larger inputs, fewer changelog messages
(batches of 100 wrote markedly more of them; docs/PRODUCTION.md)."""

PRODUCER_BATCH_BYTES = 256 * 1024
"""The Kafka producer's batch per partition (aiokafka's default is 16 KiB)."""

PRODUCER_COMPRESSION = DEFAULT_KAFKA_COMPRESSION
"""How the workers' producer compresses its batches (``SUPPORTSTREAM_KAFKA_COMPRESSION``:
``zstd``, ``lz4``, ``gzip``, ``snappy`` or ``none``; ``supportstream publish`` and the
connectors read the same setting). The desk's changelog (its state and each input's undo
entry) is most of what a worker writes, and JSON and Avro compress several times over: the
broker stores, replicates and serves a fraction of the bytes. Zstandard at Kafka's default
level (3) compresses JSON faster than aiokafka's LZ4, which is LZ4's high-compression level 9,
and smaller; every Kafka client since Kafka 2.1 reads it (Python clients with the
``zstandard``/``cramjam`` packages, both dependencies here). docs/PRODUCTION.md."""

DESK_INPUT = Topic(
    "desk-input", "desk", "desk-input JSON (streams.intake)", DESK_PARTITIONS, 30 * DAY_MS
)
"""What the intake forwards to the desk: parsed entries and partition marks. It holds what
``raw-contacts`` holds, so it has its retention."""

TICKS = Topic("desk-ticks", "desk partition", "-", DESK_PARTITIONS, 3600 * 1000)
"""Wall-clock ticks for the desk; an hour of them is plenty (they are idempotent)."""


OUTPUT_TOPICS = tuple(topic.name for topic in TOPICS if topic.name != "raw-contacts")
"""What the desk publishes: every topic of the topology but the one the connectors write."""


def production_topics() -> tuple[Topic, ...]:
    """The topology's topics plus the workers' internal ones (the desk's input and ticks)."""
    return (*TOPICS, DESK_INPUT, TICKS)


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker runs; ``from_env`` reads ``SUPPORTSTREAM_*`` on top of ``Settings``."""

    settings: Settings
    rules: Rules
    pseudo: Pseudonymizer
    store: str = "memory://"
    state_dir: Path = Path("./.supportstream/worker")
    tick_interval_s: float = 1.0
    tick_grace_ms: int = 2000
    batch_linger_s: float = 0.05  # the longest a raw message waits for its intake batch
    producer_linger_s: float = 0.01  # the longest a produced message waits for its batch
    producer_compression: str | None = PRODUCER_COMPRESSION  # None: batches uncompressed
    wall_clock: bool = True
    idle_exit_s: float | None = None
    replication_factor: int = 1
    standby_replicas: int = 1
    rebalance_timeout_s: float = 60.0
    metrics: PipelineMetrics | None = None  # the §6 metrics this worker serves

    @classmethod
    def from_env(
        cls,
        settings: Settings,
        rules: Rules,
        pseudo: Pseudonymizer,
        env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> WorkerConfig:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {
            "store": env.get("SUPPORTSTREAM_STATE_STORE", "memory://"),
            "state_dir": Path(env.get("SUPPORTSTREAM_STATE_DIR", "./.supportstream/worker")),
            "replication_factor": int_setting(env, "SUPPORTSTREAM_REPLICATION_FACTOR", 1),
            "standby_replicas": int_setting(env, "SUPPORTSTREAM_STANDBY_REPLICAS", 1, minimum=0),
            "rebalance_timeout_s": seconds_setting(env, "SUPPORTSTREAM_REBALANCE_TIMEOUT", 60.0),
            # SUPPORTSTREAM_KAFKA_COMPRESSION, read once with the other settings (publish and the
            # connectors compress with the same).
            "producer_compression": settings.kafka_compression,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(settings=settings, rules=rules, pseudo=pseudo, **values)

    def topic(self, name: str) -> str:
        return topic_name(self.settings, name)


@dataclass
class _Host:
    """The worker's desks (one per actively owned desk partition), the desk table's writes
    per partition, and its activity clock."""

    config: WorkerConfig
    batches: RecordBatches
    desks: dict[int, PartitionDesk] = field(default_factory=dict)
    tables: dict[int, TableWrites] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)

    def desk(self, partition: int, table: Any) -> PartitionDesk:
        desk = self.desks.get(partition)
        if desk is None:
            # One view of the partition's table while the worker owns it: writes a desk
            # made but did not flush (it was dropped after a failed delivery: its undo's
            # restoring writes) reach the changelog with the next desk's, in order.
            writes = self.tables.get(partition)
            if writes is None:
                writes = self.tables[partition] = TableWrites(table, self.batches, partition)
            # Built from the recovered table: state, due index and assigner as committed.
            desk = PartitionDesk(
                self.config.rules, self.config.pseudo, writes, metrics=self.config.metrics
            )
            self.desks[partition] = desk
            log.info("desk partition taken", partition=partition)
        return desk


def _table_writes(desk: PartitionDesk) -> TableWrites:
    """The table view a worker's desk was built with (``_Host.desk``): an input in progress
    flushes through it even if a rebalance has meanwhile taken the partition away."""
    table = desk.table
    if not isinstance(table, TableWrites):
        raise TypeError(f"a worker's desk writes through TableWrites, not {type(table).__name__}")
    return table


def desk_table(app: faust.App) -> Any:
    """The desk's table. Keys are strings (JSON in the changelog, as Faust writes them);
    values are the JSON bytes the desk encodes itself (``faust_runner.encode_value``), kept
    raw: the store and a standby replica hold them as they come, and the desk decodes a key
    when it reads it. (A changelog written when Faust encoded the values holds the same JSON.)
    With ``memory://`` its store knows the changelog offset it holds, so a rebalance that
    leaves the partition on its worker does not read the changelog again
    (``faust_port.keep_changelog_offsets``)."""
    table = app.Table(
        "desk-state",
        partitions=DESK_PARTITIONS,
        key_type=str,
        value_type=bytes,  # Faust's serializer for bytes: raw
    )
    return keep_changelog_offsets(table)


def build_app(config: WorkerConfig) -> faust.App:
    """The Faust app of one worker: topics, the intake agent, the desk table and agent, and
    the timer that sends the intake's marks and the desk's wall-clock ticks."""
    settings = config.settings
    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=config.store,
        datadir=str(config.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=config.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=config.standby_replicas,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_rebalance_timeout=config.rebalance_timeout_s,
        producer_acks=-1,
        # Batch at the producer: a send joins the partition's open batch for up to this long
        # instead of becoming a produce request of its own (one syscall per message was a
        # quarter of a busy worker's CPU). Well below the live bounds (a mark waits 2 s).
        producer_linger=config.producer_linger_s,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        producer_compression_type=config.producer_compression,
        web_enabled=False,
        autodiscover=False,
    )
    raw_name = config.topic("raw-contacts")
    input_name, ticks_name = config.topic(DESK_INPUT.name), config.topic(TICKS.name)

    def raw_topic(*names: str, partitions: int | None) -> Any:
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    outputs = {
        name: raw_topic(config.topic(name), partitions=_partitions(name, settings))
        for name in OUTPUT_TOPICS
    }
    raw = raw_topic(raw_name, partitions=settings.partitions)
    desk_input = raw_topic(input_name, partitions=DESK_PARTITIONS)
    desk_source = raw_topic(input_name, ticks_name, partitions=DESK_PARTITIONS)
    ticks = raw_topic(ticks_name, partitions=DESK_PARTITIONS)
    table = desk_table(app)
    host = _Host(config, RecordBatches(app))
    # Live (the wall clock drives timers), a record dated over an hour ahead of it is a dead
    # letter (CONTRACT §1); without the wall clock (a backfill checked against replay) the
    # records are applied as dated, as replay does.
    max_ahead = LIVE_MAX_AHEAD_MS if config.wall_clock else None
    intake = Intake(
        ParseStage(config.pseudo, metrics=config.metrics, logger=log, max_ahead_ms=max_ahead)
    )

    known_partitions = [0]  # what the broker said, when the consumer did not know yet

    def raw_partitions(at_least: int = 0) -> int:
        # From the broker's metadata of the topic; never a guess from settings: a count above
        # the real one would hold the desk back for ever (the merge only raises it).
        return max(app.consumer.topic_partitions(raw_name) or 0, known_partitions[0], at_least)

    async def learn_raw_partitions() -> None:
        # Just after a worker starts its consumer may not have the topic's metadata yet, and
        # a count taken from the message's own partition (1 for partition 0) let the desk
        # apply partition 0's first entries before the other partitions' earlier ones (the
        # failover test caught it: crm records after the contacts they precede). Ask the
        # broker once, then.
        if app.consumer.topic_partitions(raw_name) or known_partitions[0]:
            return
        count = await asyncio.to_thread(_partition_count, config.settings.kafka_bootstrap, raw_name)
        known_partitions[0] = max(known_partitions[0], count)

    output_names = {name: topic.get_topic_name() for name, topic in outputs.items()}

    async def deliver(messages: list[Message]) -> None:
        # Handed to the Kafka producer as record batches (one per partition, sent at once:
        # the input's messages are complete), then awaited: the desk commits an input to its
        # table only once everything it publishes is on the broker (acks=all), so an input
        # the table calls applied never needs publishing again (``PartitionDesk.commit``).
        await host.batches.deliver(
            [(output_names[topic], key, value) for topic, key, value in messages]
        )

    async def settle(desk: PartitionDesk, partition: int, published: list[Message]) -> None:
        # One prepared input: deliver what it publishes, then commit it to the table.
        try:
            await deliver(published)
        except BaseException:
            # Not delivered, so not committed: the desk's memory is ahead of its table. The
            # next desk is built from the table, and its catch-up reads this input again
            # from desk-input (``_catch_up``).
            host.desks.pop(partition, None)
            raise
        desk.commit()
        try:
            # The input's table writes, to the changelog: its offset may be committed once
            # this iteration ends, and they are on the broker before it does.
            await _table_writes(desk).flush()
        except Exception as exc:
            # The store holds writes its changelog lacks: going on with it, or handing the
            # partition over, would lose them. Stop, as Faust does when its own table
            # machinery fails; a worker started again recovers the table from the
            # changelog, and the input, never committed, is read again.
            host.desks.pop(partition, None)
            log.error("desk table changelog not delivered; stopping", partition=partition)
            await app.crash(exc)
            raise

    @app.agent(raw, name="intake")
    async def intake_agent(stream: Any) -> None:
        # Stage parse, on the raw partitions this worker owns: one entry per raw message,
        # forwarded in batches: the entries that came together (at most INTAKE_BATCH, of
        # every raw partition, each partition's in offset order) become one desk-input
        # message, so the desk pays its per-input costs (a table transaction, its changelog
        # and outputs awaited) once per batch. A quiet stream's batch waits at most
        # batch_linger_s.
        batches = stream.take_events(INTAKE_BATCH, within=config.batch_linger_s)
        async for events in batches:
            await learn_raw_partitions()
            raws: list[Raw] = []
            for event in events:
                message = event.message
                count = raw_partitions(at_least=message.partition + 1)
                stamp = int(message.timestamp * 1000)
                raws.append((event.value, message.partition, message.offset, count, stamp))
            batch = intake.batch(raws)
            sent = [
                await desk_input.send(key=DESK_KEY, value=value, partition=0)
                for value in batch.messages
            ]
            ends: dict[int, int] = {}
            for _, partition, offset, _, _ in raws:
                ends[partition] = offset + 1
            await mark_partitions_read_to_their_end(ends, sent)
            if config.metrics is not None:
                for partition, taken in batch.lanes.items():
                    config.metrics.observe_intake(partition, taken)
            host.last_activity = time.monotonic()

    async def mark_partitions_read_to_their_end(ends: dict[int, int], sent: list[Any]) -> None:
        # A raw partition whose batch ended at the partition's end says so at once, with the
        # mark the wall-clock timer would send (below) a second or two later: the merge's
        # entries waiting on it go to the desk now, not after Faust's next commit and the
        # timer's next round: the tail of a backlog. (A quiet stream's batches are marked too,
        # but its records still wait out the grace: the marks' instants trail the clock.)
        # The end known from the last fetch says which may be there; the broker, asked then,
        # whether they are. The entries are delivered first: the mark follows them.
        candidates = []
        for partition, next_offset in ends.items():
            tp = TP(raw_name, partition)
            known = app.consumer.highwater(tp)
            if known is not None and next_offset >= known:
                candidates.append((tp, next_offset))
        if not candidates:
            return
        for delivery in sent:
            await delivery
        now = int(time.time() * 1000)
        for tp, next_offset in candidates:
            end = await highwater(app, tp)
            if end is None or next_offset < end:
                continue  # more came meanwhile: the next batch, or the timer, will tell
            await send_mark(tp.partition, next_offset, now)

    async def send_mark(partition: int, offset: int, now: int) -> None:
        # Raw partition ``partition`` has forwarded everything before ``offset`` and holds
        # nothing more: what it receives later is stamped at or after ``now`` less the grace.
        count = raw_partitions(at_least=partition + 1)
        mark = Mark(partition, offset, count, now - config.tick_grace_ms)
        await desk_input.send(key=DESK_KEY, value=encode_input(mark), partition=0)

    @app.agent(desk_source, name="desk")
    async def desk_agent(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            partition = message.partition
            desk = host.desks.get(partition)
            if desk is None:
                desk = await _take_desk(config, host, partition, table, input_name)
            if message.topic == input_name:
                await _catch_up(app, config, desk, message, settle)
                published = desk.prepare_input(event.value, partition, message.offset)
            else:
                now = int(event.value.decode())
                published = desk.prepare_tick(now, partition, message.offset)
            if published:
                host.last_activity = time.monotonic()
            if config.metrics is not None:
                config.metrics.observe_merge(desk.merge.pending)
            await settle(desk, partition, published)

    desk_topics = {input_name, ticks_name, table.changelog_topic.get_topic_name()}
    model_loading = False

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        # The language model serves the desk only. It is loaded once this worker holds the
        # desk's partition or a standby copy of its table, in a thread (the decompression
        # releases the GIL), so that the desk's first ticket rarely waits for it; a worker
        # that only parses never loads it (a third of a CPU-second, 80 MiB).
        nonlocal model_loading
        if not model_loading and any(tp.topic in desk_topics for tp in assigned):
            model_loading = True
            held = sorted(str(tp) for tp in assigned if tp.topic in desk_topics)
            log.info("language model loading", desk_partitions=held)
            LanguageDetector(config.rules.languages).warm_up(background=True)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Whoever takes a partition next rebuilds its desk from the table; a desk kept
        # here would miss what another worker applied meanwhile. Table writes not flushed
        # yet go too (a desk dropped after a failed delivery leaves its undo's restoring
        # writes): the next owner's desk makes them itself from the changelog, and sent
        # after it had written there they would undo its work.
        for tp in revoked:
            if tp.topic in (input_name, ticks_name):
                host.desks.pop(tp.partition, None)
                host.tables.pop(tp.partition, None)
                if config.metrics is not None:
                    config.metrics.observe_merge(0)  # the desk's new owner reports it now

    recovery_seeks: dict[TP, float] = {}

    @app.task  # type: ignore[untyped-decorator]
    async def where_tasks_wait_on_sigusr2() -> None:
        # kill -USR2 <worker>: where the desk and the intake wait, in the log (faust_port)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, log_where_tasks_wait)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def recovery_watchdog() -> None:
        # no table recovery waits for ever (faust_port)
        await reseek_stalled_recovery(app, recovery_seeks)

    @app.timer(interval=config.tick_interval_s)  # type: ignore[untyped-decorator]
    async def wall_clock() -> None:
        actives = list(app.assignor.assigned_actives())
        now = int(time.time() * 1000)
        quiet = True
        for tp in actives:
            if tp.topic == raw_name:
                await learn_raw_partitions()
                # The intake's mark: this partition's entries up to its committed offset are
                # on desk-input (committed after the producer flushed), and it holds no more.
                committed = await _intake_caught_up(app, tp)
                if committed is None:
                    quiet = False
                    continue
                await send_mark(tp.partition, committed, now)
            elif tp.topic == input_name:
                caught_up = await _desk_caught_up(app, host, tp)
                quiet = quiet and caught_up
                if config.wall_clock:
                    await ticks.send(value=str(now).encode(), partition=tp.partition)
        if config.idle_exit_s is not None:
            idle = time.monotonic() - host.last_activity
            if idle >= config.idle_exit_s and quiet:
                log.info("idle; stopping", idle_s=round(idle, 1))
                os.kill(os.getpid(), signal.SIGTERM)

    _ = (intake_agent, desk_agent, on_assigned, on_revoked, wall_clock)
    return app


async def _take_desk(
    config: WorkerConfig, host: _Host, partition: int, table: Any, input_name: str
) -> PartitionDesk:
    """Build the desk of ``partition`` from the recovered table and read back, from
    ``desk-input``, the entries its merge had waiting (the table lists them; they are not
    stored twice). Entries ``desk-input`` no longer holds are logged as lost and the desk
    goes on."""
    desk = host.desk(partition, table)
    span = desk.restore_range(partition)
    if span is None:
        return desk
    start, stop = span
    messages = await asyncio.to_thread(
        _read_range, config.settings.kafka_bootstrap, input_name, partition, start, stop
    )
    lost = desk.restore_waiting(messages)
    log.info("desk merge restored", partition=partition, read=len(messages), start=start, stop=stop)
    if lost:
        log.error(
            "desk-input no longer holds entries the desk had waiting; going on without them",
            partition=partition,
            lost=len(lost),
            first=lost[0],
        )
    return desk


async def _catch_up(
    app: faust.App,
    config: WorkerConfig,
    desk: PartitionDesk,
    message: Any,
    settle: Any,
) -> None:
    """Apply the ``desk-input`` messages between the desk's own position and ``message``.

    The table, not the committed offset, is the truth about which inputs the desk applied:
    each input records ``progress`` in the same transaction as its effects. Redelivered inputs
    below it are recognised already (``PartitionDesk.prepare_input``). An input *above* it means the
    committed offset ran ahead of the changelog (a worker killed between the two: the tests
    that kill workers under load saw it with faust-streaming 0.15), and the inputs in between
    would be lost. They are still in ``desk-input``: read them there, by offset, with a plain
    consumer outside the group, and apply them first, in order."""
    tp = message.tp
    expected = desk.next_offset(f"in:{tp.partition}")
    if expected is None:  # an empty table has applied nothing: the log from its start
        earliest = await app.consumer.earliest_offsets(tp)
        expected = int(earliest.get(tp) or 0)
    if message.offset <= expected:
        return
    log.warning(
        "desk-input is ahead of the desk's table; applying the inputs in between first",
        partition=tp.partition,
        offset=message.offset,
        table_offset=expected,
    )
    missing = await asyncio.to_thread(
        _read_range,
        config.settings.kafka_bootstrap,
        tp.topic,
        tp.partition,
        expected,
        message.offset,
    )
    if not missing or missing[0][0] != expected:
        log.error(
            "desk-input no longer holds the inputs the desk lacks; going on without them",
            partition=tp.partition,
            first=missing[0][0] if missing else None,
            table_offset=expected,
        )
    for offset, value in missing:
        await settle(desk, tp.partition, desk.prepare_input(value, tp.partition, offset))


def _partition_count(bootstrap: str, topic: str) -> int:
    """The number of partitions of ``topic`` as the broker's metadata says (0: unknown)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close(autocommit=False)


def _read_range(
    bootstrap: str, topic: str, partition: int, start: int, stop: int
) -> list[tuple[int, bytes]]:
    """The messages of ``topic``/``partition`` from offset ``start`` up to ``stop`` (not
    included), read by a consumer that belongs to no group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list[tuple[int, bytes]] = []
        idle = 0
        while consumer.position(tp) < stop and idle < 50:
            batch = consumer.poll(timeout_ms=200).get(tp, [])
            idle = 0 if batch else idle + 1
            out.extend((m.offset, m.value) for m in batch if m.offset < stop)
        return out
    finally:
        consumer.close(autocommit=False)


async def _intake_caught_up(app: faust.App, tp: TP) -> int | None:
    """The committed offset of raw partition ``tp`` if it is the partition's end (everything
    in it parsed and forwarded, the producer flushed), else None. Faust keeps the offset it
    last committed (or found committed when the partition was assigned) per partition."""
    end = await highwater(app, tp)
    committed = committed_offset(app, tp)
    if end is None or committed < end:
        return None
    return committed


async def _desk_caught_up(app: faust.App, host: _Host, tp: TP) -> bool:
    """Whether the desk has applied everything ``desk-input`` holds and has no entry waiting
    for another partition."""
    desk = host.desks.get(tp.partition)
    end = await highwater(app, tp)
    if desk is None or end is None:
        return end == 0
    applied = desk.next_offset(f"in:{tp.partition}")
    return desk.merge.pending == 0 and (end == 0 or (applied is not None and applied >= end))


def _partitions(name: str, settings: Settings) -> int:
    for topic in production_topics():
        if topic.name == name:
            return topic.partition_count(settings.partitions)
    raise KeyError(name)


def run_worker(config: WorkerConfig, *, loglevel: str = "warning") -> int:
    """Run one worker until SIGTERM/SIGINT (or idle, with ``idle_exit_s``); blocks."""
    from faust.worker import Worker

    config.state_dir.mkdir(parents=True, exist_ok=True)
    _discard_state_of_an_unclean_stop(config)
    install_fetch_backoff()  # an idle worker must not fetch in a tight loop (faust_port)
    install_seek_to_start_without_commit()  # nothing fetched during recovery is lost
    install_member_id_kept_on_illegal_generation()  # no ghost member after a rebalance
    install_rejoin_on_empty_assignment()  # a member left out of a generation joins again
    install_tables_start_without_pause()  # no idle second at every start (faust_port)
    install_drain_without_a_task_per_message()  # no four tasks per message fetched (faust_port)
    install_lean_standby()  # a standby applies its changelog per fetch, not per message
    log.info(
        "worker starting",
        domain=describe(),  # compiled or not (processors/native.py): what a profile will show
        store=config.store,
        standby_replicas=config.standby_replicas,
    )
    app = build_app(config)
    worker = Worker(
        app,
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        logging_config=_framework_logging(loglevel),
    )
    # Faust's progress spinner writes terminal control codes into the log, and to make it
    # spin on every record it sets the root logger to DEBUG: every debug call of aiokafka and
    # Faust then built a log record (a tenth of a busy worker's CPU) that nothing printed.
    worker.spinner = None
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    if code == 0:
        (config.state_dir / CLEAN_STOP).touch()
    return code


def _framework_logging(loglevel: str) -> dict[str, Any]:
    """Faust's and aiokafka's own log lines (stdlib ``logging``) at ``loglevel``, on stderr
    beside the JSON lines, as plain text: no colours or other terminal codes in a log file."""
    level = loglevel.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "()": "mode.utils.logging.DefaultFormatter",
                "format": "[%(asctime)s] [%(process)s] [%(levelname)s]: %(message)s %(extra)s",
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "level": level,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


CLEAN_STOP = "clean-stop"
"""A file in the state directory: the last worker there stopped cleanly (flushed, committed)."""


def _discard_state_of_an_unclean_stop(config: WorkerConfig) -> None:
    """A local store (``rocksdb://``) is written at once, its changelog a moment later; after
    a crash the store can hold writes the changelog never got. Faust's recovery replays the
    changelog's tail over it, which sets a key written in that gap back to an older value and
    leaves the others new: a mixture the desk's undo entry cannot detect. So local state is
    kept only after a clean stop; otherwise it is removed and rebuilt from the changelog,
    which is always a consistent prefix (``streams.faust_runner.PartitionDesk``)."""
    marker = config.state_dir / CLEAN_STOP
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    tables = config.state_dir / "v1" / "tables"
    if not config.store.startswith("rocksdb") or clean or not tables.exists():
        return
    log.warning(
        "the last worker here did not stop cleanly; rebuilding its state from the changelog",
        state_dir=str(tables),
    )
    shutil.rmtree(tables)

"""The production runner: the topology of ``streams.topology`` as a Faust app on Kafka.

Topics (``{SUPPORTSTREAM_TOPIC_PREFIX}{name}``)::

    raw-contacts (1 partition) --desk agent--> domain-events  (N, key: ticket id)
    desk-ticks   (1 partition) --'             ticket-state   (N, key: ticket id, compacted)
                                               sla-state      (N, key: ticket/metric/cycle)
                                               dead-letters   (1, key: source)
    desk state: one Faust table, changelog ``{group}-desk-state-changelog`` (1 partition)

The sink (``supportstream sink``, ``sinks.consumer``) reads the four output topics in its own
consumer group, split over as many sink processes as there are partitions.

**Why the desk is one partition.** ``replay`` applies every record in one global order of
``at``, and the desk's decisions are not all keyed by conversation: e-mail threading maps
message ids to conversations, identity resolution maps crm identities to customers (a crm
record changes the tier every later contact of that customer sees, whatever its channel), and
automatic assignment reads the open-ticket load of every agent across queues. A conversation-
partitioned desk gives different tickets as soon as a crm update and a contact, or two tickets
competing for the same agent, land in different partitions and are applied in another order
than event time. So the log that orders the desk is a single partition, and the results are
exactly those of ``replay`` (the differential tests prove it). What scales out: the output
topics and the sink (the expensive part: ClickHouse inserts) are partitioned by ticket; the
desk fails over to a hot standby (``table_standby_replicas``) in seconds. One partition of
``raw-contacts`` carries tens of MB/s, and one desk applies over a thousand records a second:
two orders of magnitude above a large support desk's contact rate. docs/PRODUCTION.md discusses
the partitioned alternatives and what each would give up.

**SLA timers.** Faust has no per-key timers. The desk's table holds every ticket's SLA state,
from which the desk rebuilds its due index (``processors.timers.TimerQueue``) whenever it
takes a partition (after a restart, a rebalance or a failover). Event time fires timers as in
replay: before a record at ``t``, everything due before ``t``. The wall clock fires the rest
(CONTRACT §3, live mode): every ``tick_interval_s`` each worker sends a tick, ``now - grace``,
to ``desk-ticks`` for each desk partition it *actively* owns (``assigned_actives``) and has
fully caught up on (applied offset == high-water mark: while a backlog is being applied the
records move time themselves, and a wall-clock tick would fire timers ahead of records still
waiting). The tick goes through the topic rather than straight to the desk so that it is
applied in the same stream as the records, one at a time, with the table writes attributed
to the partition (Faust tables are written only inside stream iteration). Firing is
idempotent: a timer that has fired is no longer in the state, so a repeated, duplicated (two
workers during a rebalance) or late tick emits nothing new. With a 1 s interval and a 2 s
grace a breach is raised 2-3 s after its due instant; the grace lets a record stamped just
before the due instant, still in flight from a connector, be applied first.

**Delivery.** ``processing_guarantee=at_least_once``: Faust flushes the producer (outputs and
changelog) before committing source offsets. What a crash between the two could do to the
desk, and how one input stays all-or-nothing, is ``streams.faust_runner.PartitionDesk``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import structlog
from faust.types import TP

from processors.ids import Pseudonymizer
from processors.rules import Rules
from streams.faust_runner import SEP, Message, PartitionDesk
from streams.metrics import PipelineMetrics
from streams.settings import Settings
from streams.topology import TOPICS, Topic
from streams.topology import topic as topology_topic

log = structlog.get_logger("supportstream.worker")

DESK_PARTITIONS = 1
"""Partitions of ``raw-contacts`` and ``desk-ticks``: the desk's one global order (above)."""

TICKS = Topic("desk-ticks", "desk partition", "-", DESK_PARTITIONS, 3600 * 1000)
"""Wall-clock ticks for the desk; an hour of them is plenty (they are idempotent)."""


def production_topics() -> tuple[Topic, ...]:
    """The topology's topics (``raw-contacts`` already has the desk's single partition) plus
    the tick topic."""
    if topology_topic("raw-contacts").partitions != DESK_PARTITIONS:
        raise RuntimeError("the topology's raw-contacts must have the desk's single partition")
    return (*TOPICS, TICKS)


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
            "replication_factor": int(env.get("SUPPORTSTREAM_REPLICATION_FACTOR", "1")),
            "rebalance_timeout_s": float(env.get("SUPPORTSTREAM_REBALANCE_TIMEOUT", "60")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(settings=settings, rules=rules, pseudo=pseudo, **values)

    def topic(self, name: str) -> str:
        return f"{self.settings.topic_prefix}{name}"


@dataclass
class _Host:
    """The worker's desks (one per actively owned desk partition) and its activity clock."""

    config: WorkerConfig
    desks: dict[int, PartitionDesk] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)
    caught_up: dict[int, bool] = field(default_factory=dict)

    def desk(self, partition: int, table: Any) -> PartitionDesk:
        desk = self.desks.get(partition)
        if desk is None:
            # Built from the recovered table: state, due index and assigner as committed.
            desk = PartitionDesk(
                self.config.rules, self.config.pseudo, table, metrics=self.config.metrics
            )
            self.desks[partition] = desk
            log.info("desk partition taken", partition=partition)
        return desk


def build_app(config: WorkerConfig) -> faust.App:
    """The Faust app of one worker: topics, the desk table, the desk agent, the tick timer."""
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
        web_enabled=False,
        autodiscover=False,
    )
    raw_name, ticks_name = config.topic("raw-contacts"), config.topic(TICKS.name)
    outputs = {
        name: app.topic(
            config.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=_partitions(name, settings),
        )
        for name in ("domain-events", "ticket-state", "sla-state", "dead-letters")
    }
    source = app.topic(
        raw_name,
        ticks_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=DESK_PARTITIONS,
    )
    ticks = app.topic(
        ticks_name, value_serializer="raw", key_serializer="raw", partitions=DESK_PARTITIONS
    )
    # Keys and values are JSON (str keys; values are what streams.faust_runner encodes).
    table = app.Table("desk-state", partitions=DESK_PARTITIONS, key_type=str)
    host = _Host(config)

    async def publish(messages: list[Message]) -> None:
        for topic, key, value in messages:
            await outputs[topic].send(key=key, value=value)

    @app.agent(source, name="desk")
    async def desk_agent(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            partition = message.partition
            desk = host.desk(partition, table)
            if message.topic == raw_name:
                ref = f"{message.topic}/{partition}/{message.offset}"
                published = desk.apply_raw(event.value, partition, message.offset, ref)
                host.last_activity = time.monotonic()
            else:
                now = int(event.value.decode())
                published = desk.tick(now, partition, message.offset)
                if published:
                    host.last_activity = time.monotonic()
            await publish(published)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Whoever takes a partition next rebuilds its desk from the table; a desk kept
        # here would miss what another worker applied meanwhile.
        for tp in revoked:
            if tp.topic in (raw_name, ticks_name):
                host.desks.pop(tp.partition, None)

    @app.timer(interval=config.tick_interval_s)  # type: ignore[untyped-decorator]
    async def wall_clock() -> None:
        actives = [tp for tp in app.assignor.assigned_actives() if tp.topic == raw_name]
        for tp in actives:
            caught_up = await _caught_up(app, table, tp)
            host.caught_up[tp.partition] = caught_up
            if caught_up and config.wall_clock:
                now = int(time.time() * 1000) - config.tick_grace_ms
                await ticks.send(value=str(now).encode(), partition=tp.partition)
        if config.idle_exit_s is not None:
            idle = time.monotonic() - host.last_activity
            quiet = all(host.caught_up.get(tp.partition) for tp in actives)
            if idle >= config.idle_exit_s and quiet:
                log.info("idle; stopping", idle_s=round(idle, 1))
                os.kill(os.getpid(), signal.SIGTERM)

    _ = (desk_agent, on_revoked, wall_clock)
    return app


async def _caught_up(app: faust.App, table: Any, tp: TP) -> bool:
    """Whether the desk of ``tp`` has applied everything the partition holds. Read from the
    table (what the desk committed), so it is known before the first record after a restart."""
    applied = table.get(f"progress{SEP}raw:{tp.partition}")
    try:
        highwaters = await asyncio.wait_for(app.consumer.highwaters(tp), timeout=5.0)
    except Exception:  # the broker is slow or away: simply no tick this time
        return False
    end = highwaters.get(tp)
    if end is None:
        return False
    return end == 0 or (applied is not None and int(applied) >= end)


def _partitions(name: str, settings: Settings) -> int:
    for topic in production_topics():
        if topic.name == name:
            return topic.partitions or settings.partitions
    raise KeyError(name)


def run_worker(config: WorkerConfig, *, loglevel: str = "warning") -> int:
    """Run one worker until SIGTERM/SIGINT (or idle, with ``idle_exit_s``); blocks."""
    from faust.worker import Worker

    config.state_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(config)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0

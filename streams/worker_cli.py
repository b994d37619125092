"""The production commands (CONTRACT §5): ``worker``, ``sink``, ``migrate`` and ``publish``.

All of them are configured by environment (``streams.settings.Settings``):
``SUPPORTSTREAM_KAFKA_BOOTSTRAP``, ``SUPPORTSTREAM_CLICKHOUSE_URL``,
``SUPPORTSTREAM_TOPIC_PREFIX``, ``SUPPORTSTREAM_PARTITIONS``, ``SUPPORTSTREAM_CONSUMER_GROUP``,
``SUPPORTSTREAM_PII_KEY``; the worker also reads ``SUPPORTSTREAM_STATE_STORE`` (``memory://``,
or ``rocksdb://`` with the ``rocksdict`` package installed), ``SUPPORTSTREAM_STATE_DIR`` and
``SUPPORTSTREAM_REPLICATION_FACTOR`` and ``SUPPORTSTREAM_KAFKA_COMPRESSION`` (``lz4``).
docs/PRODUCTION.md is the operator's guide.

``streams.cli`` registers these with ``add_parsers`` and dispatches through ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from processors.ids import Pseudonymizer
from processors.rules import load_rules
from sinks.backend import Backend, open_backend
from sinks.migrate import migrate
from streams.metrics import start_pipeline_metrics
from streams.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1


def add_parsers(commands: Any) -> None:
    """Add the production subcommands to ``supportstream``'s subparsers."""
    worker = commands.add_parser("worker", help="production: the desk as a Faust worker on Kafka")
    worker.add_argument("--rules", required=True, type=Path, help="rules file (YAML)")
    worker.add_argument(
        "--store", default=None, help="table store: memory:// (default) or rocksdb://"
    )
    worker.add_argument("--tick-interval", type=float, default=1.0, help="wall-clock tick, s")
    worker.add_argument(
        "--no-wall-clock",
        action="store_true",
        help="no wall-clock ticks: only records move the desk's event time and fire SLA timers",
    )
    worker.add_argument(
        "--exit-when-idle", type=float, default=None, metavar="S", help="stop after S idle s"
    )
    worker.add_argument("--loglevel", default="warning", help="Faust log level")

    sink = commands.add_parser("sink", help="production: domain events from Kafka to ClickHouse")
    sink.add_argument(
        "--warehouse",
        default=None,
        help="clickhouse://user:pass@host:9000/db or chdb:///path "
        "(default: SUPPORTSTREAM_CLICKHOUSE_URL, else the embedded warehouse)",
    )
    sink.add_argument(
        "--batch-rows", type=int, default=20000, help="messages per insert batch (at most)"
    )
    sink.add_argument(
        "--linger", type=float, default=1.0, help="max seconds a batch waits while messages come"
    )
    sink.add_argument(
        "--exit-when-idle", type=float, default=None, metavar="S", help="stop after S idle s"
    )
    sink.add_argument(
        "--compact-on-exit",
        action="store_true",
        help="OPTIMIZE ... FINAL every table when stopping (one row per key without FINAL)",
    )

    mig = commands.add_parser("migrate", help="production: ClickHouse schema and Kafka topics")
    mig.add_argument("--warehouse", default=None, help="as for sink")
    mig.add_argument("--no-topics", action="store_true", help="only the ClickHouse schema")
    mig.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="the workers' rules file: the views' days and weeks in its reporting_timezone and "
        "the QA sample its qa.sample_per_agent_week (without it: UTC and 5 where missing)",
    )

    publish = commands.add_parser("publish", help="load a JSON Lines file into the raw topic")
    publish.add_argument("--input", required=True, type=Path, help="input records (JSON Lines)")


def _warehouse_url(arg: str | None, settings: Settings) -> str:
    if arg:
        return arg
    if settings.clickhouse_url:
        return settings.clickhouse_url
    return f"chdb://{Path(settings.warehouse).absolute()}"


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.faust_app import WorkerConfig, run_worker

    rules = load_rules(args.rules)
    metrics, server = start_pipeline_metrics(settings.metrics_port)
    try:
        config = WorkerConfig.from_env(
            settings,
            rules,
            settings.pseudonymizer(),
            store=args.store,
            tick_interval_s=args.tick_interval,
            wall_clock=not args.no_wall_clock,
            idle_exit_s=args.exit_when_idle,
            metrics=metrics,
        )
        return run_worker(config, loglevel=args.loglevel)
    finally:
        server.stop()


class _StopFlag:
    def __init__(self) -> None:
        self.stop = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True


def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.consumer import KafkaSource, SinkConsumer
    from sinks.writer import ProjectionWriter

    metrics, server = start_pipeline_metrics(settings.metrics_port)
    backend = open_backend(_warehouse_url(args.warehouse, settings))
    flag = _StopFlag()
    signal.signal(signal.SIGTERM, flag)
    signal.signal(signal.SIGINT, flag)
    source: KafkaSource | None = None
    try:
        migrate(backend)
        # The writer's per-table bound is the consumer's: a batch is inserted once, at the
        # checkpoint, not in pieces while it fills.
        writer = ProjectionWriter(backend, batch_size=args.batch_rows)
        holder: list[SinkConsumer] = []
        source = KafkaSource(
            settings.kafka_bootstrap,
            f"{settings.consumer_group}-sink",
            settings.topic_prefix,
            on_revoke=lambda: holder[0].on_revoked() if holder else None,
        )
        sink = SinkConsumer(
            source,
            writer,
            batch_rows=args.batch_rows,
            linger_s=args.linger,
            on_flush=lambda _written: metrics.observe_sink(writer.rows_written),
            on_failure=lambda _error: metrics.observe_sink_failure(),
        )
        holder.append(sink)
        stats = sink.run(should_stop=lambda: flag.stop, idle_exit_s=args.exit_when_idle)
        if args.compact_on_exit:
            writer.compact()
    finally:
        if source is not None:
            source.close()
        backend.close()
        server.stop()
    print(
        f"sink stopped: {stats.messages} messages, {sum(stats.rows.values())} rows in "
        f"{stats.flushes} flushes, {stats.retries} retries, {stats.undecodable} undecodable"
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    # The views' days and weeks, and the QA sample's size, come from the rules (CONTRACT §2,
    # §7): the same rules file as the workers', so production's views are replay's.
    rules = load_rules(args.rules) if args.rules is not None else None
    url = _warehouse_url(args.warehouse, settings)
    backend: Backend = open_backend(url)
    try:
        applied = migrate(
            backend,
            reporting_timezone=rules.reporting_timezone if rules is not None else None,
            qa_sample_per_agent_week=rules.qa.sample_per_agent_week if rules is not None else None,
        )
    finally:
        backend.close()
    print(f"ClickHouse schema: {'applied ' + str(applied) if applied else 'up to date'}")
    if not args.no_topics:
        from streams.faust_app import production_topics
        from streams.kafka_admin import ensure_topics

        report = ensure_topics(settings.kafka_bootstrap, settings, production_topics())
        print(f"Kafka topics: {len(report.created)} created, {len(report.existing)} already there")
        for line in report.mismatched:
            print(f"supportstream: warning: {line}", file=sys.stderr)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_admin import topic_name
    from streams.replay_input import check_input

    check_input(args.input)  # before connecting: a wrong path is bad usage (exit 2)
    count = publish_file(settings, args.input)
    print(f"published {count} records to {topic_name(settings, 'raw-contacts')}")
    return EXIT_OK


def publish_file(settings: Settings, path: Path) -> int:
    """``publish_jsonl`` over a kafka-python producer (acks=all, order kept per partition,
    batches compressed as ``SUPPORTSTREAM_KAFKA_COMPRESSION`` says)."""
    from kafka import KafkaProducer

    from streams.faust_runner import publish_jsonl
    from streams.kafka_admin import topic_name

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        compression_type=settings.kafka_compression,
        # Retries must not reorder a partition: the desk's merge relies on each raw
        # partition's records coming in replay order.
        max_in_flight_requests_per_connection=1,
    )
    try:
        raw = topic_name(settings, "raw-contacts")
        dead = topic_name(settings, "dead-letters")
        published = publish_jsonl(
            path,
            lambda key, value: producer.send(raw, key=key, value=value) and None,
            lambda key, value: producer.send(dead, key=key, value=value) and None,
            Pseudonymizer.from_text(settings.pii_key),
        )
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return published.records


COMMANDS = {
    "worker": cmd_worker,
    "sink": cmd_sink,
    "migrate": cmd_migrate,
    "publish": cmd_publish,
}

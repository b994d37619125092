"""``supportstream connect http`` and ``supportstream connect imap`` (CONTRACT §5), configured by
``SUPPORTSTREAM_*`` (docs/CONNECTORS.md).

Both create the topology's topics on first start (``streams.kafka_admin.ensure_topics``), serve
``/metrics`` on ``SUPPORTSTREAM_METRICS_PORT``, log JSON lines and stop gracefully on SIGTERM or
SIGINT: HTTP requests in flight finish and the producer is flushed; the IMAP connector finishes
the mail in hand and records its progress.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import structlog

from processors.ids import Pseudonymizer
from streams.settings import ConnectSettings, Settings

# aiohttp, aiokafka, kafka-python and prometheus_client are imported when a connector runs, not
# whenever the command line starts (``supportstream sql`` should not pay for them).

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = structlog.get_logger("supportstream.connect")


def add_parsers(commands: Any) -> None:
    """Register ``connect`` and its connectors on the CLI's subparsers."""
    connect = commands.add_parser("connect", help="channel connectors: live contacts into Kafka")
    which = connect.add_subparsers(dest="connector", required=True)
    which.add_parser("http", help="webhooks (Telegram, WhatsApp, VK) and the project's sources")
    which.add_parser("imap", help="a mailbox: every new mail, once")


def run_connect(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_admin import KafkaAdminError, ensure_topics
    from streams.metrics import process_registry, serve

    connect = ConnectSettings.from_env()  # a SettingsError is the command line's to report
    if args.connector == "imap" and not (connect.imap_host and connect.imap_user):
        print(
            "supportstream: connect imap needs SUPPORTSTREAM_IMAP_HOST and SUPPORTSTREAM_IMAP_USER",
            file=sys.stderr,
        )
        return EXIT_USAGE
    pseudo = settings.pseudonymizer(means="message keys use pseudonyms that are not secret")
    try:
        report = ensure_topics(settings.kafka_bootstrap, settings)
    except KafkaAdminError as error:
        print(f"supportstream: {error}", file=sys.stderr)
        return EXIT_FAILURE
    log.info("topics ready", created=list(report.created), existing=list(report.existing))
    registry = process_registry()
    metrics = serve(settings.metrics_port, registry)
    log.info("metrics served", port=metrics.port)
    try:
        asyncio.run(_run(args.connector, settings, connect, pseudo, registry))
    finally:
        metrics.stop()
    return EXIT_OK


async def _run(
    which: str,
    settings: Settings,
    connect: ConnectSettings,
    pseudo: Pseudonymizer,
    registry: Any,
) -> None:
    from streams.connectors.http import HttpConnector
    from streams.connectors.imap import ImapConnector
    from streams.connectors.publisher import KafkaPublisher
    from streams.kafka_admin import topic_name

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    publisher = KafkaPublisher(
        settings.kafka_bootstrap,
        client_id=f"supportstream-connect-{which}",
        timeout_s=connect.publish_timeout_s,
        compression=settings.kafka_compression,
    )
    topic = topic_name(settings, "raw-contacts")
    if which == "http":
        http = HttpConnector(connect, publisher, topic=topic, pseudo=pseudo, registry=registry)
        await http.start()
        await stop.wait()
        log.info("stopping: finishing requests in flight")
        await http.stop()
    else:
        imap = ImapConnector(connect, publisher, topic=topic, pseudo=pseudo, registry=registry)
        await imap.run(stop)

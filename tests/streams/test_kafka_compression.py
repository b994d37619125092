"""``SUPPORTSTREAM_KAFKA_COMPRESSION`` reaches every producer: ``supportstream publish`` and the
connectors write `raw-contacts` in batches compressed as it says (docs/CONNECTORS.md,
docs/PRODUCTION.md), checked on what the broker stores."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from streams.connectors.publisher import KafkaPublisher
from streams.kafka_admin import topic_name
from streams.settings import KAFKA_COMPRESSIONS, Settings, SettingsError
from streams.worker_cli import publish_file
from tests.streams.connectors.conftest import read_topic
from tests.support.broker import Broker
from tests.support.kafka_batches import batch_codecs

CHAT = (
    '{"at":"2026-03-02T10:00:%02dZ","source":"chat","payload":{"session_id":"s%d",'
    '"message_id":"m%d","visitor":{"id":"v%d"},"text":"Не могу войти в личный кабинет"}}'
)


def _settings(broker: Broker, compression: str | None) -> Settings:
    env = {
        "SUPPORTSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SUPPORTSTREAM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "SUPPORTSTREAM_PII_KEY": "compression-test-key",
    }
    if compression is not None:
        env["SUPPORTSTREAM_KAFKA_COMPRESSION"] = compression
    return Settings.from_env(env)


def test_the_setting_is_zstd_unless_told_otherwise() -> None:
    assert Settings.from_env({}).kafka_compression == "zstd"
    assert (
        Settings.from_env({"SUPPORTSTREAM_KAFKA_COMPRESSION": " LZ4 "}).kafka_compression == "lz4"
    )
    assert Settings.from_env({"SUPPORTSTREAM_KAFKA_COMPRESSION": "none"}).kafka_compression is None
    with pytest.raises(SettingsError, match="SUPPORTSTREAM_KAFKA_COMPRESSION='brotli'"):
        Settings.from_env({"SUPPORTSTREAM_KAFKA_COMPRESSION": "brotli"})


@pytest.mark.parametrize(("setting", "stored"), [(None, "zstd"), ("gzip", "gzip"), ("none", None)])
def test_publish_writes_raw_contacts_compressed_as_the_setting_says(
    kafka_broker: Broker, tmp_path: Path, setting: str | None, stored: str | None
) -> None:
    settings = _settings(kafka_broker, setting)
    week = tmp_path / "contacts.jsonl"
    week.write_text("".join(CHAT % (i, i, i, i) + "\n" for i in range(40)), encoding="utf-8")

    assert publish_file(settings, week) == 40

    codecs = batch_codecs(kafka_broker.bootstrap, topic_name(settings, "raw-contacts"))
    assert codecs and set(codecs) == {stored}


def test_a_connector_publishes_compressed_as_it_is_told(kafka_broker: Broker) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.raw-contacts"

    async def publish() -> None:
        publisher = KafkaPublisher(kafka_broker.bootstrap, timeout_s=10, compression="zstd")
        try:
            for i in range(3):
                await publisher.publish(topic, f"k{i}", (CHAT % (i, i, i, i)).encode())
        finally:
            await publisher.close()

    asyncio.run(publish())

    assert batch_codecs(kafka_broker.bootstrap, topic) == ["zstd"] * 3


@pytest.mark.parametrize("codec", KAFKA_COMPRESSIONS)
def test_every_codec_the_setting_accepts_is_written_and_read_by_kafka_python(
    kafka_broker: Broker, tmp_path: Path, codec: str
) -> None:
    """The sink consumes with kafka-python, and ``publish`` produces with it: whichever codec
    the workers are told to use, the sink must read it (aiokafka, the workers' client, knows
    them all through cramjam; kafka-python needs python-snappy for Snappy)."""
    settings = _settings(kafka_broker, codec)
    week = tmp_path / "contacts.jsonl"
    week.write_text("".join(CHAT % (i, i, i, i) + "\n" for i in range(5)), encoding="utf-8")

    assert publish_file(settings, week) == 5

    topic = topic_name(settings, "raw-contacts")
    assert set(batch_codecs(kafka_broker.bootstrap, topic)) == {codec}
    got = read_topic(kafka_broker.bootstrap, topic, expect=5)
    assert sorted(json.loads(record["payload"])["message_id"] for _, _, record, _ in got) == [
        f"m{i}" for i in range(5)
    ]

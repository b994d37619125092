"""``supportstream connect http`` as an operator runs it: configured by environment, topics created
on first start as the topology declares them, contacts published compressed, /metrics served,
JSON logs without secrets, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.topology import DAY_MS
from tests.streams.connectors.conftest import CONNECT_ENV, PII_KEY, free_port, read_topic
from tests.support.broker import Broker
from tests.support.kafka_batches import batch_codecs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def test_connect_http_creates_topics_serves_and_stops_on_sigterm(kafka_broker: Broker) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **CONNECT_ENV,
        "SUPPORTSTREAM_PII_KEY": PII_KEY,
        "SUPPORTSTREAM_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "SUPPORTSTREAM_TOPIC_PREFIX": "cli.",
        "SUPPORTSTREAM_PARTITIONS": "2",
        "SUPPORTSTREAM_CONNECT_HOST": "127.0.0.1",
        "SUPPORTSTREAM_CONNECT_PORT": str(port),
        "SUPPORTSTREAM_METRICS_PORT": str(metrics_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "connect", "http"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        chat = json.dumps(
            {"session_id": "s-7", "message_id": "m", "visitor": {"id": "v"}, "text": "привет"}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/chat",
            data=chat.encode(),
            headers={"Authorization": "Bearer chat-token", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
        ) as answer:
            metrics = answer.read().decode()
        assert 'supportstream_contacts_total{channel="chat"} 1.0' in metrics
        assert "supportstream_dead_letters_total" in metrics
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    published = [line for line in logs if line.get("event") == "record published"]
    assert [line["conversation_id"] for line in published] == ["chat:s-7"]
    for secret in ("tg-secret", "wa-app-secret", "vk-secret", "chat-token", PII_KEY):
        assert secret not in stderr
    assert any(line.get("event") == "http connector stopped" for line in logs)

    got = read_topic(kafka_broker.bootstrap, "cli.raw-contacts", expect=1)
    assert [record["payload"] for _, _, record, _ in got] == [chat]
    # Compressed as SUPPORTSTREAM_KAFKA_COMPRESSION says (unset: Zstandard).
    assert batch_codecs(kafka_broker.bootstrap, "cli.raw-contacts") == ["zstd"]
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        topics = set(admin.list_topics())
        assert {
            "cli.raw-contacts",
            "cli.domain-events",
            "cli.ticket-state",
            "cli.dead-letters",
        } <= topics
        described = {
            t["name"]: len(t["partitions"])
            for t in admin.describe_topics(["cli.raw-contacts", "cli.dead-letters"])
        }
        # raw-contacts has the deployment's partitions (the workers parse them in parallel)
        assert described == {"cli.raw-contacts": 2, "cli.dead-letters": 1}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "cli.raw-contacts")]
        )
        raw = str(configs)
        assert str(30 * DAY_MS) in raw and "delete" in raw
    finally:
        admin.close()

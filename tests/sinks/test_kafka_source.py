"""``sinks.consumer.KafkaSource`` on a real Kafka-protocol broker (noida-db): a new sink joins
its group and receives what the output topics hold within its first polls, and a caught-up
sink's idle polls do not spin."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaProducer

from sinks.consumer import KafkaSource
from tests.support.broker import Broker

pytestmark = [pytest.mark.integration]

POLL_S = 0.2


def _fill(broker: Broker, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for number in range(count):
            producer.send(topic, key=b"k", value=f"v{number}".encode())
        producer.flush()
    finally:
        producer.close()


def test_a_new_sink_joins_and_receives_within_its_first_polls(kafka_broker: Broker) -> None:
    """kafka-python moves a group join forward only inside a poll: a sink that polled 0 ms at
    a time restarted its join at every poll and received nothing for 10 s and more, while the
    broker spent half a core on join requests. The first records come within a few polls."""
    prefix = f"t{uuid.uuid4().hex[:6]}."
    _fill(kafka_broker, f"{prefix}domain-events", 50)
    source = KafkaSource(kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}", prefix)
    try:
        got: list[object] = []
        polls = 0
        while len(got) < 50 and polls < 40:
            got.extend(source.poll(POLL_S, 1000))
            polls += 1
        assert len(got) == 50, f"{len(got)} records after {polls} polls of {POLL_S} s"
        assert polls <= 15
    finally:
        source.close()


def test_a_caught_up_sink_does_not_spin(kafka_broker: Broker) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}."
    _fill(kafka_broker, f"{prefix}ticket-state", 5)
    source = KafkaSource(kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}", prefix)
    try:
        received = 0
        for _ in range(40):
            received += len(source.poll(POLL_S, 1000))
            if received == 5:
                break
        assert received == 5
        before = time.process_time()  # kafka-python's threads are this process's
        for _ in range(25):  # 5 s of idle polling
            assert list(source.poll(POLL_S, 1000)) == []
        # kafka-python polling 200 ms at a time against a broker that answers an empty fetch
        # at once spun a whole core (5 CPU-s here); sleeping between idle polls costs a tenth.
        assert time.process_time() - before < 2.0
    finally:
        source.close()

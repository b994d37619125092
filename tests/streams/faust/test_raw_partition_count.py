"""The intake stamps every entry with the number of raw partitions, and the desk's merge waits
for that many. Just after a worker starts, its consumer may not know the topic's metadata yet;
the count then comes from the broker (``streams.faust_app._partition_count``), never from the
message's own partition (1 for partition 0 let partition 0's first entries go ahead of the
others' earlier ones)."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from streams.faust_app import _partition_count
from tests.support.broker import Broker

pytestmark = [pytest.mark.integration]


def test_the_broker_says_how_many_partitions_a_topic_has(kafka_broker: Broker) -> None:
    topic = f"raw-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()

    assert _partition_count(kafka_broker.bootstrap, topic) == 3
    assert _partition_count(kafka_broker.bootstrap, f"{topic}-missing") == 0

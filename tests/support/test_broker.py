from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from tests.support.broker import Broker


def test_broker_round_trips_a_message_with_acks_all(kafka_broker: Broker) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    producer.send("probe", key=b"conversation", value="привет".encode()).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        "probe",
        bootstrap_servers=kafka_broker.bootstrap,
        group_id="probe-1",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    assert [(m.key, m.value.decode()) for m in consumer] == [(b"conversation", "привет")]
    consumer.close()


def test_stop_really_stops_the_broker_and_restart_brings_it_back(kafka_broker: Broker) -> None:
    import socket

    import pytest

    kafka_broker.stop()
    with (
        pytest.raises(OSError),
        socket.create_connection(("127.0.0.1", kafka_broker.port), timeout=1),
    ):
        pass
    kafka_broker.start()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    producer.send("probe", value=b"again").get(timeout=10)
    producer.close()

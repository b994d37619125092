"""``faust_port.RecordBatches`` against a real broker (noida-db): the desk's outputs, sent as
record batches, land where aiokafka's own ``send`` puts each key, in order, all of them, with
batches split where the producer's batch size says and a message larger than a batch alone."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers.aiokafka import Producer as FaustProducer

from streams.faust_port import RecordBatches
from tests.support.broker import Broker

PARTITIONS = 3


async def _read_all(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(200):
            if len(seen) >= count:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in sorted(batch.items(), key=lambda item: item[0].partition):
                seen.extend((tp.partition, r.key or b"", r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return seen


async def _send_both_ways(bootstrap: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    batched, single = f"batched-{run}", f"single-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (batched, single)])
    finally:
        await admin.close()
    # A small batch size, so one call's messages of a partition take several batches.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, max_batch_size=1024)
    await producer.start()
    try:
        keys = [f"T-{n % 37:04d}".encode() for n in range(300)]
        values = [f"{n:05d}".encode() * 40 for n in range(300)]  # 200 bytes each
        values[150] = b"x" * 5000  # larger than a whole batch
        messages = [(batched, k, v) for k, v in zip(keys, values, strict=True)]
        sender = RecordBatches(
            SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        )
        futures = []
        for start in range(0, len(messages), 100):  # three calls, as three desk inputs
            futures += await sender.send(messages[start : start + 100])
        await asyncio.gather(*futures)
        singles = [await producer.send(single, v, key=k) for k, v in zip(keys, values, strict=True)]
        await asyncio.gather(*singles)
        return {
            "keys": keys,
            "values": values,
            "batches": len(futures),
            "batched": await _read_all(bootstrap, batched, len(keys)),
            "single": await _read_all(bootstrap, single, len(keys)),
        }
    finally:
        await producer.stop()


def test_batches_land_where_send_puts_each_key_in_order_and_complete(
    kafka_broker: Broker,
) -> None:
    got = asyncio.run(_send_both_ways(kafka_broker.bootstrap))
    batched, single = got["batched"], got["single"]
    assert len(batched) == len(single) == len(got["keys"])
    # Each key in the partition aiokafka's send (Kafka's murmur2) chose for it.
    where_send = {key: partition for partition, key, _ in single}
    assert {key: partition for partition, key, _ in batched} == where_send
    assert len(set(where_send.values())) == PARTITIONS
    # Within each partition, the messages in the order they were given.
    for partition in range(PARTITIONS):
        expected = [
            (k, v)
            for k, v in zip(got["keys"], got["values"], strict=True)
            if where_send[k] == partition
        ]
        assert [(k, v) for p, k, v in batched if p == partition] == expected
    # 1 KiB batches of 200-byte messages: more batches than partitions times calls.
    assert got["batches"] > PARTITIONS * 3


def test_faust_producer_gives_the_aiokafka_producer_it_wraps() -> None:
    # RecordBatches reaches aiokafka's batch API through Faust's producer, which keeps the
    # aiokafka producer it started in ``_producer`` (faust-streaming 0.15).
    app = faust.App(f"port-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
    producer = app.producer
    assert isinstance(producer, FaustProducer)
    started = object()
    producer._producer = started
    assert producer._ensure_producer() is started

"""``faust_port.RecordBatches`` against a real broker (noida-db): the desk's outputs, sent as
record batches, land where aiokafka's own ``send`` puts each key, in order, all of them, with
batches split where the producer's batch size says and a message larger than a batch alone."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers.aiokafka import Producer as FaustProducer

from streams.faust_app import desk_table
from streams.faust_port import RecordBatches, TableWrites
from streams.faust_runner import encode_value
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
        sent = []
        for start in range(0, len(messages), 100):  # three calls, as three desk inputs
            sent += await sender.send(messages[start : start + 100])
        await asyncio.gather(*(future for future, _ in sent))
        singles = [await producer.send(single, v, key=k) for k, v in zip(keys, values, strict=True)]
        await asyncio.gather(*singles)
        return {
            "keys": keys,
            "values": values,
            "batches": len(sent),
            "records": sum(count for _, count in sent),
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
    assert got["records"] == len(got["keys"])


def test_faust_producer_gives_the_aiokafka_producer_it_wraps() -> None:
    # RecordBatches reaches aiokafka's batch API through Faust's producer, which keeps the
    # aiokafka producer it started in ``_producer`` (faust-streaming 0.15).
    app = faust.App(f"port-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
    producer = app.producer
    assert isinstance(producer, FaustProducer)
    started = object()
    producer._producer = started
    assert producer._ensure_producer() is started


async def _write_through_table_writes(bootstrap: str) -> dict[str, Any]:
    app = faust.App(f"tw-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}")
    table = desk_table(app)
    changelog = table.changelog_topic.get_topic_name()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, max_batch_size=1024)
    await producer.start()
    try:
        app_like = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        writes = TableWrites(table, RecordBatches(app_like), 0)
        writes["tickets\x1fT-1"] = encode_value({"status": "new", "subject": "é" * 300})
        writes["meta\x1fdone"] = encode_value(1)
        await writes.flush()
        writes["tickets\x1fT-1"] = encode_value({"status": "open", "replies": [["a", 1, 0]]})
        writes["tickets\x1fT-2"] = encode_value({"status": "new"})
        del writes["tickets\x1fT-2"]
        writes["meta\x1fdone"] = encode_value(2)
        await writes.flush()
        store = dict(table.data.data)
        records = await _read_all(bootstrap, changelog, 6)
    finally:
        await producer.stop()
    # The changelog read back as Faust's recovery reads it: its topic's key and value codecs.
    recovered: dict[str, Any] = {}
    for _, key, value in records:
        name = table.changelog_topic.schema.loads_key(app, SimpleNamespace(key=key, headers=None))
        if value == b"":  # a deletion (null value; _read_all gives b"")
            recovered.pop(name, None)
        else:
            message = SimpleNamespace(value=value, headers=None)
            recovered[name] = table.changelog_topic.schema.loads_value(app, message)
    # The bytes written directly (faust_port) are the bytes Faust's own codecs give.
    topic = table.changelog_topic
    for _, key, value in records:
        name = topic.schema.loads_key(app, SimpleNamespace(key=key, headers=None))
        assert topic.prepare_key(name, table.key_serializer)[0] == key, name
        if value != b"":
            assert topic.prepare_value(value, table.value_serializer)[0] == value, name
    return {"store": store, "recovered": recovered, "count": len(records)}


def test_table_writes_reach_the_store_and_a_changelog_faust_recovers(
    kafka_broker: Broker,
) -> None:
    got = asyncio.run(_write_through_table_writes(kafka_broker.bootstrap))
    expected = {
        "tickets\x1fT-1": encode_value({"status": "open", "replies": [["a", 1, 0]]}),
        "meta\x1fdone": b"2",
    }
    assert got["store"] == expected
    assert got["recovered"] == expected  # the raw JSON bytes, for the desk to decode
    assert got["count"] == 6  # every write, in order, the deletion as a tombstone


async def _deliver_and_read(
    bootstrap: str,
) -> tuple[dict[Any, int], list[tuple[int, bytes, bytes]]]:
    topic = f"delivered-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, max_batch_size=1024)
    await producer.start()
    try:
        sender = RecordBatches(
            SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        )
        messages = [(topic, f"K-{n % 11}".encode(), b"v" * 150) for n in range(120)]
        last = await sender.deliver(messages)
        return last, await _read_all(bootstrap, topic, len(messages))
    finally:
        await producer.stop()


def test_deliver_waits_for_every_batch_and_gives_each_partitions_last_offset(
    kafka_broker: Broker,
) -> None:
    last, read = asyncio.run(_deliver_and_read(kafka_broker.bootstrap))
    counts = {p: sum(1 for q, _, _ in read if q == p) for p in {p for p, _, _ in read}}
    # Every partition written, several batches each (1 KiB batches), its last offset the
    # count of what it holds less one.
    assert {(tp.partition, offset) for tp, offset in last.items()} == {
        (p, n - 1) for p, n in counts.items()
    }
    assert sum(counts.values()) == 120


def test_table_writes_reads_what_faust_s_table_reads_without_its_hooks() -> None:
    # Reads go to the in-memory store's dict; they must see what the table itself sees,
    # writes made through the view and values recovery put in the store alike.
    app = faust.App(f"tr-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    table = desk_table(app)
    writes = TableWrites(table, RecordBatches(SimpleNamespace(producer=None)), 0)
    writes["tickets\x1fT-1"] = b'{"status":"new"}'
    table.data["tickets\x1fT-2"] = b'{"status":"open"}'  # as recovery fills the store
    del writes["tickets\x1fT-1"]
    writes["meta\x1fdone"] = b"3"
    for key in ("tickets\x1fT-1", "tickets\x1fT-2", "meta\x1fdone", "absent"):
        assert (key in writes) == (key in table)
        assert writes.get(key, "default") == table.get(key, "default")
        if key in table:
            assert writes[key] == table[key]
        else:
            with pytest.raises(KeyError):
                writes[key]
    assert writes.get("tickets\x1fT-2") == b'{"status":"open"}' and writes.get("absent") is None
    assert sorted(writes) == sorted(table)


def test_a_changelog_faust_encoded_reads_as_the_raw_table_holds_it() -> None:
    # Until the table kept raw bytes, Faust encoded its values with its JSON serializer. A
    # changelog of that release is recovered into the raw table as those bytes: they must be
    # the JSON the desk writes itself, so the desk reads old and new values alike.
    app = faust.App(f"old-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    old = app.Table("desk-state", partitions=1, key_type=str)  # the earlier release's table
    new_app = faust.App(f"new-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    assert old.value_serializer == "json" and desk_table(new_app).value_serializer == "raw"
    values: list[Any] = [
        {"ticket_id": "T-1", "subject": "Ünïcode \u2028 \U0001f600", "skills": ["de", "vip"]},
        {"loads": {"agent-1": 3}, "last_pick": {"billing": "agent-1"}},
        {"step": 12, "before": {"tickets\x1fT-1": None}, "parts": 1},
        {"from": None, "slots": [[0, 17], [2, 4]]},
        {1: "a key that is not a string", "x": -2.5, "big": 2**62},
        "conversation:abc",
        1_741_000_000_000,
    ]
    for value in values:
        assert old.changelog_topic.prepare_value(value, "json")[0] == encode_value(value)

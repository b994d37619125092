"""What a broker stores, batch by batch: the compression codec of every record batch of a topic,
read with a plain Fetch (aiokafka's client and record reader), for the tests of what
supportstream's producers write."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

CODECS = {0: None, 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
"""A record batch's codec (the low bits of its attributes) by name; ``None``: uncompressed."""


def batch_codecs(bootstrap: str, topic: str) -> list[str | None]:
    """The codec of every record batch in ``topic``, partition by partition, oldest first."""
    return asyncio.run(_batch_codecs(bootstrap, topic))


async def _batch_codecs(bootstrap: str, topic: str) -> list[str | None]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        client.add_topic(topic)
        await client.force_metadata_update()
        codecs: list[str | None] = []
        for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            offset = 0
            while True:
                request = FetchRequest(0, 1, 8 << 20, 0, [(topic, [(partition, offset, 8 << 20)])])
                response = await client.send(leader, request)
                ((_, partitions),) = response.topics
                ((_, error, highwater, *part_data),) = partitions
                assert error == 0, f"fetch error {error}"
                records = MemoryRecords(part_data[-1])
                fetched = False
                while (batch := records.next_batch()) is not None:
                    codecs.append(CODECS[batch.compression_type])
                    last = max(record.offset for record in batch)
                    offset = max(offset, last + 1)
                    fetched = True
                if not fetched or offset >= highwater:
                    break
        return codecs
    finally:
        await client.close()

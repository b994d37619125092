"""A consumer whose commit is refused with ILLEGAL_GENERATION rejoins under its member id
(``streams.faust_port.install_member_id_kept_on_illegal_generation``), so a group never waits
for a member that no longer exists. Real aiokafka consumers on a real Kafka-protocol broker.

Without the patch, the test broker (noida-db, which never expires a member) keeps the refused
consumer's old id as the group's leader, and the next generation waits for that leader's
SyncGroup for ever: this test then stalls (seen by hand), as the failover test and the
two-worker benchmark did one run in a few."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from streams.faust_port import install_member_id_kept_on_illegal_generation
from tests.support.broker import Broker

pytestmark = [pytest.mark.integration]


class _Generations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records the group generation of each assignment a consumer receives."""

    def __init__(self, consumer: AIOKafkaConsumer, seen: list[int]) -> None:
        self.consumer, self.seen = consumer, seen

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.seen.append(self.consumer._coordinator.generation)


async def _leader_refused_then_a_second_member_joins(bootstrap: str) -> tuple[list[int], list[int]]:
    topic, group = f"t{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", partition=0)
    finally:
        await producer.stop()
    settings: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        rebalance_timeout_ms=3000,
        session_timeout_ms=30000,
        heartbeat_interval_ms=1000,
    )
    first_seen: list[int] = []
    second_seen: list[int] = []
    first = AIOKafkaConsumer(**settings)
    first.subscribe([topic], listener=_Generations(first, first_seen))
    second = AIOKafkaConsumer(**settings)
    second.subscribe([topic], listener=_Generations(second, second_seen))
    await first.start()
    try:
        while not first_seen:
            await first.getmany(timeout_ms=100)
        member_id = first._coordinator.member_id
        # A commit of a generation the group is not at: the coordinator answers
        # ILLEGAL_GENERATION, as it does to a leader committing while a rebalance it has not
        # seen yet has begun.
        first._coordinator.generation += 7
        with pytest.raises(CommitFailedError):
            await first.commit({TopicPartition(topic, 0): OffsetAndMetadata(1, "")})
        assert first._coordinator.member_id == member_id  # kept
        await second.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await asyncio.gather(first.getmany(timeout_ms=200), second.getmany(timeout_ms=200))
            if second_seen and first_seen[-1] == second_seen[-1]:
                break
        return first_seen, second_seen
    finally:
        await asyncio.gather(first.stop(), second.stop())


def test_a_member_refused_for_its_generation_rejoins_and_the_group_forms(
    kafka_broker: Broker,
) -> None:
    install_member_id_kept_on_illegal_generation()
    first_seen, second_seen = asyncio.run(
        _leader_refused_then_a_second_member_joins(kafka_broker.bootstrap)
    )
    # Both members were assigned in the same, later generation.
    assert second_seen, f"the second member was never assigned (first: {first_seen})"
    assert first_seen[-1] == second_seen[-1] > first_seen[0]

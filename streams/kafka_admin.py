"""Kafka topics as ``streams.topology`` declares them, created by ``migrate`` or on first start.

``ensure_topics`` creates every topic of ``TOPICS`` that does not exist yet, named
``{topic_prefix}{name}``, with its partitions (the topology's, else the deployment's
``SUPPORTSTREAM_PARTITIONS``), retention and cleanup policy. A topic that already exists is left
as it is: partitions can only grow, and changing retention on a live cluster is an operator's
decision, so a difference is reported (returned and logged) but never "fixed" behind anyone's
back. kafka-python's admin client is synchronous; async callers run this in an executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings
from streams.topology import TOPICS, Topic

log = structlog.get_logger("supportstream.kafka_admin")


class KafkaAdminError(Exception):
    """The broker could not be reached, or refused to create a topic."""


@dataclass(frozen=True)
class TopicReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]
    mismatched: tuple[str, ...]  # "name: what differs", for existing topics


def topic_name(settings: Settings, name: str) -> str:
    """The broker-side name of a topology topic (``supportstream.raw-contacts``)."""
    return f"{settings.topic_prefix}{name}"


def topic_configs(topic: Topic) -> dict[str, str]:
    return {
        "cleanup.policy": "compact" if topic.compacted else "delete",
        "retention.ms": str(topic.retention_ms),
    }


def ensure_topics(
    bootstrap: str,
    settings: Settings,
    topics: Sequence[Topic] = TOPICS,
    *,
    timeout_s: float = 15.0,
) -> TopicReport:
    """Create the missing topics of the topology; report existing ones and their differences."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="supportstream-admin",
            request_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise KafkaAdminError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from None
    try:
        wanted = {topic_name(settings, t.name): t for t in topics}
        present = set(admin.list_topics())
        absent = {name: t for name, t in wanted.items() if name not in present}
        replicas = (1 if _single_broker(admin) else 3) if absent else 0  # asked once, if needed
        missing = [
            NewTopic(
                name,
                t.partition_count(settings.partitions),
                replicas,
                topic_configs=topic_configs(t),
            )
            for name, t in absent.items()
        ]
        created: list[str] = []
        for new in missing:
            # One request per topic: a topic another process created a moment ago is fine.
            try:
                admin.create_topics([new], timeout_ms=int(timeout_s * 1000))
                created.append(new.name)
                log.info("topic created", topic=new.name, partitions=new.num_partitions)
            except TopicAlreadyExistsError:
                present.add(new.name)
        existing = sorted(name for name in wanted if name in present)
        mismatched = _mismatches(admin, {n: wanted[n] for n in existing}, settings)
        for line in mismatched:
            log.warning("topic differs from the topology", detail=line)
        return TopicReport(tuple(created), tuple(existing), tuple(mismatched))
    except KafkaError as exc:
        raise KafkaAdminError(f"cannot create topics on {bootstrap}: {exc}") from None
    finally:
        admin.close()


def _single_broker(admin: KafkaAdminClient) -> bool:
    # A development broker (or the tests' noida-db) has one node; production clusters get
    # replication factor 3. Some Kafka-protocol brokers answer DescribeCluster incompletely
    # (kafka-python then fails on a missing field), so the metadata's broker list stands in.
    try:
        return len(admin.describe_cluster().get("brokers", [])) < 3
    except Exception:
        cluster = getattr(getattr(admin, "_client", None), "cluster", None)
        brokers = cluster.brokers() if cluster is not None else ()
        return len(brokers) < 3


def _mismatches(admin: KafkaAdminClient, topics: dict[str, Topic], settings: Settings) -> list[str]:
    if not topics:
        return []
    out: list[str] = []
    for described in admin.describe_topics(list(topics)):
        name = described.get("name") or described.get("topic")
        topic = topics.get(name)
        if topic is None:
            continue
        want = topic.partition_count(settings.partitions)
        have = len(described.get("partitions", []))
        if have != want:
            out.append(f"{name}: {have} partitions, the topology declares {want}")
    return out

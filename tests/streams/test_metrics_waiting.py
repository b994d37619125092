"""`supportstream_queue_waiting_tickets{queue}` (CONTRACT §6, §7) and the age of the oldest
waiting ticket, fed by the real runner from a story with a full agent and presence changes."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.pii import Masker
from processors.rules import rules_from_mapping
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner
from streams.metrics import CONTRACT_METRICS, PipelineMetrics
from tests.streams.test_metrics import FakeWarehouse

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z
MIN = 60_000
RULES = rules_from_mapping(
    {
        "version": 1,
        "queues": [{"name": "general", "default": True}, {"name": "vip", "when": {"tier": "vip"}}],
        "agents": [{"id": "ann", "queues": ["general"], "capacity": 1}],
    },
    "test-rules",
)


def record(at: int, source: str, payload: Any, n: int) -> RawRecord:
    text = json.dumps({"at": at, "source": source, "payload": payload})
    return RawRecord(at=at, source=source, payload=payload, ref=f"test:{n}", text=text)


def chat(minute: int, session: str, n: int) -> RawRecord:
    payload = {"session_id": session, "message_id": "m", "visitor": {"id": session}, "text": "hi"}
    return record(T0 + minute * MIN, "chat", payload, n)


def agent(minute: int, n: int, **payload: Any) -> RawRecord:
    return record(T0 + minute * MIN, "agent", payload, n)


def sample(registry: CollectorRegistry, name: str, queue: str) -> float | None:
    return registry.get_sample_value(name, {"queue": queue})


def observed_runner() -> tuple[CollectorRegistry, LocalRunner]:
    """A runner whose outputs feed the §6 metrics of a registry of their own."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        ProjectionWriter(FakeWarehouse()),
        on_output=metrics.observe_output,
    )
    return registry, runner


def test_waiting_tickets_and_the_oldest_wait_per_queue() -> None:
    registry, runner = observed_runner()
    waiting, oldest = (
        "supportstream_queue_waiting_tickets",
        "supportstream_queue_oldest_waiting_since_seconds",
    )
    runner.feed(chat(0, "s1", 1))  # -> ann
    runner.feed(chat(1, "s2", 2))  # waits
    runner.feed(chat(2, "s3", 3))  # waits
    assert sample(registry, waiting, "general") == 2
    assert sample(registry, oldest, "general") == (T0 + MIN) / 1000
    runner.feed(
        agent(5, 4, type="status", conversation_id="chat:s1", agent_id="ann", status="solved")
    )
    assert sample(registry, waiting, "general") == 1  # s2 went to ann
    assert sample(registry, oldest, "general") == (T0 + 2 * MIN) / 1000
    runner.feed(agent(6, 5, type="presence", agent_id="ann", status="offline"))
    # s2 was still new: it comes back and waits again, from minute 6.
    assert sample(registry, waiting, "general") == 2
    assert sample(registry, oldest, "general") == (T0 + 2 * MIN) / 1000
    runner.feed(agent(7, 6, type="assign", conversation_id="chat:s3", agent_id="bob"))
    runner.feed(
        agent(8, 7, type="status", conversation_id="chat:s2", agent_id="bob", status="solved")
    )
    runner.finish(T0 + 10 * MIN)
    assert sample(registry, waiting, "general") == 0
    assert sample(registry, oldest, "general") is None  # nobody waits: no age to alert on

    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert families[waiting].type == "gauge"
    assert CONTRACT_METRICS[waiting] == ("gauge", ("queue",))
    assert {s.labels["queue"] for s in families[waiting].samples} == {"general"}


def test_a_runner_on_a_desk_built_from_stored_state_shows_who_still_waits() -> None:
    """A restarted worker builds its desk from the stored state (the Faust table): the tickets
    still waiting are on the gauges at once, not from 0 until each one's next event."""
    first = LocalRunner(RULES, Pseudonymizer.from_text("k"), ProjectionWriter(FakeWarehouse()))
    first.feed(chat(0, "s1", 1))  # -> ann
    first.feed(chat(1, "s2", 2))  # waits
    first.feed(chat(2, "s3", 3))  # waits
    restarted = Desk(RULES, Pseudonymizer.from_text("k"), Masker(), stores=first.desk.stores)
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        None,
        on_output=metrics.observe_output,
        metrics=PipelineMetrics(CollectorRegistry()),
        desk=restarted,
    )
    assert sample(registry, "supportstream_queue_waiting_tickets", "general") is None
    metrics.observe_desk_state(runner.desk)
    waiting, oldest = (
        "supportstream_queue_waiting_tickets",
        "supportstream_queue_oldest_waiting_since_seconds",
    )
    assert sample(registry, waiting, "general") == 2
    assert sample(registry, oldest, "general") == (T0 + MIN) / 1000
    # The events that follow move the gauges from there: s2 goes to ann when s1 is solved.
    runner.feed(
        agent(5, 4, type="status", conversation_id="chat:s1", agent_id="ann", status="solved")
    )
    assert sample(registry, waiting, "general") == 1
    assert sample(registry, oldest, "general") == (T0 + 2 * MIN) / 1000


def test_the_runner_starts_its_metrics_from_the_desk_it_is_given() -> None:
    first = LocalRunner(RULES, Pseudonymizer.from_text("k"), ProjectionWriter(FakeWarehouse()))
    first.feed(chat(0, "s1", 1))
    first.feed(chat(1, "s2", 2))
    restarted = Desk(RULES, Pseudonymizer.from_text("k"), Masker(), stores=first.desk.stores)
    registry = CollectorRegistry()
    LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        None,
        metrics=PipelineMetrics(registry),
        desk=restarted,
    )
    assert sample(registry, "supportstream_queue_waiting_tickets", "general") == 1


def test_every_queue_that_waits_has_its_series_from_the_start() -> None:
    """`/metrics` shows the §6 gauge before anybody waited: 0 for each queue an agent is listed
    for; a queue nobody serves never waits, so it has no series."""
    registry = CollectorRegistry()
    LocalRunner(RULES, Pseudonymizer.from_text("k"), None, metrics=PipelineMetrics(registry))
    assert sample(registry, "supportstream_queue_waiting_tickets", "general") == 0
    assert sample(registry, "supportstream_queue_waiting_tickets", "vip") is None
    assert sample(registry, "supportstream_queue_oldest_waiting_since_seconds", "general") is None


def test_the_oldest_wait_comes_back_after_a_spell_with_nobody_waiting() -> None:
    # The series is removed when the queue empties; the next ticket that waits must show on a
    # series the registry exports again, not on the removed one.
    registry, runner = observed_runner()
    oldest = "supportstream_queue_oldest_waiting_since_seconds"
    runner.feed(chat(0, "s1", 1))  # -> ann
    runner.feed(chat(1, "s2", 2))  # waits
    assert sample(registry, oldest, "general") == (T0 + MIN) / 1000
    runner.feed(
        agent(5, 3, type="status", conversation_id="chat:s1", agent_id="ann", status="solved")
    )
    assert sample(registry, oldest, "general") is None  # s2 went to ann: nobody waits
    runner.feed(chat(7, "s3", 4))  # waits, ann is busy with s2
    assert sample(registry, oldest, "general") == (T0 + 7 * MIN) / 1000
    assert sample(registry, "supportstream_queue_waiting_tickets", "general") == 1

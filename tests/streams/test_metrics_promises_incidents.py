"""The §6 metrics of promises and incidents (CONTRACT §7), fed by what the real processors emit
through a LocalRunner: names, types and labels as the contract fixes them, and values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.pii import Masker
from processors.rules import rules_from_mapping
from streams.local import LocalRunner
from streams.metrics import PipelineMetrics

CONTRACT = {
    "supportstream_first_response_estimate_seconds": ("gauge", {"channel", "policy"}),
    "supportstream_promises_total": ("counter", {"channel", "outcome"}),
    "supportstream_incidents_open": ("gauge", {"category"}),
    "supportstream_incidents_opened_total": ("counter", {"category"}),
}

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z
MIN = 60_000
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
RULES = rules_from_mapping(
    {
        "version": 1,
        "calendars": {"always": {"timezone": "UTC", "week": ALWAYS}},
        "categories": [{"name": "outage", "keywords": ["down"]}],
        "queues": [{"name": "general", "default": True}],
        "sla_policies": [
            {"name": "fast", "calendar": "always", "targets": {"first_response": "10m"}}
        ],
        "promises": {"percentile": 100, "window": 5, "min_samples": 1},
        "incidents": {"window": "30m", "min_customers": 2, "factor": 1, "baseline": "1d"},
    },
    "test-rules",
)


class _Discard:
    def __init__(self) -> None:
        self.rows_written: dict[str, int] = {}

    def add_output(self, output: Any) -> None:
        pass

    def flush(self) -> int:
        return 0


def _record(at: int, source: str, payload: Any, n: int) -> RawRecord:
    text = json.dumps({"at": at, "source": source, "payload": payload})
    return RawRecord(at=at, source=source, payload=payload, ref=f"t:{n}", text=text)


def _chat(at: int, session: str, text: str, n: int) -> RawRecord:
    payload = {"session_id": session, "message_id": "m", "visitor": {"id": f"v-{session}"}}
    return _record(at, "chat", {**payload, "text": text}, n)


def _reply(at: int, session: str, n: int) -> RawRecord:
    payload = {"type": "reply", "conversation_id": f"chat:{session}", "agent_id": "ann"}
    return _record(at, "agent", payload, n)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def _run(until: int) -> CollectorRegistry:
    """s-1 answered after 4 min (kept; the estimate becomes 240 s), s-2 never answered (broken
    at T0+11m, the target), s-3 and s-4 report an outage 5 minutes apart (an incident, closed
    30 minutes after s-4 opened), neither answered within its 240 s."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        _Discard(),
        on_output=metrics.observe_output,  # type: ignore[arg-type]
    )
    runner.feed(_chat(T0, "s-1", "hello", 1))
    runner.feed(_chat(T0 + MIN, "s-2", "hello", 2))
    runner.feed(_reply(T0 + 4 * MIN, "s-1", 3))
    runner.feed(_chat(T0 + 20 * MIN, "s-3", "site down", 4))
    runner.feed(_chat(T0 + 25 * MIN, "s-4", "down here too", 5))
    runner.finish(until)
    return registry


def test_the_contract_metrics_exist_with_their_types_and_labels() -> None:
    registry = _run(T0 + 30 * MIN)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, (kind, labels) in CONTRACT.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        family = families[base]
        assert family.type == kind, name
        samples = [s for s in family.samples if s.name == name]
        assert samples, name
        for sample in samples:
            assert labels <= set(sample.labels), (name, sample.labels)


def test_values_while_the_incident_is_open_and_after_it_closed() -> None:
    registry = _run(T0 + 30 * MIN)
    assert _value(registry, "supportstream_promises_total", channel="chat", outcome="kept") == 1
    # s-2 at T0+11m (the target), s-3 and s-4 at 240 s after their opening, unanswered.
    assert _value(registry, "supportstream_promises_total", channel="chat", outcome="broken") == 3
    assert _value(registry, "supportstream_promises_total", channel="email", outcome="kept") == 0
    # The latest promise (s-4's) used the history: the 100th percentile of [240 s].
    estimate = {"channel": "chat", "policy": "fast"}
    assert _value(registry, "supportstream_first_response_estimate_seconds", **estimate) == 240
    assert _value(registry, "supportstream_incidents_open", category="outage") == 1
    assert _value(registry, "supportstream_incidents_opened_total", category="outage") == 1

    closed = _run(T0 + 55 * MIN)  # s-4 opened at T0+25m; the incident closes at T0+55m
    assert _value(closed, "supportstream_incidents_open", category="outage") == 0
    assert _value(closed, "supportstream_incidents_opened_total", category="outage") == 1


def test_the_estimate_is_what_the_next_promise_would_use_as_soon_as_an_answer_changes_it() -> None:
    """CONTRACT §6: the gauge is "the estimate the next promise would use", so a fulfilled first
    response moves it at once, not only when the next ticket opens and is promised."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    promised: list[float] = []

    def seen(output: Any) -> None:
        metrics.observe_output(output)
        promised.extend(
            e.data["estimate_seconds"]
            for e in output.events
            if e.event_type == "ticket.acknowledged"
        )

    runner = LocalRunner(RULES, Pseudonymizer.from_text("k"), _Discard(), on_output=seen)
    estimate = {"channel": "chat", "policy": "fast"}
    runner.feed(_chat(T0, "s-1", "hello", 1))
    runner.feed(_chat(T0 + MIN, "s-2", "hello", 2))
    # No history yet: the promises used the 10-minute target, and so would the next one.
    assert _value(registry, "supportstream_first_response_estimate_seconds", **estimate) == 600
    runner.feed(_reply(T0 + 4 * MIN, "s-1", 3))
    # One answer in 240 s (min_samples 1, percentile 100): the next promise would use 240 s.
    assert _value(registry, "supportstream_first_response_estimate_seconds", **estimate) == 240
    runner.feed(_reply(T0 + 7 * MIN, "s-2", 4))  # s-2 answered in 360 s: the maximum is 360
    assert _value(registry, "supportstream_first_response_estimate_seconds", **estimate) == 360
    runner.feed(_chat(T0 + 8 * MIN, "s-3", "hello", 5))
    assert promised == [600, 600, 360]  # and the next promise did use it
    assert _value(registry, "supportstream_first_response_estimate_seconds", **estimate) == 360


def test_a_runner_on_a_desk_built_from_stored_state_shows_the_open_incident() -> None:
    """A restarted worker's gauge shows the incident still open at once (not only at the next
    ticket of its category), and the close timer it rebuilt clears it."""
    first = LocalRunner(RULES, Pseudonymizer.from_text("k"), _Discard())  # type: ignore[arg-type]
    first.feed(_chat(T0 + 20 * MIN, "s-3", "site down", 1))
    first.feed(_chat(T0 + 25 * MIN, "s-4", "down here too", 2))
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        None,
        metrics=metrics,
        desk=Desk(RULES, Pseudonymizer.from_text("k"), Masker(), stores=first.desk.stores),
    )
    assert registry.get_sample_value("supportstream_incidents_open", {"category": "outage"}) == 1
    runner.advance_to(T0 + 55 * MIN, inclusive=True)  # 30 minutes after s-4: closed
    assert registry.get_sample_value("supportstream_incidents_open", {"category": "outage"}) == 0


def test_the_series_exist_from_the_start_at_what_the_rules_say() -> None:
    """Before any ticket: every category's incident series at 0 (so `increase()` sees the first
    incident), and the estimate of every channel for the policy with a first-response target:
    the target, which is what the next promise would use with no history."""
    registry = CollectorRegistry()
    LocalRunner(RULES, Pseudonymizer.from_text("k"), None, metrics=PipelineMetrics(registry))
    outage = {"category": "outage"}
    assert registry.get_sample_value("supportstream_incidents_open", outage) == 0
    assert registry.get_sample_value("supportstream_incidents_opened_total", outage) == 0
    for channel in ("telegram", "whatsapp", "email", "chat", "form", "vk", "phone"):
        labels = {"channel": channel, "policy": "fast"}
        assert registry.get_sample_value(
            "supportstream_first_response_estimate_seconds", labels
        ) == pytest.approx(600)

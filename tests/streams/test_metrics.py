"""The §6 metrics: names, types and labels as the contract fixes them, values derived from what the
real processors emit (a LocalRunner over a fake warehouse), the bounded ticket cache, the
dead-letter reason classes, sink deltas and failures, and the HTTP endpoint."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.ids import Pseudonymizer
from processors.model import CycleState, DeadLetter, Output, RawRecord
from processors.rules import rules_from_mapping
from sinks.backend import SinkError
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner
from streams.metrics import (
    DEAD_LETTER_CLASSES,
    PipelineMetrics,
    dead_letter_class,
    serve,
)

# CONTRACT §6, restated here on purpose: the test must fail if the module drifts from the text.
CONTRACT = {
    "supportstream_contacts_total": ("counter", {"channel"}),
    "supportstream_tickets_opened_total": ("counter", {"channel", "queue", "priority"}),
    "supportstream_sla_breaches_total": ("counter", {"metric", "policy", "queue", "priority"}),
    "supportstream_sla_warnings_total": ("counter", {"metric", "policy", "queue", "priority"}),
    "supportstream_sla_active_cycles": ("gauge", {"metric", "policy"}),
    "supportstream_sla_fulfilment_business_seconds": ("histogram", {"metric", "policy"}),
    "supportstream_dead_letters_total": ("counter", {"source", "reason"}),
    "supportstream_sink_rows_total": ("counter", {"table"}),
    "supportstream_event_lag_seconds": ("gauge", {"stage"}),
}

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z
SEC = 1000
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
RULES = rules_from_mapping(
    {
        "version": 1,
        "calendars": {"always": {"timezone": "UTC", "week": ALWAYS}},
        "priorities": [{"when": {"channel": "chat"}, "priority": "P1"}],
        "default_priority": "P3",
        "queues": [{"name": "general", "default": True}],
        "sla_policies": [
            {
                "name": "fast",
                "when": {},
                "calendar": "always",
                "targets": {"first_response": "1m", "resolution": "1h"},
            }
        ],
    },
    "test-rules",
)


class FakeWarehouse:
    """A Backend that keeps inserted rows in memory and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.failing = False

    def execute(self, sql: str) -> None:
        pass

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if self.failing:
            raise SinkError(f"insert into {table} failed", retryable=True)
        self.rows[table] = self.rows.get(table, 0) + len(rows)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return []

    def query_formatted(self, sql: str, fmt: str) -> str:
        return ""

    def close(self) -> None:
        pass


def record(at: int, source: str, payload: Any, n: int) -> RawRecord:
    text = json.dumps({"at": at, "source": source, "payload": payload})
    return RawRecord(at=at, source=source, payload=payload, ref=f"test:{n}", text=text)


def chat(at: int, session: str, message: str, n: int) -> RawRecord:
    payload = {"session_id": session, "message_id": message, "visitor": {"id": "v-" + session}}
    return record(at, "chat", {**payload, "text": "hello"}, n)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
def run() -> tuple[CollectorRegistry, PipelineMetrics, LocalRunner, FakeWarehouse]:
    """Two chat tickets (P1, queue general, policy fast): s-1 is answered after 30 s, s-2 never;
    s-1's first message is delivered twice; one record names no ticket; time runs to T0+2m."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    warehouse = FakeWarehouse()
    writer = ProjectionWriter(warehouse)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        writer,
        on_output=lambda output: metrics.observe_output(output, T0 + 120 * SEC),
    )
    runner.feed(chat(T0, "s-1", "m-1", 1))
    runner.feed(chat(T0 + 1 * SEC, "s-1", "m-1", 2))  # redelivery: a duplicate
    runner.feed(chat(T0 + 2 * SEC, "s-2", "m-1", 3))
    reply = {"type": "reply", "conversation_id": "chat:s-1", "agent_id": "ann"}
    runner.feed(record(T0 + 30 * SEC, "agent", reply, 4))
    survey = {"conversation_id": "chat:nobody", "kind": "csat", "score": 5}
    runner.feed(record(T0 + 31 * SEC, "survey", survey, 5))
    runner.finish(T0 + 120 * SEC)
    metrics.observe_sink(writer.rows_written, now_ms=T0 + 121 * SEC)
    return registry, metrics, runner, warehouse


def test_every_contract_metric_is_exposed_with_its_type_and_labels(run: Any) -> None:
    registry = run[0]
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, (kind, labels) in CONTRACT.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        assert base in families, name
        family = families[base]
        assert family.type == kind, name
        samples = [s for s in family.samples if s.name in (name, f"{name}_count")]
        assert samples, f"{name} has no samples"
        for sample in samples:
            assert labels <= set(sample.labels), (name, sample.labels)


def test_values_follow_what_the_processors_emitted(run: Any) -> None:
    registry = run[0]
    # two contacts: the redelivered one is not counted
    assert value(registry, "supportstream_contacts_total", channel="chat") == 2
    assert value(registry, "supportstream_contacts_total", channel="email") == 0
    opened = {"channel": "chat", "queue": "general", "priority": "P1"}
    assert value(registry, "supportstream_tickets_opened_total", **opened) == 2
    sla = {"metric": "first_response", "policy": "fast", "queue": "general", "priority": "P1"}
    # s-2 breached its 1m first response at T0+62s; warned at 48s (0.8); s-1 warned? no: met at 30s
    assert value(registry, "supportstream_sla_breaches_total", **sla) == 1
    assert value(registry, "supportstream_sla_warnings_total", **sla) == 1
    fr = {"metric": "first_response", "policy": "fast"}
    assert value(registry, "supportstream_sla_fulfilment_business_seconds_count", **fr) == 1
    assert value(registry, "supportstream_sla_fulfilment_business_seconds_sum", **fr) == 30
    bucket = {**fr, "le": "60.0"}
    assert value(registry, "supportstream_sla_fulfilment_business_seconds_bucket", **bucket) == 1
    # active: both resolutions; no first response (one met, one breached)
    res = {"metric": "resolution", "policy": "fast"}
    assert value(registry, "supportstream_sla_active_cycles", **res) == 2
    assert value(registry, "supportstream_sla_active_cycles", **fr) == 0
    letters = {"source": "survey", "reason": "no_ticket"}
    assert value(registry, "supportstream_dead_letters_total", **letters) == 1
    # lag of the desk: now (T0+120s) minus the last instant emitted (the breach at T0+62s)
    assert value(registry, "supportstream_event_lag_seconds", stage="desk") == 58


def test_sink_rows_match_what_the_writer_wrote(run: Any) -> None:
    registry, _metrics, runner, warehouse = run
    for table in ("events", "tickets", "sla_metrics", "dead_letters"):
        written = runner.writer.rows_written[table]
        assert written > 0
        assert value(registry, "supportstream_sink_rows_total", table=table) == written
        assert warehouse.rows[f"supportstream.{table}"] == written
    assert (
        value(registry, "supportstream_sink_last_success_timestamp_seconds")
        == (T0 + 121 * SEC) / 1000
    )


def test_breach_series_exist_at_zero_once_a_cycle_starts() -> None:
    """So that alerts' increase() sees the first breach of a queue (a series born at 1 has no
    increase)."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        ProjectionWriter(FakeWarehouse()),
        on_output=metrics.observe_output,
    )
    runner.feed(chat(T0, "s-9", "m-1", 1))
    sla = {"metric": "first_response", "policy": "fast", "queue": "general", "priority": "P1"}
    assert registry.get_sample_value("supportstream_sla_breaches_total", sla) == 0
    assert registry.get_sample_value("supportstream_sla_warnings_total", sla) == 0


def test_the_ticket_cache_is_bounded_and_forgotten_tickets_are_unknown() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry, ticket_cache_size=1)
    runner = LocalRunner(
        RULES,
        Pseudonymizer.from_text("k"),
        ProjectionWriter(FakeWarehouse()),
        on_output=metrics.observe_output,
    )
    runner.feed(chat(T0, "s-1", "m-1", 1))
    runner.feed(chat(T0 + SEC, "s-2", "m-1", 2))  # evicts s-1 from a cache of one
    runner.finish(T0 + 61 * SEC)  # s-1 breaches at 60 s, s-2 not yet
    assert len(metrics._tickets) == 1
    unknown = {
        "metric": "first_response",
        "policy": "fast",
        "queue": "unknown",
        "priority": "unknown",
    }
    assert value(registry, "supportstream_sla_breaches_total", **unknown) == 1


def cycle(status: str, version: int, metric: str = "resolution") -> CycleState:
    return CycleState(
        ticket_id="t#1", metric=metric, cycle=1, policy="p", status=status, started_at=T0,
        due_at=T0 + 3600 * SEC, warned_at=None, breached_at=None, fulfilled_at=None,
        business_seconds=None, target_seconds=3600.0, updated_at=T0, version=version,
    )  # fmt: skip


def test_active_cycles_count_the_latest_status_and_paused_cycles_do_not_count() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    labels = {"metric": "resolution", "policy": "p"}
    steps = [("active", 1, 1), ("paused", 2, 0), ("active", 3, 1), ("active", 3, 1),
             ("met", 4, 0), ("active", 5, 1), ("breached", 6, 0), ("cancelled", 7, 0)]  # fmt: skip
    for status, version, expected in steps:
        metrics.observe_output(Output(cycles=(cycle(status, version),)))
        assert value(registry, "supportstream_sla_active_cycles", **labels) == expected, status
    # a late, older snapshot changes nothing
    metrics.observe_output(Output(cycles=(cycle("active", 9), cycle("paused", 2))))
    assert value(registry, "supportstream_sla_active_cycles", **labels) == 1


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("invalid json: Expecting value at column 1", "invalid_json"),
        ("record must be a json object, got array", "invalid_json"),
        ("unknown source 'fax'", "unknown_source"),
        ("field at: '2026-13-01' is not an RFC 3339 timestamp", "bad_timestamp"),
        ("missing field payload.message.chat.id", "missing_field"),
        ("field payload.caller holds no digits", "missing_field"),
        ("field payload.score must be a whole number, got 'x'", "wrong_type"),
        ("field payload.message.text must be a string, got number", "wrong_type"),
        ("score 9 out of range 1..5 for csat", "out_of_range"),
        ("unknown agent type 'x' in payload.type", "unknown_value"),
        ("field payload.object must be 'whatsapp_business_account', got 'x'", "unknown_value"),
        ("conversation 'chat:x' has no ticket", "no_ticket"),
        ("unknown ticket 'chat:x#1'", "no_ticket"),
        ("unknown criterion 'speed' (the rules' qa.scorecard lists: tone)", "unknown_value"),
        ("score 1.5 out of range 0..1 for criterion 'tone'", "out_of_range"),
        ("text/plain part has undecodable base64 content", "broken_mime"),
        ("e-mail has no From header", "broken_mime"),
        ("email payload could not be parsed (ValueError)", "parser_error"),
        ("something nobody wrote yet", "other"),
    ],
)
def test_dead_letter_reasons_become_a_few_classes(reason: str, expected: str) -> None:
    assert dead_letter_class(reason) == expected
    assert expected in DEAD_LETTER_CLASSES


def dead_letter_series(registry: CollectorRegistry) -> int:
    return sum(len(f.samples) for f in registry.collect() if f.name == "supportstream_dead_letters")


def test_dead_letter_label_cardinality_is_bounded() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    before = dead_letter_series(registry)
    for n in range(200):
        letter = DeadLetter(T0, "form", f"field payload.x{n} must be a string, got number", "", "")
        metrics.observe_output(Output(dead_letters=(letter,)))
    letter = DeadLetter(T0, "", "unknown source 'fax'", "", "")
    metrics.observe_output(Output(dead_letters=(letter,)))
    assert (
        value(registry, "supportstream_dead_letters_total", source="form", reason="wrong_type")
        == 200
    )
    assert (
        value(
            registry, "supportstream_dead_letters_total", source="unknown", reason="unknown_source"
        )
        == 1
    )
    reasons = {
        s.labels["reason"]
        for f in registry.collect()
        if f.name == "supportstream_dead_letters"
        for s in f.samples
    }
    assert reasons == set(DEAD_LETTER_CLASSES)
    assert dead_letter_series(registry) == before


def test_sink_deltas_failures_and_a_new_writer() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.observe_sink({"events": 10, "tickets": 2}, now_ms=1_000)
    metrics.observe_sink({"events": 25, "tickets": 2}, now_ms=2_000)
    assert value(registry, "supportstream_sink_rows_total", table="events") == 25
    assert value(registry, "supportstream_sink_rows_total", table="tickets") == 2
    metrics.observe_sink({"events": 5}, now_ms=3_000)  # a fresh writer counts from 0 again
    assert value(registry, "supportstream_sink_rows_total", table="events") == 30
    assert value(registry, "supportstream_sink_last_success_timestamp_seconds") == 3
    assert value(registry, "supportstream_sink_failures_total", table="events") == 0
    metrics.observe_sink_failure("events")
    assert value(registry, "supportstream_sink_failures_total", table="events") == 1


def test_a_failing_warehouse_is_counted_and_the_retry_counts_rows_once() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    warehouse = FakeWarehouse()
    writer = ProjectionWriter(warehouse)
    runner = LocalRunner(RULES, Pseudonymizer.from_text("k"), writer)
    runner.feed(chat(T0, "s-1", "m-1", 1))
    warehouse.failing = True
    with pytest.raises(SinkError):
        writer.flush()
    metrics.observe_sink_failure("events")
    warehouse.failing = False
    writer.flush()
    metrics.observe_sink(writer.rows_written)
    assert value(registry, "supportstream_sink_failures_total", table="events") == 1
    assert (
        value(registry, "supportstream_sink_rows_total", table="events")
        == warehouse.rows["supportstream.events"]
    )


def test_lag_is_now_minus_event_time_and_never_negative() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.observe_lag("parse", T0, T0 + 2_500)
    assert value(registry, "supportstream_event_lag_seconds", stage="parse") == 2.5
    metrics.observe_lag("parse", T0 + 10_000, T0)
    assert value(registry, "supportstream_event_lag_seconds", stage="parse") == 0


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    PipelineMetrics(first).contacts.labels("chat").inc()
    PipelineMetrics(second)
    assert value(second, "supportstream_contacts_total", channel="chat") == 0
    with pytest.raises(ValueError):
        PipelineMetrics(first)  # the same names twice in one registry


def test_serve_exposes_the_registry_over_http_and_stops() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.contacts.labels("vk").inc(3)
    server = serve(0, registry, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.stop()
    assert 'supportstream_contacts_total{channel="vk"} 3.0' in body
    for name in CONTRACT:
        assert f"# TYPE {name.removesuffix('_total')}" in body

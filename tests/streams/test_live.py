"""Live mode: the wall clock drives SLA timers, so a breach is raised within 5 s of its due
instant when no record arrives (CONTRACT §3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processors.ids import Pseudonymizer
from processors.model import Output
from processors.rules import rules_from_mapping
from processors.timeutil import to_rfc3339
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.live import run_live
from streams.local import LocalRunner, wall_clock_ms

ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def rules(first_response: str) -> Any:
    return rules_from_mapping(rules_mapping(first_response), "live-test")


def rules_mapping(first_response: str) -> dict[str, Any]:
    return {
        "version": 1,
        "calendars": {"always": {"timezone": "UTC", "week": ALWAYS}},
        "categories": [{"name": "billing", "keywords": ["invoice"]}],
        "queues": [{"name": "general", "default": True}],
        "sla_policies": [
            {
                "name": "fast",
                "when": {},
                "calendar": "always",
                "targets": {"first_response": first_response, "resolution": "1h"},
            }
        ],
    }


def chat(at: int, message_id: str = "1") -> dict[str, Any]:
    return {
        "at": to_rfc3339(at),
        "source": "chat",
        "payload": {
            "session_id": "live-1",
            "message_id": message_id,
            "visitor": {"id": "v1"},
            "text": "Where is my invoice?",
        },
    }


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[ProjectionWriter]:
    backend = ChdbBackend(tmp_path / "warehouse")
    migrate(backend)
    try:
        yield ProjectionWriter(backend)
    finally:
        backend.close()


class FakeClock:
    """Time that moves only when the loop sleeps."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(1, round(seconds * 1000))


def test_a_breach_fires_on_the_tick_after_its_due_instant_without_any_record(
    writer: ProjectionWriter,
) -> None:
    clock = FakeClock(1_800_000_000_000)
    fired: list[tuple[int, str, int]] = []

    def seen(output: Output) -> None:
        fired.extend((clock.now, e.event_type, e.at) for e in output.events)

    runner = LocalRunner(rules("10s"), Pseudonymizer(b"k"), writer, on_output=seen)
    opened = clock.now + 100
    run_live(
        runner,
        iter([chat(opened)]),
        duration_ms=30_000,
        clock=clock,
        sleep=clock.sleep,
        tick_ms=500,
    )
    breaches = [(wall, at) for wall, kind, at in fired if kind == "sla.cycle_breached"]
    assert breaches, fired
    wall, at = breaches[0]
    assert at == opened + 10_000  # the breach is dated at exactly the due instant
    assert 0 < wall - at <= 500 + 1  # and raised on the first tick after it
    warned = [at for _, kind, at in fired if kind == "sla.cycle_warned"]
    assert warned == [opened + 8_000]


def test_on_the_real_wall_clock_a_breach_is_raised_within_5s_of_its_due_instant(
    writer: ProjectionWriter,
) -> None:
    raised: list[tuple[int, int]] = []

    def seen(output: Output) -> None:
        now = wall_clock_ms()
        raised.extend((now, e.at) for e in output.events if e.event_type == "sla.cycle_breached")

    runner = LocalRunner(rules("2s"), Pseudonymizer(b"k"), writer, on_output=seen)
    opened = wall_clock_ms()
    run_live(runner, iter([chat(opened)]), duration_ms=4_000, tick_ms=500)
    assert len(raised) == 1
    wall, due = raised[0]
    assert due == opened + 2_000
    assert 0 <= wall - due < 5_000


def test_records_are_applied_when_the_clock_reaches_them_and_reach_the_warehouse(
    writer: ProjectionWriter,
) -> None:
    clock = FakeClock(1_800_000_000_000)
    records = [chat(clock.now + 1_000, "1"), chat(clock.now + 3_000, "2")]
    applied: list[tuple[int, int]] = []

    def seen(output: Output) -> None:
        applied.extend(
            (clock.now, e.at) for e in output.events if e.event_type == "contact.received"
        )

    runner = LocalRunner(rules("1h"), Pseudonymizer(b"k"), writer, on_output=seen)
    run_live(runner, iter(records), duration_ms=10_000, clock=clock, sleep=clock.sleep)
    assert [at for _, at in applied] == [clock.now - 10_000 + 1_000, clock.now - 10_000 + 3_000]
    assert all(wall == at for wall, at in applied)  # not before their time, not late
    rows = writer.backend.query("SELECT inbound_count FROM tickets FINAL")
    assert rows == [{"inbound_count": 2}]


def test_a_record_that_cannot_be_read_becomes_a_dead_letter_dated_on_arrival(
    writer: ProjectionWriter,
) -> None:
    clock = FakeClock(1_800_000_000_000)
    bad = {"at": "yesterday", "source": "chat", "payload": {}}
    runner = LocalRunner(rules("1h"), Pseudonymizer(b"k"), writer)
    run_live(runner, iter([bad]), duration_ms=2_000, clock=clock, sleep=clock.sleep)
    rows = writer.backend.query("SELECT toUnixTimestamp64Milli(at) AS at, reason FROM dead_letters")
    assert len(rows) == 1
    assert rows[0]["at"] == 1_800_000_000_000
    assert "at" in rows[0]["reason"]


def test_a_promise_breaks_and_an_incident_closes_on_the_wall_clock_without_any_record(
    writer: ProjectionWriter,
) -> None:
    """CONTRACT §7: a promise whose promised_by passes without a reply breaks, and an incident
    closes `window` after its latest ticket, by timers the wall clock fires in live mode as it
    fires SLA timers (no record has to arrive)."""
    mapping = {
        **rules_mapping("10s"),
        "promises": {},  # below min_samples: the estimate is the 10 s target
        "incidents": {"window": "5s", "min_customers": 2, "factor": 3, "baseline": "1h"},
    }
    clock = FakeClock(1_800_000_000_000)
    fired: list[tuple[int, str, int, str]] = []

    def seen(output: Output) -> None:
        fired.extend((clock.now, e.event_type, e.at, e.ticket_id) for e in output.events)

    def invoice(at: int, session: str) -> dict[str, Any]:
        record = chat(at, "1")
        payload = {**record["payload"], "session_id": session, "visitor": {"id": session}}
        return {**record, "payload": payload}

    first, second = clock.now + 100, clock.now + 300
    runner = LocalRunner(
        rules_from_mapping(mapping, "live-test"), Pseudonymizer(b"k"), writer, on_output=seen
    )
    run_live(
        runner,
        iter([invoice(first, "s-1"), invoice(second, "s-2")]),
        duration_ms=30_000,
        clock=clock,
        sleep=clock.sleep,
        tick_ms=500,
    )
    opened = [(at, ticket) for _, kind, at, ticket in fired if kind == "incident.opened"]
    assert opened == [(second, "")]
    closed = [(wall, at) for wall, kind, at, _ in fired if kind == "incident.closed"]
    assert len(closed) == 1
    wall, at = closed[0]
    assert at == second + 5_000  # window after the latest of its tickets
    assert 0 < wall - at <= 500 + 1  # raised on the first tick after it, not at the end
    broken = sorted(
        (ticket, at, wall) for wall, kind, at, ticket in fired if kind == "promise.broken"
    )
    assert [(ticket, at) for ticket, at, _ in broken] == [
        ("chat:s-1#1", first + 10_000),
        ("chat:s-2#1", second + 10_000),
    ]
    assert all(0 < wall - at <= 500 + 1 for _, at, wall in broken)
    rows = writer.backend.query(
        "SELECT incident_id, tickets, customers, closed_at IS NOT NULL AS closed FROM incidents FINAL"
    )
    assert rows == [{"incident_id": "billing#1", "tickets": 2, "customers": 2, "closed": 1}]

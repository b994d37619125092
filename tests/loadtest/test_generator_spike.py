"""The generated week's outage spike (CONTRACT §7 Incidents in the demo): enough different
customers write about an outage within an hour to open an incident under the demo rules, and
a short week has none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from loadtest.generator import SPIKE_STORIES, generate_week
from processors.rules import load_rules

START = datetime(2026, 3, 2, tzinfo=UTC)
DEMO_RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.demo.yaml"


def _most_outage_customers_in_an_hour(tickets: list[object]) -> int:
    outage = sorted(
        ((t.opened_at, t.customer_key) for t in tickets if t.category == "outage"),  # type: ignore[attr-defined]
    )
    best = 0
    for at, _ in outage:
        window = {key for when, key in outage if at - timedelta(hours=1) < when <= at}
        best = max(best, len(window))
    return best


def test_the_week_has_a_spike_that_the_demo_rules_call_an_incident() -> None:
    week = generate_week(START, seed=7, tickets=400)
    incidents = load_rules(DEMO_RULES).incidents
    assert incidents is not None
    most = _most_outage_customers_in_an_hour(week.tickets)
    assert most >= SPIKE_STORIES - 1 >= incidents.min_customers
    # It happens on the third day, late morning in Moscow, on channels that file `outage`.
    spike = [t for t in week.tickets if t.category == "outage" and t.opened_at.day == 4]
    assert {t.channel for t in spike} <= {"chat", "telegram", "email", "whatsapp", "vk"}


def test_only_weeks_of_40_stories_or_more_carry_the_spike() -> None:
    small = generate_week(START, seed=3, tickets=39, malformed=0)
    assert _most_outage_customers_in_an_hour(small.tickets) < SPIKE_STORIES - 1
    large = generate_week(START, seed=3, tickets=40, malformed=0)
    assert _most_outage_customers_in_an_hour(large.tickets) >= SPIKE_STORIES - 1

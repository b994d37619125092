"""Contact-reason spikes as incidents (CONTRACT §7), hand-worked at their boundaries: the
threshold reached at exactly ``min_customers`` and at exactly ``factor x baseline``, the tickets
of the window joining, a ticket opened exactly ``window`` after the latest one still joining
(records of an instant before its timers), and the close timer."""

from __future__ import annotations

from typing import Any

import pytest

from processors.model import DomainEvent, Output
from tests.processors.desk_driver import HOUR, MINUTE, T0, Driver, rules


def _incident_events(output: Output) -> list[DomainEvent]:
    return [e for e in output.events if e.event_type.startswith("incident.")]


def _incidents(**spec: Any) -> Any:
    return rules(incidents={"window": "1h", "baseline": "4h", **spec})


def test_the_incident_opens_at_exactly_min_customers_and_links_the_window() -> None:
    driver = Driver(_incidents(min_customers=3, factor=2))
    driver.chat(T0, "a", "site is down", email="one@example.com")
    driver.chat(T0 + 10 * MINUTE, "b", "down again", email="one@example.com")  # same customer
    driver.chat(T0 + 20 * MINUTE, "c", "down for me", email="two@example.com")
    assert driver.events("incident.opened") == []  # 2 customers < 3
    driver.chat(T0 + 30 * MINUTE, "x", "hello, a question")  # other: never counted
    driver.chat(T0 + 40 * MINUTE, "d", "down", email="three@example.com")  # 3 = min_customers

    [opened] = driver.events("incident.opened")
    assert opened.at == T0 + 40 * MINUTE
    assert (opened.ticket_id, opened.customer_id) == ("", "")
    assert opened.data == {
        "incident_id": "outage#1",
        "category": "outage",
        "opened_at": T0 + 40 * MINUTE,
        "closed_at": None,
        "tickets": 4,
        "customers": 3,
        "baseline": 0.0,
        "version": 1,
    }
    joined = [e.ticket_id for e in driver.events("incident.joined")]
    assert joined == ["chat:a#1", "chat:b#1", "chat:c#1", "chat:d#1"]
    for session in "abcd":
        assert driver.ticket(session).incident_id == "outage#1"
    assert driver.ticket("x").incident_id == ""


@pytest.mark.parametrize(("baseline_tickets", "opens"), [(4, True), (5, False)])
def test_the_incident_opens_at_exactly_factor_times_baseline(
    baseline_tickets: int, opens: bool
) -> None:
    # Window 1 h, baseline 4 h, factor 3, min_customers 2. The spike is at t = T0 + 6 h.
    # Baseline tickets in (t - 5 h, t - 1 h], never two customers within an hour (so they
    # open nothing themselves): 4 of them make b = 4 x 1/4 = 1 and factor x b = 3; a fifth,
    # from the first one's customer five minutes before, makes b = 1.25 and 3.75.
    t = T0 + 6 * HOUR
    driver = Driver(_incidents(min_customers=2, factor=3))
    if baseline_tickets == 5:
        driver.chat(t - 295 * MINUTE, "base-extra", "down", email="base0@example.com")
    for i, minutes in enumerate([290, 225, 160, 95]):
        driver.chat(t - minutes * MINUTE, f"base{i}", "down", email=f"base{i}@example.com")
    assert driver.events("incident.opened") == []
    driver.chat(t - 50 * MINUTE, "s1", "down")
    driver.chat(t - 30 * MINUTE, "s2", "down")  # n = 2 < 3 x 1 (b counts (t-5h30, t-1h30])
    assert driver.events("incident.opened") == []
    driver.chat(t, "s3", "down")  # n = 3: >= 3 x 1 exactly; not >= 3 x 1.25
    opened = driver.events("incident.opened")
    if opens:
        assert [(e.at, e.data["baseline"], e.data["customers"]) for e in opened] == [(t, 1.0, 3)]
    else:
        assert opened == []


def test_a_ticket_exactly_window_after_the_latest_joins_and_the_timer_closes_after_it() -> None:
    driver = Driver(_incidents(min_customers=2, factor=1))
    driver.chat(T0, "a", "down")
    driver.chat(T0 + 10 * MINUTE, "b", "down")  # opens outage#1; latest = T0 + 10 min
    assert [e.data["incident_id"] for e in driver.events("incident.opened")] == ["outage#1"]
    at = T0 + 70 * MINUTE  # exactly window after the latest ticket: the close instant
    driver.chat(at, "c", "down")  # applied before the timers of its instant: it joins
    assert driver.ticket("c").incident_id == "outage#1"
    assert driver.events("incident.closed") == []
    assert _incident_events(driver.until(at + HOUR - 1)) == []
    closed = _incident_events(driver.until(at + HOUR))
    assert [(e.event_type, e.at) for e in closed] == [("incident.closed", at + HOUR)]
    assert closed[0].data == {
        "incident_id": "outage#1",
        "category": "outage",
        "opened_at": T0 + 10 * MINUTE,
        "closed_at": at + HOUR,
        "tickets": 3,
        "customers": 3,
        "baseline": 0.0,
        "version": 3,
    }
    # After the close a ticket of the category is on its own: one customer is no spike.
    driver.chat(at + HOUR, "d", "down")
    assert driver.ticket("d").incident_id == ""
    # A new spike is the category's next incident.
    driver.chat(at + HOUR + MINUTE, "e", "down")
    assert [e.data["incident_id"] for e in driver.events("incident.opened")] == [
        "outage#1",
        "outage#2",
    ]
    assert driver.ticket("d").incident_id == "outage#2"


def test_a_ticket_after_the_close_instant_does_not_join() -> None:
    driver = Driver(_incidents(min_customers=2, factor=1))
    driver.chat(T0, "a", "down")
    driver.chat(T0 + 10 * MINUTE, "b", "down")
    driver.chat(T0 + 70 * MINUTE + 1, "c", "down")  # the close at T0 + 70 min fired first
    closed = driver.events("incident.closed")
    assert [e.at for e in closed] == [T0 + 70 * MINUTE]
    assert driver.ticket("c").incident_id == ""


def test_no_incidents_key_no_incident() -> None:
    driver = Driver(rules())
    for i in range(10):
        driver.chat(T0 + i, f"s{i}", "down")
    assert driver.events("incident.opened") == []
    assert driver.ticket("s0").incident_id == ""

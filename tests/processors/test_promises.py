"""Honest first-response promises (CONTRACT §7), hand-worked at their boundaries: the
nearest rank, the fallback below ``min_samples``, the window, "fulfilled before the opening
instant", ``promised_by`` on the policy's calendar, and kept / broken at and around it."""

from __future__ import annotations

import datetime as dt

import pytest

from processors.promises import HISTORY, TARGET, estimate, nearest_rank, remember
from processors.rules import PromisesSpec
from tests.processors.desk_driver import HOUR, MINUTE, T0, Driver, rules

PROMISES = {"percentile": 80, "window": 4, "min_samples": 3}


@pytest.mark.parametrize(
    ("percentile", "n", "rank"),
    [
        (80, 5, 4),
        (80, 3, 3),
        (80, 2, 2),
        (50, 4, 2),
        (50, 5, 3),
        (100, 7, 7),
        (1, 100, 1),
        (1, 1, 1),
    ],
)
def test_the_nearest_rank_is_ceil_of_percentile_times_n(percentile: int, n: int, rank: int) -> None:
    # 80 % of 5 is exactly 4 (a float product would give 4.000000000000001 and rank 5).
    assert nearest_rank(percentile, n) == rank


def test_the_estimate_falls_back_to_the_target_at_min_samples_minus_one() -> None:
    spec = PromisesSpec(percentile=80, window=4, min_samples=3)
    history = [(T0 + 1, "a#1", 600_000), (T0 + 2, "b#1", 1_200_000)]
    assert estimate(history, T0 + 10, spec, 3_600_000) == _est(3_600_000, TARGET, 2)
    history.append((T0 + 3, "c#1", 300_000))
    # n = min_samples = 3: values 300, 600, 1200 s; rank ceil(0.8 x 3) = 3 -> 1200 s.
    assert estimate(history, T0 + 10, spec, 3_600_000) == _est(1_200_000, HISTORY, 3)


def test_only_samples_fulfilled_before_the_opening_instant_count() -> None:
    spec = PromisesSpec(percentile=80, window=4, min_samples=3)
    history = [(T0 + 1, "a#1", 600_000), (T0 + 2, "b#1", 1_200_000), (T0 + 3, "c#1", 300_000)]
    assert estimate(history, T0 + 3, spec, 3_600_000).basis == TARGET  # c#1 is at T0+3 itself


def test_the_window_keeps_the_latest_samples_by_fulfilment_then_ticket() -> None:
    spec = PromisesSpec(percentile=100, window=2, min_samples=1)
    history: list[tuple[int, str, int]] = []
    for sample in [(T0 + 1, "a#1", 9_000), (T0 + 2, "c#1", 1_000), (T0 + 2, "b#1", 5_000)]:
        history = remember(history, sample, spec.window)
    # At T0+3 the latest two are (T0+2, b#1) and (T0+2, c#1): the 100th percentile is 5 s.
    assert estimate(history, T0 + 3, spec, 3_600_000) == _est(5_000, HISTORY, 2)
    # At T0+2 itself neither counts; the history still holds the one before them.
    assert estimate(history, T0 + 2, spec, 3_600_000) == _est(9_000, HISTORY, 1)


def _est(ms: int, basis: str, samples: int) -> object:
    from processors.promises import Estimate

    return Estimate(ms, basis, samples)


# ---------------------------------------------------------------------------------------------
# Through the desk
# ---------------------------------------------------------------------------------------------


def _answered(driver: Driver, sessions_and_delays: list[tuple[str, int]], start: int) -> int:
    """Open one chat per session a minute apart and answer each after its delay; returns the
    instant after the last answer."""
    last = start
    for i, (session, _delay) in enumerate(sessions_and_delays):
        opened = start + i * MINUTE
        driver.chat(opened, session)
    for i, (session, delay) in sorted(
        enumerate(sessions_and_delays), key=lambda item: start + item[0] * MINUTE + item[1][1]
    ):
        at = start + i * MINUTE + delay
        driver.reply(at, session)
        last = max(last, at)
    return last


def test_acknowledged_comes_right_after_opened_with_the_target_below_min_samples() -> None:
    driver = Driver(rules(promises=PROMISES))
    after = _answered(driver, [("a", 10 * MINUTE), ("b", 20 * MINUTE)], T0)
    opened = after + MINUTE
    output = driver.chat(opened, "n2")  # n = 2 = min_samples - 1: the target (1 h)
    types = [e.event_type for e in output.events]
    assert types[types.index("ticket.opened") + 1] == "ticket.acknowledged"
    ack = driver.events("ticket.acknowledged")[-1]
    assert ack.data == {
        "channel": "chat",
        "policy": "standard",
        "promised_by": opened + HOUR,
        "estimate_seconds": 3600.0,
        "basis": "target",
        "samples": 2,
    }
    ticket = driver.ticket("n2")
    assert (ticket.promised_by, ticket.promise_basis) == (opened + HOUR, "target")


def test_at_min_samples_the_estimate_is_the_percentile_of_the_history() -> None:
    driver = Driver(rules(promises=PROMISES))
    after = _answered(driver, [("a", 10 * MINUTE), ("b", 30 * MINUTE), ("c", 20 * MINUTE)], T0)
    opened = after + MINUTE
    driver.chat(opened, "n3")
    ack = driver.events("ticket.acknowledged")[-1]
    # 600, 1200, 1800 s; rank ceil(0.8 x 3) = 3 -> 1800 s on a round-the-clock calendar.
    assert (ack.data["basis"], ack.data["estimate_seconds"], ack.data["samples"]) == (
        "history",
        1800.0,
        3,
    )
    assert ack.data["promised_by"] == opened + 30 * MINUTE


def test_a_reply_exactly_at_promised_by_keeps_the_promise_and_one_later_breaks_it() -> None:
    driver = Driver(rules(promises=PROMISES))
    driver.chat(T0, "kept")
    driver.chat(T0, "late")
    driver.reply(T0 + HOUR, "kept")  # promised_by = T0 + 1 h (target): exactly at it
    driver.reply(T0 + HOUR + 1, "late")
    kept = [e for e in driver.events("promise.kept") if e.ticket_id == "chat:kept#1"]
    broken = [e for e in driver.events("promise.broken") if e.ticket_id == "chat:late#1"]
    assert [e.data["replied_at"] for e in kept] == [T0 + HOUR]
    assert len(broken) == 1
    # The late one was broken by the timer at promised_by (records of T0+1h first: none for
    # it), not by its reply: replied_at is null and it is dated at promised_by.
    assert (broken[0].at, broken[0].data["replied_at"]) == (T0 + HOUR, None)
    assert driver.ticket("kept").promise_outcome == "kept"
    assert driver.ticket("late").promise_outcome == "broken"
    assert len(driver.events("promise.broken")) + len(driver.events("promise.kept")) == 2


def test_a_promise_without_any_reply_breaks_when_promised_by_passes() -> None:
    driver = Driver(rules(promises=PROMISES))
    driver.chat(T0, "silent")
    before = driver.until(T0 + HOUR - 1)  # the SLA warning at 80 % fires; the promise holds
    assert [e.event_type for e in before.events] == ["sla.cycle_warned"]
    fired = driver.until(T0 + HOUR)
    assert [(e.event_type, e.at) for e in fired.events if e.event_type.startswith("promise.")] == [
        ("promise.broken", T0 + HOUR)
    ]
    assert driver.ticket("silent").promise_outcome == "broken"


def test_promised_by_counts_on_the_policy_calendar() -> None:
    office = {"timezone": "UTC", "week": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}}
    the_rules = rules(
        promises=PROMISES,
        calendars={"office": office},
        sla_policies=[
            {"name": "standard", "calendar": "office", "targets": {"first_response": "2h"}}
        ],
    )
    driver = Driver(the_rules)
    opened = T0 + 8 * HOUR  # Monday 17:00 UTC: one business hour left that day
    driver.chat(opened, "evening")
    tuesday_10 = int(dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert driver.ticket("evening").promised_by == tuesday_10


def test_no_promises_key_no_promise() -> None:
    driver = Driver(rules())
    driver.chat(T0, "a")
    assert driver.events("ticket.acknowledged") == []
    assert driver.ticket("a").promised_by is None


def test_a_ticket_without_a_first_response_target_gets_no_promise() -> None:
    the_rules = rules(
        promises=PROMISES,
        sla_policies=[{"name": "slow", "calendar": "always", "targets": {"resolution": "1d"}}],
    )
    driver = Driver(the_rules)
    driver.chat(T0, "a")
    assert driver.events("ticket.acknowledged") == []

"""SLA cycles of one ticket: every rule of CONTRACT §3 with exact instants, on a 24/7 UTC calendar
and a Europe/Moscow office calendar, plus a random-walk check of the clock arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.calendar import BusinessCalendar
from processors.events import EVENT_TYPES
from processors.model import CycleState
from processors.sla import (
    SlaEffect,
    SlaOutput,
    SlaTerms,
    SlaTicket,
    fire,
    inbound,
    next_timer,
    open_ticket,
    public_reply,
    reopen,
    status_change,
)
from processors.timers import TimerQueue

S = 1_000
M = 60_000
H = 3_600_000


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(frozen=True)
class Policy:
    name: str
    targets: dict[str, int]
    warn_at: float = 0.8


ALWAYS = BusinessCalendar("UTC", {d: ((0, 1440),) for d in range(7)}, name="always")
OFFICE = BusinessCalendar(
    "Europe/Moscow",
    {
        0: ((540, 780), (840, 1080)),
        1: ((540, 1080),),
        2: ((540, 1080),),
        3: ((540, 1080),),
        4: ((540, 1020),),
    },
    name="office",
)
VIP = SlaTerms.of(
    Policy("vip", {"first_response": 15 * M, "next_response": 30 * M, "resolution": 4 * H}),
    ALWAYS,
)
STANDARD = SlaTerms.of(
    Policy("standard", {"first_response": H, "next_response": 2 * H, "resolution": 16 * H}),
    OFFICE,
)
T0 = utc("2026-03-16T10:00:00Z")  # a Monday
TID = "chat:s1#1"


def kinds(out: SlaOutput) -> list[tuple[str, str, int, int]]:
    """(event type, metric, cycle, at) of each event, in order."""
    return [(e.event_type, e.data["metric"], e.data["cycle"], e.at) for e in out.events]


def snap(out: SlaOutput, metric: str, cycle: int = 1) -> CycleState:
    [found] = [c for c in out.cycles if c.metric == metric and c.cycle == cycle]
    return found


def opened(terms: SlaTerms = VIP, at: int = T0) -> SlaTicket:
    state, _ = open_ticket(TID, terms, at)
    return state


def replied(at: int = T0 + M) -> SlaTicket:
    state, _ = public_reply(opened(), at)
    return state


# ---------------------------------------------------------------------------------------------
# Starting
# ---------------------------------------------------------------------------------------------


def test_opening_starts_first_response_and_resolution() -> None:
    state, out = open_ticket(TID, VIP, T0)
    assert kinds(out) == [
        ("sla.cycle_started", "first_response", 1, T0),
        ("sla.cycle_started", "resolution", 1, T0),
    ]
    assert out.events[0].data == {
        "metric": "first_response",
        "cycle": 1,
        "policy": "vip",
        "due_at": T0 + 15 * M,
        "target_seconds": 900.0,
    }
    fr = snap(out, "first_response")
    assert (fr.ticket_id, fr.status, fr.started_at, fr.due_at, fr.version) == (
        TID,
        "active",
        T0,
        T0 + 15 * M,
        1,
    )
    assert (fr.warned_at, fr.breached_at, fr.fulfilled_at, fr.business_seconds) == (None,) * 4
    assert fr.target_seconds == 900.0 and fr.updated_at == T0
    assert snap(out, "resolution").due_at == T0 + 4 * H
    assert next_timer(state) == T0 + 12 * M  # the first response warning


def test_only_metrics_with_a_target_start() -> None:
    terms = SlaTerms.of(Policy("res-only", {"resolution": H}), ALWAYS)
    state, out = open_ticket(TID, terms, T0)
    assert [c.metric for c in out.cycles] == ["resolution"]
    state, _ = public_reply(state, T0 + M)
    state, out = inbound(state, T0 + 2 * M)
    assert out.events == ()


def test_started_at_is_the_records_instant_even_outside_open_hours() -> None:
    saturday = utc("2026-03-21T10:00:00+03:00")
    state, out = open_ticket(TID, STANDARD, saturday)
    fr = snap(out, "first_response")
    assert fr.started_at == saturday
    assert fr.due_at == utc("2026-03-23T10:00:00+03:00")  # counting starts Monday 09:00
    assert next_timer(state) == utc("2026-03-23T09:48:00+03:00")


# ---------------------------------------------------------------------------------------------
# Warning and breach
# ---------------------------------------------------------------------------------------------


def test_breach_at_exactly_the_due_instant_after_one_warning() -> None:
    state = opened()
    state, out = fire(state, T0 + 12 * M - 1)
    assert out.events == ()
    state, out = fire(state, T0 + 12 * M)
    assert kinds(out) == [("sla.cycle_warned", "first_response", 1, T0 + 12 * M)]
    assert out.events[0].data["business_seconds"] == 720.0
    assert snap(out, "first_response").warned_at == T0 + 12 * M
    assert next_timer(state) == T0 + 15 * M
    state, out = fire(state, T0 + 15 * M - 1)
    assert out.events == ()
    state, out = fire(state, T0 + 15 * M)
    assert kinds(out) == [("sla.cycle_breached", "first_response", 1, T0 + 15 * M)]
    assert out.events[0].data == {
        "metric": "first_response",
        "cycle": 1,
        "policy": "vip",
        "due_at": T0 + 15 * M,
        "target_seconds": 900.0,
    }
    fr = snap(out, "first_response")
    assert (fr.status, fr.breached_at, fr.due_at, fr.version) == (
        "breached",
        T0 + 15 * M,
        T0 + 15 * M,
        3,
    )
    assert next_timer(state) == T0 + 4 * H * 8 // 10  # only resolution's warning is left


def test_late_firing_reports_each_timer_at_its_own_instant_in_order() -> None:
    state, out = fire(opened(), T0 + 10 * H)
    assert kinds(out) == [
        ("sla.cycle_warned", "first_response", 1, T0 + 12 * M),
        ("sla.cycle_breached", "first_response", 1, T0 + 15 * M),
        ("sla.cycle_warned", "resolution", 1, T0 + 192 * M),
        ("sla.cycle_breached", "resolution", 1, T0 + 4 * H),
    ]
    assert [c.version for c in out.cycles] == [3, 3]  # one snapshot per cycle, the latest
    assert next_timer(state) is None
    assert fire(state, T0 + 100 * H)[1].events == ()


def test_warning_instant_is_warn_at_times_target_rounded_down_in_milliseconds() -> None:
    # 0.29 * 100 ms is 29 ms exactly (binary floating point would say 28.999...).
    terms = SlaTerms.of(Policy("odd", {"first_response": 100, "resolution": 1001}, 0.29), ALWAYS)
    state = opened(terms)
    assert next_timer(state) == T0 + 29
    _, out = fire(state, T0 + 300)
    assert kinds(out) == [
        ("sla.cycle_warned", "first_response", 1, T0 + 29),
        ("sla.cycle_breached", "first_response", 1, T0 + 100),
        ("sla.cycle_warned", "resolution", 1, T0 + 290),  # floor(290.29)
    ]


def test_a_reply_at_the_due_instant_is_met() -> None:
    state, _ = fire(opened(), T0 + 15 * M - 1)
    state, out = public_reply(state, T0 + 15 * M)
    fr = snap(out, "first_response")
    assert (fr.status, fr.fulfilled_at, fr.business_seconds) == ("met", T0 + 15 * M, 900.0)
    assert out.events[-1].data["breached"] is False


def test_a_reply_one_millisecond_late_is_breached_at_the_due_instant() -> None:
    # The signal itself fires the timers before its instant: the breach is never lost.
    state, out = public_reply(opened(), T0 + 15 * M + 1)
    assert kinds(out) == [
        ("sla.cycle_warned", "first_response", 1, T0 + 12 * M),
        ("sla.cycle_breached", "first_response", 1, T0 + 15 * M),
        ("sla.cycle_fulfilled", "first_response", 1, T0 + 15 * M + 1),
    ]
    fr = snap(out, "first_response")
    assert (fr.status, fr.breached_at, fr.due_at, fr.fulfilled_at) == (
        "breached",
        T0 + 15 * M,
        T0 + 15 * M,
        T0 + 15 * M + 1,
    )
    assert fr.business_seconds == 900.001
    assert out.events[-1].data["breached"] is True
    assert state.cycle("first_response") is None  # finished responses are not kept


def test_fulfilment_before_the_warning_means_no_warning() -> None:
    state, out = public_reply(opened(), T0 + 12 * M)  # at the warning instant: record first
    assert kinds(out) == [("sla.cycle_fulfilled", "first_response", 1, T0 + 12 * M)]
    assert next_timer(state) == T0 + 192 * M


# ---------------------------------------------------------------------------------------------
# Pauses
# ---------------------------------------------------------------------------------------------


def test_pending_pauses_resolution_but_not_responses() -> None:
    state, out = status_change(opened(), T0 + M, "pending")
    assert kinds(out) == [("sla.cycle_paused", "resolution", 1, T0 + M)]
    assert out.events[0].data["business_seconds"] == 60.0
    res = snap(out, "resolution")
    assert (res.status, res.due_at) == ("paused", T0 + 4 * H)  # due_at from before the pause
    _, out = fire(state, T0 + 10 * H)
    assert kinds(out) == [
        ("sla.cycle_warned", "first_response", 1, T0 + 12 * M),
        ("sla.cycle_breached", "first_response", 1, T0 + 15 * M),
    ]
    state, _ = public_reply(state, T0 + 20 * M)
    state, out = inbound(state, T0 + 30 * M)  # a pending ticket: next_response still starts
    assert kinds(out) == [("sla.cycle_started", "next_response", 1, T0 + 30 * M)]


def test_pauses_shift_due_and_warning_by_the_business_time_they_cover() -> None:
    opened_at = utc("2026-03-16T10:00:00+03:00")  # Monday, office hours
    state, out = open_ticket(TID, STANDARD, opened_at)
    # 16h: Mon 10-13, 14-18 (7h) + Tue 09-18 (9h).
    assert snap(out, "resolution").due_at == utc("2026-03-17T18:00:00+03:00")
    state, _ = public_reply(state, utc("2026-03-16T10:30:00+03:00"))
    state, out = status_change(state, utc("2026-03-16T12:00:00+03:00"), "pending")
    assert out.events[0].data["business_seconds"] == 2 * 3600.0
    assert snap(out, "resolution").due_at == utc("2026-03-17T18:00:00+03:00")
    assert next_timer(state) is None
    state, out = status_change(state, utc("2026-03-18T10:00:00+03:00"), "open")
    # 14h left from Wednesday 10:00: Wed 10-18 (8h) + Thu 09-15 (6h).
    assert kinds(out) == [("sla.cycle_resumed", "resolution", 1, utc("2026-03-18T10:00:00+03:00"))]
    assert out.events[0].data["due_at"] == utc("2026-03-19T15:00:00+03:00")
    assert out.events[0].data["business_seconds"] == 7200.0
    res = snap(out, "resolution")
    assert (res.status, res.due_at, res.version) == ("active", utc("2026-03-19T15:00:00+03:00"), 3)
    # Warning at 12.8h: 10.8h left from Wednesday 10:00 -> Thursday 11:48.
    assert next_timer(state) == utc("2026-03-19T11:48:00+03:00")
    state, out = fire(state, utc("2026-03-19T15:00:00+03:00"))
    assert kinds(out) == [
        ("sla.cycle_warned", "resolution", 1, utc("2026-03-19T11:48:00+03:00")),
        ("sla.cycle_breached", "resolution", 1, utc("2026-03-19T15:00:00+03:00")),
    ]
    assert out.events[0].data["business_seconds"] == 12.8 * 3600


def test_a_cycle_paused_at_its_breach_instant_does_not_fire_and_fires_at_resume() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, _ = fire(state, T0 + 4 * H - 1)  # resolution warned at 3h12m
    state, out = status_change(state, T0 + 4 * H, "pending")
    assert kinds(out) == [("sla.cycle_paused", "resolution", 1, T0 + 4 * H)]
    assert next_timer(state) is None
    state, out = fire(state, T0 + 4 * H)
    assert out.events == ()
    state, out = status_change(state, T0 + 6 * H, "open")
    assert out.events[0].data["due_at"] == T0 + 6 * H  # nothing left: the resume instant
    assert next_timer(state) == T0 + 6 * H
    state, out = fire(state, T0 + 6 * H)
    assert kinds(out) == [("sla.cycle_breached", "resolution", 1, T0 + 6 * H)]
    res = snap(out, "resolution")
    assert (res.status, res.breached_at, res.due_at) == ("breached", T0 + 6 * H, T0 + 6 * H)


def test_a_cycle_paused_at_its_warning_instant_warns_at_resume() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, out = status_change(state, T0 + 192 * M, "pending")
    assert [k[0] for k in kinds(out)] == ["sla.cycle_paused"]
    state, _ = status_change(state, T0 + 5 * H, "open")
    assert next_timer(state) == T0 + 5 * H
    state, out = fire(state, T0 + 6 * H)
    assert kinds(out) == [
        ("sla.cycle_warned", "resolution", 1, T0 + 5 * H),
        ("sla.cycle_breached", "resolution", 1, T0 + 5 * H + 48 * M),
    ]


def test_a_breached_resolution_stays_breached_through_pause_and_resume() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, _ = fire(state, T0 + 5 * H)
    state, out = status_change(state, T0 + 5 * H, "pending")
    res = snap(out, "resolution")
    assert (res.status, res.due_at, res.breached_at) == ("breached", T0 + 4 * H, T0 + 4 * H)
    state, out = status_change(state, T0 + 7 * H, "open")
    assert snap(out, "resolution").status == "breached"
    assert next_timer(state) is None
    state, out = status_change(state, T0 + 8 * H, "solved")
    res = snap(out, "resolution")
    # Business time ran 0-5h and 7-8h: six hours.
    assert (res.status, res.due_at, res.fulfilled_at, res.business_seconds) == (
        "breached",
        T0 + 4 * H,
        T0 + 8 * H,
        6 * 3600.0,
    )


# ---------------------------------------------------------------------------------------------
# Solving and reopening
# ---------------------------------------------------------------------------------------------


def test_solving_meets_resolution_and_cancels_running_responses() -> None:
    state, out = status_change(opened(), T0 + 5 * M, "solved")
    assert kinds(out) == [
        ("sla.cycle_cancelled", "first_response", 1, T0 + 5 * M),
        ("sla.cycle_fulfilled", "resolution", 1, T0 + 5 * M),
    ]
    assert out.events[0].data["business_seconds"] == 300.0
    fr = snap(out, "first_response")
    assert (fr.status, fr.fulfilled_at, fr.business_seconds) == ("cancelled", None, None)
    res = snap(out, "resolution")
    assert (res.status, res.fulfilled_at, res.business_seconds) == ("met", T0 + 5 * M, 300.0)
    assert next_timer(state) is None
    assert fire(state, T0 + 100 * H)[1].events == ()  # no breach after cancellation


def test_solving_cancels_a_running_next_response() -> None:
    state, _ = inbound(replied(), T0 + 2 * M)
    state, out = status_change(state, T0 + 3 * M, "solved")
    assert kinds(out)[0] == ("sla.cycle_cancelled", "next_response", 1, T0 + 3 * M)
    assert snap(out, "next_response").status == "cancelled"


def test_a_breached_cycle_cancelled_by_solving_stays_breached_and_stops_running() -> None:
    state, _ = fire(opened(), T0 + 20 * M)
    state, out = status_change(state, T0 + 30 * M, "solved")
    assert kinds(out)[0] == ("sla.cycle_cancelled", "first_response", 1, T0 + 30 * M)
    fr = snap(out, "first_response")
    assert (fr.status, fr.due_at, fr.breached_at) == ("breached", T0 + 15 * M, T0 + 15 * M)
    assert state.cycle("first_response") is None


def test_reopening_resumes_resolution_from_where_it_stopped() -> None:
    state, _ = status_change(replied(), T0 + H, "solved")
    state, out = reopen(state, T0 + 10 * H, "open")
    assert kinds(out) == [("sla.cycle_resumed", "resolution", 1, T0 + 10 * H)]
    res = snap(out, "resolution")
    # Met becomes active again; the latest fulfilment stays until the next solve.
    assert (res.status, res.fulfilled_at, res.business_seconds) == ("active", T0 + H, 3600.0)
    assert res.due_at == T0 + 13 * H  # 3h of the 4h left
    assert next_timer(state) == T0 + 10 * H + 132 * M  # 3h12m warning, 2h12m left
    state, out = status_change(state, T0 + 11 * H, "solved")
    res = snap(out, "resolution")
    assert (res.status, res.fulfilled_at, res.business_seconds) == ("met", T0 + 11 * H, 7200.0)


def test_reopening_to_pending_keeps_resolution_paused() -> None:
    state, _ = status_change(replied(), T0 + H, "solved")
    state, out = status_change(state, T0 + 10 * H, "pending")  # routed to reopen
    assert kinds(out) == [("sla.cycle_paused", "resolution", 1, T0 + 10 * H)]
    res = snap(out, "resolution")
    assert (res.status, res.due_at, res.fulfilled_at) == ("paused", T0 + 4 * H, T0 + H)
    assert next_timer(state) is None
    state, out = status_change(state, T0 + 12 * H, "open")
    assert snap(out, "resolution").due_at == T0 + 15 * H


def test_a_breached_resolution_reopened_stays_breached() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, _ = status_change(state, T0 + 5 * H, "solved")  # breached at 4h on the way
    state, out = reopen(state, T0 + 6 * H, "open")
    res = snap(out, "resolution")
    assert (res.status, res.due_at, res.breached_at) == ("breached", T0 + 4 * H, T0 + 4 * H)
    assert next_timer(state) is None
    _, out = status_change(state, T0 + 7 * H, "solved")
    res = snap(out, "resolution")
    assert (res.status, res.fulfilled_at, res.business_seconds) == (
        "breached",
        T0 + 7 * H,
        6 * 3600.0,
    )


def test_a_met_resolution_with_nothing_left_breaches_at_the_reopen_instant() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, _ = status_change(state, T0 + 4 * H, "solved")  # at the due instant: met
    state, _ = reopen(state, T0 + 5 * H, "open")
    _, out = fire(state, T0 + 5 * H)
    assert kinds(out) == [("sla.cycle_breached", "resolution", 1, T0 + 5 * H)]


def test_solved_before_any_reply_keeps_first_response_cancelled_and_starts_no_response() -> None:
    state, _ = status_change(opened(), T0 + M, "solved")
    state, out = reopen(state, T0 + H, "open")  # an inbound contact reopens...
    assert [k[1] for k in kinds(out)] == ["resolution"]
    state, out = inbound(state, T0 + H)  # ...and is an inbound contact
    assert out.events == ()
    state, out = public_reply(state, T0 + 2 * H)
    assert out.events == ()  # nothing to fulfil; the ticket now has a public reply
    state, out = inbound(state, T0 + 3 * H)
    assert kinds(out) == [("sla.cycle_started", "next_response", 1, T0 + 3 * H)]


def test_an_inbound_contact_reopening_a_replied_ticket_starts_a_next_response() -> None:
    state, _ = status_change(replied(), T0 + H, "solved")
    state, _ = reopen(state, T0 + 2 * H, "open")
    state, out = inbound(state, T0 + 2 * H)
    assert kinds(out) == [("sla.cycle_started", "next_response", 1, T0 + 2 * H)]


def test_an_agent_reopen_starts_no_response_cycle() -> None:
    state, _ = status_change(replied(), T0 + H, "solved")
    state, out = status_change(state, T0 + 2 * H, "open")
    assert [k[1] for k in kinds(out)] == ["resolution"]
    assert state.cycle("next_response") is None


# ---------------------------------------------------------------------------------------------
# Next responses
# ---------------------------------------------------------------------------------------------


def test_next_response_cycles_start_only_after_a_reply_and_one_at_a_time() -> None:
    state, out = inbound(opened(), T0 + M)  # no public reply yet
    assert out.events == ()
    state, _ = public_reply(state, T0 + 2 * M)
    state, out = inbound(state, T0 + 3 * M)
    assert kinds(out) == [("sla.cycle_started", "next_response", 1, T0 + 3 * M)]
    assert out.events[0].data["due_at"] == T0 + 33 * M
    state, out = inbound(state, T0 + 4 * M)  # one is running
    assert out.events == ()
    state, out = public_reply(state, T0 + 5 * M)
    nr = snap(out, "next_response")
    assert (nr.status, nr.started_at, nr.fulfilled_at, nr.business_seconds) == (
        "met",
        T0 + 3 * M,
        T0 + 5 * M,
        120.0,
    )
    state, out = public_reply(state, T0 + 6 * M)  # nothing running
    assert out.events == ()
    state, out = inbound(state, T0 + 7 * M)
    assert kinds(out) == [("sla.cycle_started", "next_response", 2, T0 + 7 * M)]


def test_a_breached_unfulfilled_next_response_is_still_running() -> None:
    state, _ = inbound(replied(), T0 + 2 * M)
    state, _ = fire(state, T0 + 40 * M)
    state, out = inbound(state, T0 + 41 * M)
    assert out.events == ()
    state, out = public_reply(state, T0 + 42 * M)
    nr = snap(out, "next_response")
    assert (nr.status, nr.due_at, nr.fulfilled_at) == ("breached", T0 + 32 * M, T0 + 42 * M)
    state, out = inbound(state, T0 + 43 * M)
    assert kinds(out) == [("sla.cycle_started", "next_response", 2, T0 + 43 * M)]


def test_an_answered_call_starts_and_meets_at_the_same_instant() -> None:
    state, _ = open_ticket(TID, VIP, T0)
    state, out = public_reply(state, T0)
    assert snap(out, "first_response").business_seconds == 0.0
    state, _ = inbound(state, T0 + H)
    state, out = public_reply(state, T0 + H)
    nr = snap(out, "next_response")
    assert (nr.status, nr.business_seconds, nr.version) == ("met", 0.0, 2)


# ---------------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------------


def test_setting_the_current_status_changes_nothing() -> None:
    state = opened()
    assert status_change(state, T0 + M, "open")[1].events == ()
    assert status_change(state, T0 + M, "new")[1].events == ()
    with pytest.raises(ValueError):
        status_change(state, T0 + M, "closed")


def test_versions_count_every_change_and_events_carry_them() -> None:
    state, _ = public_reply(opened(), T0 + M)
    state, _ = status_change(state, T0 + 2 * M, "pending")
    state, _ = status_change(state, T0 + 3 * M, "open")
    state, out = status_change(state, T0 + 4 * M, "solved")
    res = snap(out, "resolution")
    assert (res.version, res.updated_at) == (4, T0 + 4 * M)
    assert out.events[-1].cycle_version == 4


def test_event_data_matches_the_catalogue() -> None:
    driver = Driver()
    state = opened()
    driver.tickets[TID] = state
    script: list[tuple[int, Callable[[SlaTicket, int], tuple[SlaTicket, SlaOutput]]]] = [
        (T0 + 20 * M, public_reply),
        (T0 + 21 * M, inbound),
        (T0 + 22 * M, lambda s, at: status_change(s, at, "pending")),
        (T0 + 5 * H, lambda s, at: status_change(s, at, "open")),
        (T0 + 6 * H, lambda s, at: status_change(s, at, "solved")),
    ]
    for at, signal in script:
        driver.record(at, TID, signal)
    seen = {e.event_type for e in driver.events}
    assert seen == {
        "sla.cycle_started",
        "sla.cycle_warned",
        "sla.cycle_breached",
        "sla.cycle_fulfilled",
        "sla.cycle_paused",
        "sla.cycle_resumed",
        "sla.cycle_cancelled",
    }
    for event in driver.events:
        assert set(event.data) == {name for name, _ in EVENT_TYPES[event.event_type]}


def test_terms_are_checked() -> None:
    with pytest.raises(ValueError, match="warn_at"):
        SlaTerms.of(Policy("p", {"resolution": H}, 1.0), ALWAYS)
    with pytest.raises(ValueError, match="unknown metrics"):
        SlaTerms.of(Policy("p", {"resolution_time": H}), ALWAYS)


# ---------------------------------------------------------------------------------------------
# The driver protocol
# ---------------------------------------------------------------------------------------------


@dataclass
class Driver:
    """The protocol proposed to the ticket processor: before a record at t, fire every timer
    before t in instant order; apply the record; reschedule the ticket's timer."""

    queue: TimerQueue = field(default_factory=TimerQueue)
    tickets: dict[str, SlaTicket] = field(default_factory=dict)
    events: list[SlaEffect] = field(default_factory=list)
    cycles: dict[tuple[str, int], CycleState] = field(default_factory=dict)

    def _take(self, key: str, state: SlaTicket, out: SlaOutput) -> None:
        self.tickets[key] = state
        self.events.extend(out.events)
        for c in out.cycles:
            self.cycles[(c.metric, c.cycle)] = c
        at = next_timer(state)
        if at is None:
            self.queue.cancel(key)
        else:
            self.queue.schedule(key, at)

    def advance(self, now: int) -> None:
        while (item := self.queue.pop_next(now)) is not None:
            at, key = item
            state, out = fire(self.tickets[key], at)
            self._take(key, state, out)

    def record(
        self,
        at: int,
        key: str,
        signal: Callable[[SlaTicket, int], tuple[SlaTicket, SlaOutput]],
    ) -> None:
        self.advance(at - 1)
        state, out = signal(self.tickets[key], at)
        self._take(key, state, out)


def test_driver_applies_records_before_timers_of_their_instant() -> None:
    driver = Driver()
    state, out = open_ticket(TID, VIP, T0)
    driver._take(TID, state, out)
    driver.record(T0 + 15 * M, TID, public_reply)  # exactly at the due instant
    driver.advance(T0 + 15 * M)
    assert driver.cycles[("first_response", 1)].status == "met"
    driver.advance(T0 + 10 * H)
    assert driver.cycles[("resolution", 1)].status == "breached"
    assert driver.cycles[("resolution", 1)].breached_at == T0 + 4 * H


def test_driver_orders_timers_across_tickets() -> None:
    driver = Driver()
    for i, terms in enumerate((VIP, VIP)):
        state, out = open_ticket(f"t{i}", terms, T0 + i * M)
        driver._take(f"t{i}", state, out)
    driver.events.clear()
    driver.advance(T0 + 5 * H)
    instants = [e.at for e in driver.events]
    assert instants == sorted(instants) and len(instants) == 8


# ---------------------------------------------------------------------------------------------
# Random walks: the clock arithmetic against a simple model on the 24/7 calendar
# ---------------------------------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.integers(0, 90 * M),
        st.sampled_from(["inbound", "reply", "pending", "open", "solved", "fire"]),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_random_walks_keep_resolution_time_exact(actions: list[tuple[int, str]]) -> None:
    state, out = open_ticket(TID, VIP, T0)
    events = list(out.events)
    now = T0
    # Model: resolution's business time on a 24/7 calendar is the time spent open.
    spent, status = 0, "open"
    since: int | None = T0
    for gap, action in actions:
        now += gap
        if action == "inbound":
            state, out = inbound(state, now)
        elif action == "reply":
            state, out = public_reply(state, now)
        elif action == "fire":
            state, out = fire(state, now)
        else:
            if action != status:
                if since is not None:
                    spent += now - since
                since = now if action == "open" else None
                status = action
            state, out = status_change(state, now, action)
        events.extend(out.events)
        res = state.cycle("resolution")
        assert res is not None
        if res.status != "breached" and res.live and since is not None:
            # The due instant is what was left when the clock last started, from then on.
            assert res.due_at == since + 4 * H - spent
        for ev in out.events:
            if ev.event_type == "sla.cycle_fulfilled" and ev.data["metric"] == "resolution":
                assert ev.data["business_seconds"] == spent / 1000
            if ev.event_type == "sla.cycle_breached":
                assert ev.at == ev.data["due_at"]
    state, out = fire(state, now + 10 * H)
    events.extend(out.events)
    instants = [e.at for e in events]
    assert instants == sorted(instants)
    per_cycle: dict[tuple[str, int], list[str]] = {}
    for e in events:
        per_cycle.setdefault((e.data["metric"], e.data["cycle"]), []).append(e.event_type)
    for types in per_cycle.values():
        assert types.count("sla.cycle_warned") <= 1
        assert types.count("sla.cycle_breached") <= 1
        if "sla.cycle_breached" in types and "sla.cycle_warned" in types:
            assert types.index("sla.cycle_warned") < types.index("sla.cycle_breached")

"""Business calendars: business_time and due against a minute-stepping oracle, and exact instants
across weekends, holidays, lunch breaks, 24:00 and both daylight-saving changes."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.calendar import BusinessCalendar

H = 3_600_000
M = 60_000
DAY = 86_400_000


def utc(text: str) -> int:
    """An instant from an ISO text with offset (or ``Z``), in milliseconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def week(**days: list[str]) -> dict[int, tuple[tuple[int, int], ...]]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {
        names.index(day): tuple((hm(i.split("-")[0]), hm(i.split("-")[1])) for i in intervals)
        for day, intervals in days.items()
    }


OFFICE_WEEK = week(
    mon=["09:00-13:00", "14:00-18:00"],
    tue=["09:00-18:00"],
    wed=["09:00-18:00"],
    thu=["09:00-18:00"],
    fri=["09:00-17:00"],
)
BERLIN_OFFICE = BusinessCalendar(
    "Europe/Berlin", OFFICE_WEEK, {date(2026, 1, 1), date(2026, 1, 2)}, "office"
)


# ---------------------------------------------------------------------------------------------
# Oracle: step UTC minutes, read the wall clock through zoneinfo, test membership.
# ---------------------------------------------------------------------------------------------


class Oracle:
    """Open hours read literally: an instant is open when its wall time in the timezone lies in
    an interval of its weekday and its wall date is no holiday. All zones used have whole-minute
    offsets, so openness is constant within each UTC minute."""

    def __init__(self, tz: str, wk: dict[int, tuple[tuple[int, int], ...]], hol: set[date]):
        self.tz = ZoneInfo(tz)
        self.week = wk
        self.holidays = hol
        self.cache: dict[int, bool] = {}

    def open_minute(self, minute: int) -> bool:
        cached = self.cache.get(minute)
        if cached is None:
            wall = datetime.fromtimestamp(minute * 60, self.tz)
            mod = wall.hour * 60 + wall.minute
            cached = wall.date() not in self.holidays and any(
                s <= mod < e for s, e in self.week.get(wall.weekday(), ())
            )
            self.cache[minute] = cached
        return cached

    def business_time(self, t0: int, t1: int) -> int:
        total = 0
        for minute in range(t0 // M, -(-t1 // M)):
            lo, hi = max(t0, minute * M), min(t1, (minute + 1) * M)
            if lo < hi and self.open_minute(minute):
                total += hi - lo
        return total


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",  # +05:45
    "Europe/Moscow",
]
# Around daylight-saving changes of the zones above, and a plain week.
ANCHORS = [
    utc("2026-03-08T07:00:00Z"),  # New York spring forward
    utc("2026-11-01T06:00:00Z"),  # New York fall back
    utc("2026-03-29T01:00:00Z"),  # Berlin spring forward
    utc("2026-10-25T01:00:00Z"),  # Berlin fall back
    utc("2026-04-04T15:00:00Z"),  # Lord Howe fall back
    utc("2026-10-03T15:30:00Z"),  # Lord Howe spring forward
    utc("2026-06-10T12:00:00Z"),
    utc("2025-12-30T12:00:00Z"),
]
BOUNDARIES = [0, 30, 60, 90, 120, 150, 180, 210, 540, 780, 840, 1020, 1080, 1410, 1439, 1440]


@st.composite
def day_intervals(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    points = draw(
        st.lists(st.sampled_from(BOUNDARIES) | st.integers(0, 1440), unique=True, max_size=6).map(
            sorted
        )
    )
    return tuple((points[i], points[i + 1]) for i in range(0, len(points) - 1, 2))


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, Oracle, int, int]:
    tz = draw(st.sampled_from(ZONES))
    wk = {d: draw(day_intervals()) for d in range(7)}
    wk = {d: iv for d, iv in wk.items() if iv}
    if not wk:
        wk = {draw(st.integers(0, 6)): ((0, 1440),)}
    t0 = draw(st.sampled_from(ANCHORS)) + draw(st.integers(-3 * DAY, 3 * DAY))
    span = draw(st.integers(0, 3 * DAY))
    base = datetime.fromtimestamp(t0 / 1000, UTC).date()
    hol = {base + timedelta(days=o) for o in draw(st.lists(st.integers(-2, 4), max_size=3))}
    return BusinessCalendar(tz, wk, hol, "random"), Oracle(tz, wk, hol), t0, span


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(calendars(), st.data())
def test_business_time_matches_the_oracle(
    case: tuple[BusinessCalendar, Oracle, int, int], data: st.DataObject
) -> None:
    cal, oracle, t0, span = case
    t1 = t0 + data.draw(st.integers(0, span))
    assert cal.business_time(t0, t1) == oracle.business_time(t0, t1)


@PROPERTY
@given(calendars(), st.data())
def test_due_is_the_earliest_instant_with_that_business_time(
    case: tuple[BusinessCalendar, Oracle, int, int], data: st.DataObject
) -> None:
    cal, oracle, t0, span = case
    available = oracle.business_time(t0, t0 + span)
    d = data.draw(st.integers(0, available))
    t = cal.due(t0, d)
    assert t0 <= t <= t0 + span
    assert oracle.business_time(t0, t) == d
    if d > 0:
        # Minimal: one millisecond earlier the clock has not got there yet.
        assert oracle.business_time(t0, t - 1) == d - 1
        assert cal.is_open(t - 1)
    else:
        assert t == t0


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.integers(utc("2020-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z")),
    st.integers(0, 900 * DAY),
    st.integers(0, 900 * DAY),
)
def test_long_spans_are_consistent_across_chunks(tz: str, t0: int, a: int, b: int) -> None:
    cal = BusinessCalendar(tz, OFFICE_WEEK, {date(2026, 1, 1), date(2027, 5, 3)})
    t1, t2 = t0 + min(a, b), t0 + max(a, b)
    assert cal.business_time(t0, t2) == cal.business_time(t0, t1) + cal.business_time(t1, t2)
    d = cal.business_time(t0, t2)
    due = cal.due(t0, d)
    assert due <= t2
    assert cal.business_time(t0, due) == d
    assert cal.due(t0, a) > t0 or a == 0
    assert cal.business_time(t0, cal.due(t0, a)) == a


# ---------------------------------------------------------------------------------------------
# Exact instants
# ---------------------------------------------------------------------------------------------


def test_sixteen_hours_from_friday_afternoon_runs_over_the_weekend() -> None:
    # Fri 16:00-17:00 (1h) + Mon 09:00-13:00, 14:00-18:00 (8h) + Tue 09:00-16:00 (7h).
    t0 = utc("2026-03-13T16:00:00+01:00")
    assert BERLIN_OFFICE.due(t0, 16 * H) == utc("2026-03-17T16:00:00+01:00")
    assert BERLIN_OFFICE.business_time(t0, utc("2026-03-17T16:00:00+01:00")) == 16 * H


def test_weekend_counts_nothing() -> None:
    sat = utc("2026-03-14T00:00:00+01:00")
    assert BERLIN_OFFICE.business_time(sat, sat + 2 * DAY) == 0


def test_holidays_are_closed_all_day() -> None:
    # Wed 31 Dec 17:00 CET: one hour that day, then 1 and 2 Jan are holidays, then the weekend.
    t0 = utc("2025-12-31T17:00:00+01:00")
    assert BERLIN_OFFICE.due(t0, 2 * H) == utc("2026-01-05T10:00:00+01:00")
    assert BERLIN_OFFICE.business_time(t0, utc("2026-01-05T09:00:00+01:00")) == H


def test_lunch_break_is_closed() -> None:
    t0 = utc("2026-03-16T12:30:00+01:00")  # Monday
    assert BERLIN_OFFICE.due(t0, H) == utc("2026-03-16T14:30:00+01:00")
    assert BERLIN_OFFICE.business_time(t0, utc("2026-03-16T14:00:00+01:00")) == 30 * M


def test_a_clock_started_outside_open_hours_counts_from_the_next_opening() -> None:
    t0 = utc("2026-03-14T10:00:00+01:00")  # Saturday
    assert BERLIN_OFFICE.due(t0, H) == utc("2026-03-16T10:00:00+01:00")
    night = utc("2026-03-17T03:00:00+01:00")
    assert BERLIN_OFFICE.due(night, 1) == utc("2026-03-17T09:00:00.001+01:00")


def test_due_of_nothing_is_the_start_even_when_closed() -> None:
    t0 = utc("2026-03-14T10:00:00.123+01:00")
    assert BERLIN_OFFICE.due(t0, 0) == t0


def test_milliseconds_are_exact() -> None:
    t0 = utc("2026-03-16T12:59:59.999+01:00")  # 1 ms before lunch
    assert BERLIN_OFFICE.due(t0, 1) == utc("2026-03-16T13:00:00+01:00")
    assert BERLIN_OFFICE.due(t0, 2) == utc("2026-03-16T14:00:00.001+01:00")
    assert BERLIN_OFFICE.business_time(t0, utc("2026-03-16T14:00:00.250+01:00")) == 251


def test_an_interval_ending_at_midnight() -> None:
    cal = BusinessCalendar("UTC", week(mon=["20:00-24:00"], tue=["00:00-02:00"]))
    mon_23 = utc("2026-03-16T23:00:00Z")
    # 24:00 meets Tuesday's 00:00: one stretch of open time.
    assert cal.due(mon_23, 2 * H) == utc("2026-03-17T01:00:00Z")
    assert cal.due(mon_23, 3 * H) == utc("2026-03-17T02:00:00Z")
    # The earliest instant with the whole target is the end of the interval, not next opening.
    assert cal.due(mon_23, 3 * H + 1) == utc("2026-03-23T20:00:00.001Z")
    only_monday = BusinessCalendar("UTC", week(mon=["20:00-24:00"]))
    assert only_monday.due(mon_23, H) == utc("2026-03-17T00:00:00Z")
    assert only_monday.is_open(utc("2026-03-16T23:59:59.999Z"))
    assert not only_monday.is_open(utc("2026-03-17T00:00:00Z"))


def test_berlin_spring_forward_skips_the_missing_hour() -> None:
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00Z).
    cal = BusinessCalendar("Europe/Berlin", week(sun=["01:00-05:00"]))
    midnight = utc("2026-03-29T00:00:00+01:00")
    assert cal.business_time(midnight, midnight + DAY) == 3 * H
    assert cal.due(midnight, H) == utc("2026-03-29T03:00:00+02:00")  # 01:00Z
    assert cal.due(midnight, 2 * H) == utc("2026-03-29T04:00:00+02:00")
    # An interval starting inside the gap opens at the transition instant.
    gap_start = BusinessCalendar("Europe/Berlin", week(sun=["02:30-04:00"]))
    assert gap_start.due(midnight, 1) == utc("2026-03-29T01:00:00.001Z")
    assert gap_start.business_time(midnight, midnight + DAY) == H


def test_berlin_fall_back_counts_the_repeated_hour() -> None:
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:00-03:00 happens twice.
    cal = BusinessCalendar("Europe/Berlin", week(sun=["01:00-03:00"]))
    midnight = utc("2026-10-25T00:00:00+02:00")
    assert cal.business_time(midnight, midnight + DAY) == 3 * H
    assert cal.due(midnight, 3 * H) == utc("2026-10-25T03:00:00+01:00")  # 02:00Z
    # An interval ending inside the repeated hour is open during both occurrences of it.
    ends_inside = BusinessCalendar("Europe/Berlin", week(sun=["01:00-02:30"]))
    assert ends_inside.business_time(midnight, midnight + DAY) == 2 * H
    assert ends_inside.due(midnight, 90 * M) == utc("2026-10-25T02:30:00+02:00")  # 00:30Z
    assert ends_inside.due(midnight, 90 * M + 1) == utc("2026-10-25T02:00:00.001+01:00")


def test_new_york_office_across_spring_forward_weekend() -> None:
    # 8 March 2026 (Sunday): 02:00 EST jumps to 03:00 EDT.
    cal = BusinessCalendar("America/New_York", week(mon=["09:00-17:00"], fri=["09:00-17:00"]))
    t0 = utc("2026-03-06T16:00:00-05:00")
    assert cal.due(t0, 2 * H) == utc("2026-03-09T10:00:00-04:00")
    assert cal.business_time(t0, utc("2026-03-09T17:00:00-04:00")) == 9 * H


def test_new_york_fall_back_round_the_clock() -> None:
    cal = BusinessCalendar("America/New_York", {d: ((0, 1440),) for d in range(7)})
    day = utc("2026-11-01T00:00:00-04:00")
    assert cal.business_time(day, utc("2026-11-02T00:00:00-05:00")) == 25 * H
    assert cal.due(day, 25 * H) == utc("2026-11-02T00:00:00-05:00")


def test_a_calendar_without_open_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="calendar closed has no open hours"):
        BusinessCalendar("UTC", {0: (), 6: ()}, name="closed")


def test_bad_intervals_and_timezones_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        BusinessCalendar("UTC", {0: ((600, 540),)})
    with pytest.raises(ValueError, match="sorted"):
        BusinessCalendar("UTC", {0: ((540, 700), (600, 800))})
    with pytest.raises(ValueError, match="unknown timezone"):
        BusinessCalendar("Mars/Olympus", {0: ((0, 60),)})


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError):
        BERLIN_OFFICE.due(0, -1)


def test_reversed_range_has_no_business_time() -> None:
    assert (
        BERLIN_OFFICE.business_time(utc("2026-03-17T12:00:00Z"), utc("2026-03-16T12:00:00Z")) == 0
    )


def test_long_durations_skip_in_bulk() -> None:
    cal = BusinessCalendar("Europe/Berlin", OFFICE_WEEK, {date(2026, 1, 1)})
    t0 = utc("2026-03-13T16:00:00+01:00")
    started = time.perf_counter()
    due = cal.due(t0, 400 * DAY)  # about 4.5 calendar years of office hours
    first = time.perf_counter() - started
    assert cal.business_time(t0, due) == 400 * DAY
    started = time.perf_counter()
    assert cal.due(t0, 400 * DAY) == due
    again = time.perf_counter() - started
    assert first < 0.5
    assert again < 0.01


def test_a_weekend_crossing_target_costs_microseconds() -> None:
    cal = BusinessCalendar("Europe/Berlin", OFFICE_WEEK)
    t0 = utc("2026-03-13T16:00:00+01:00")
    cal.due(t0, 16 * H)  # build the chunk once
    n = 20_000
    started = time.perf_counter()
    for i in range(n):
        cal.due(t0 + i, 16 * H)
    per_call = (time.perf_counter() - started) / n
    assert per_call < 50e-6

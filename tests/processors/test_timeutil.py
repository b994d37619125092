"""RFC 3339 text and datetimes to and from Millis."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.timeutil import (
    MAX_INSTANT,
    MIN_INSTANT,
    from_datetime,
    in_range,
    parse_rfc3339,
    to_datetime,
    to_rfc3339,
)

# 2026-03-02T06:15:00Z, worked out independently: calendar.timegm((2026, 3, 2, 6, 15, 0)).
MS = 1_772_432_100_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-03-02T06:15:00Z", MS),
        ("2026-03-02t06:15:00z", MS),
        ("2026-03-02 06:15:00Z", MS),
        ("2026-03-02T09:15:00+03:00", MS),
        ("2026-03-01T21:45:00-08:30", MS),
        ("2026-03-02T06:15:00-00:00", MS),
        ("2026-03-02T06:15:00.5Z", MS + 500),
        ("2026-03-02T06:15:00.123999+00:00", MS + 123),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_parse_rfc3339(text: str, ms: int) -> None:
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-02T06:15:00", "'2026-03-02T06:15:00' has no utc offset; rfc 3339 requires one"),
        ("2026-03-02", "'2026-03-02' is not an rfc 3339 timestamp"),
        ("2026-03-02T06:15Z", "'2026-03-02T06:15Z' is not an rfc 3339 timestamp"),
        ("20260302T061500Z", "'20260302T061500Z' is not an rfc 3339 timestamp"),
        ("2026-03-02T06:15:00+0300", "'2026-03-02T06:15:00+0300' is not an rfc 3339 timestamp"),
        ("2026-02-30T06:15:00Z", "'2026-02-30T06:15:00Z' is not a valid date and time"),
        ("2026-03-02T24:00:00Z", "'2026-03-02T24:00:00Z' is not a valid date and time"),
        ("2026-03-02T06:15:00+24:00", "'2026-03-02T06:15:00+24:00' has an invalid utc offset"),
        ("2016-12-31T23:59:60Z", "'2016-12-31T23:59:60Z' is a leap second"),
        (" 2026-03-02T06:15:00Z", "is not an rfc 3339 timestamp"),
    ],
)
def test_parse_rfc3339_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rfc3339(text)
    assert message in str(info.value)


def test_to_rfc3339_is_utc_with_milliseconds() -> None:
    assert to_rfc3339(MS + 250) == "2026-03-02T06:15:00.250Z"
    assert to_rfc3339(-1) == "1969-12-31T23:59:59.999Z"


def test_datetime_conversions() -> None:
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert from_datetime(dt.datetime(2026, 3, 2, 9, 15, 0, 999_999, tzinfo=moscow)) == MS + 999
    assert to_datetime(MS) == dt.datetime(2026, 3, 2, 6, 15, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="naive datetime"):
        from_datetime(dt.datetime(2026, 3, 2, 6, 15))


@given(st.integers(min_value=MIN_INSTANT, max_value=MAX_INSTANT))
def test_round_trip(ms: int) -> None:
    assert parse_rfc3339(to_rfc3339(ms)) == ms
    assert from_datetime(to_datetime(ms)) == ms


def test_the_stored_range_is_datetime64_3s() -> None:
    assert to_rfc3339(MIN_INSTANT) == "1900-01-01T00:00:00.000Z"
    assert to_rfc3339(MAX_INSTANT) == "2299-12-31T23:59:59.999Z"
    assert in_range(MIN_INSTANT) and in_range(MAX_INSTANT)
    assert not in_range(MIN_INSTANT - 1) and not in_range(MAX_INSTANT + 1)


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC: datetime cannot even hold it
        "9999-12-31T23:59:59-12:00",  # after year 9999 in UTC
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:59:59.999Z",
        "2300-01-01T00:00:00Z",
    ],
)
def test_instants_outside_the_stored_range_are_refused_not_overflowing(text: str) -> None:
    with pytest.raises(ValueError, match="outside the instants the warehouse stores"):
        parse_rfc3339(text)

"""The rules file's duration notation: parsing, refusing, and writing it back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.durations import format_duration, parse_duration

S = 1_000
M = 60 * S
H = 60 * M
D = 24 * H


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("45s", 45 * S),
        ("15m", 15 * M),
        ("2h", 2 * H),
        ("3d", 3 * D),
        ("1h30m", H + 30 * M),
        ("1d2h3m4s", D + 2 * H + 3 * M + 4 * S),
        ("90m", 90 * M),
        ("1h0m", H),
        ("072h", 72 * H),
    ],
)
def test_parses_each_unit_and_combinations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("0m", "longer than zero"),
        ("0h0m", "longer than zero"),
        ("1.5h", "whole numbers only"),
        ("h", "needs a number"),
        ("30", "bare number has no unit"),
        ("1h1h", "only once"),
        ("30m1h", "largest to smallest"),
        ("-5m", "must be positive"),
        ("1x", "use 45s"),
        ("1H", "lower-case"),
        ("1h 30m", "no spaces"),
        (" 1h", "no spaces"),
        ("1w", "use 45s"),
    ],
)
def test_refuses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration(text)
    assert reason in str(caught.value)
    assert "(use 45s, 15m, 2h, 3d or 1h30m" in str(caught.value)


def test_an_unknown_unit_gets_the_plain_hint() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("1x")
    assert str(caught.value) == '"1x" is not a duration (use 45s, 15m, 2h, 3d or 1h30m)'


def test_a_specific_mistake_follows_the_hint() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("1.5h")
    assert str(caught.value) == (
        '"1.5h" is not a duration '
        "(use 45s, 15m, 2h, 3d or 1h30m; whole numbers only, e.g. 1h30m instead of 1.5h)"
    )


def test_a_number_from_yaml_is_refused_not_crashed_on() -> None:
    with pytest.raises(ValueError, match="no unit"):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (45 * S, "45s"),
        (H + 30 * M, "1h30m"),
        (72 * H, "3d"),
        (D + 4 * S, "1d4s"),
        (0, "0s"),
        (M + 500, "1m500ms"),
    ],
)
def test_formats_in_the_rules_notation(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


@given(st.integers(min_value=1, max_value=10**7).map(lambda seconds: seconds * S))
def test_whole_seconds_round_trip(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms

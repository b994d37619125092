"""Instants at the edges: RFC 3339 text and ``datetime`` to and from ``Millis``.

The processors count time in integer milliseconds since the Unix epoch, UTC (``Millis``). This
module is the only place that turns text or ``datetime`` values into instants and back, so the
rules about what an acceptable timestamp is live in one spot.

``parse_rfc3339`` is strict on purpose: an input record's ``at`` must carry its offset
(CONTRACT §1). A timestamp without one would be read in whatever zone the machine happens to
run in, and replaying the same file on another host would then give other SLA results.

Every instant the project accepts lies in ``MIN_INSTANT``..``MAX_INSTANT`` (1900-01-01 to
2299-12-31 UTC), the range ClickHouse's ``DateTime64(3)`` stores: a record dated outside it
(``0001-01-01``, ``9999-12-31``) could not be written anywhere, so ``parse_rfc3339`` refuses it
with a reason and the record becomes a dead letter (docs/DEAD_LETTERS.md).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from processors.model import Millis

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS: Final = dt.timedelta(milliseconds=1)
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()

MIN_INSTANT: Final[Millis] = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC) - _EPOCH) // _ONE_MS
"""1900-01-01T00:00:00.000Z, the first instant ``DateTime64(3)`` stores."""
MAX_INSTANT: Final[Millis] = (dt.datetime(2300, 1, 1, tzinfo=dt.UTC) - _EPOCH) // _ONE_MS - 1
"""2299-12-31T23:59:59.999Z, the last instant ``DateTime64(3)`` stores."""

# RFC 3339 §5.6 date-time. The separator may be "T", "t" or (per the note in §5.6) a space;
# the fraction may have any number of digits; the offset is "Z"/"z" or +hh:mm / -hh:mm and is
# mandatory. Compiled once at import: this runs for every input record.
_RFC3339: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>\d{2}):(?P<off_minute>\d{2}))?"
)


def parse_rfc3339(text: str) -> Millis:
    """The instant an RFC 3339 timestamp names, in milliseconds (fractions below a millisecond
    are truncated). The UTC offset is required; ``Z`` is accepted. Raises ``ValueError`` with a
    message saying what is wrong."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{_quote(text)} is not an rfc 3339 timestamp (yyyy-mm-ddThh:mm:ss±hh:mm)")
    year, month, day, hour, minute, second, fraction, utc, sign, off_hour, off_minute = (
        match.groups()
    )
    # The usual case (a valid time of day, an offset below a day, a year well inside the
    # stored range) in integer arithmetic without building a datetime and a timezone per
    # record; anything else takes the general path below, with its messages.
    if (
        "1900" < year < "2299"
        and hour < "24"
        and minute < "60"
        and second < "60"
        and (utc is not None or (off_hour is not None and off_hour < "24" and off_minute < "60"))
    ):
        try:
            days = dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            pass
        else:
            seconds = ((days * 24 + int(hour)) * 60 + int(minute)) * 60 + int(second)
            if utc is None:
                offset_seconds = (int(off_hour) * 60 + int(off_minute)) * 60
                seconds = seconds - offset_seconds if sign == "+" else seconds + offset_seconds
            ms = seconds * 1000 + (int(fraction[:3].ljust(3, "0")) if fraction else 0)
            if in_range(ms):
                return ms
    if match["utc"] is None and match["sign"] is None:
        raise ValueError(
            f"{_quote(text)} has no utc offset; rfc 3339 requires one (e.g. Z or +03:00)"
        )
    if match["second"] == "60":
        # A leap second cannot be represented by datetime, and no channel sends one in practice.
        raise ValueError(f"{_quote(text)} is a leap second, which is not supported")
    if match["utc"] is not None:
        offset = dt.timedelta(0)
    else:
        off_hour, off_minute = int(match["off_hour"]), int(match["off_minute"])
        if off_hour > 23 or off_minute > 59:
            raise ValueError(f"{_quote(text)} has an invalid utc offset")
        offset = dt.timedelta(hours=off_hour, minutes=off_minute)
        if match["sign"] == "-":
            offset = -offset
    fraction = match["fraction"] or ""
    try:
        moment = dt.datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=dt.timezone(offset),
        )
    except ValueError as exc:  # e.g. month 13, February 30th, hour 24
        raise ValueError(f"{_quote(text)} is not a valid date and time: {exc}") from None
    # Integer arithmetic throughout: a float detour would lose milliseconds on far instants.
    # Year 1 or 9999 with an offset is a valid text whose UTC instant datetime cannot hold
    # (OverflowError); it is outside the stored range all the same.
    try:
        ms = from_datetime(moment) + int(fraction[:3].ljust(3, "0"))
    except OverflowError:
        ms = MAX_INSTANT + 1 if moment.year > 1970 else MIN_INSTANT - 1
    if not in_range(ms):
        raise ValueError(
            f"{_quote(text)} is outside the instants the warehouse stores "
            "(1900-01-01 to 2299-12-31 UTC)"
        )
    return ms


def in_range(ms: Millis) -> bool:
    """Whether the instant lies in ``MIN_INSTANT``..``MAX_INSTANT``, the range stored."""
    return MIN_INSTANT <= ms <= MAX_INSTANT


def to_rfc3339(ms: Millis) -> str:
    """The instant as RFC 3339 text in UTC with milliseconds, e.g. ``2026-03-02T06:15:00.250Z``."""
    moment = to_datetime(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_datetime(moment: dt.datetime) -> Millis:
    """The instant of an aware ``datetime`` (sub-millisecond part truncated towards the past).
    A naive ``datetime`` is refused: its instant depends on a zone it does not name."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no utc offset")
    return (moment - _EPOCH) // _ONE_MS


def to_datetime(ms: Millis) -> dt.datetime:
    """The instant as an aware ``datetime`` in UTC."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _quote(text: str) -> str:
    # Error messages end up in dead-letter reasons; keep an absurdly long value from bloating them.
    return repr(text if len(text) <= 40 else text[:40] + "...")

"""Business calendars: how much open time lies between two instants, and when a clock runs out.

This module owns CONTRACT §3's two calendar functions for one calendar of the rules file (§2):

* ``business_time(t0, t1)``: the length of ``[t0, t1)`` that falls in open hours, in milliseconds;
* ``due(t0, d)``: the earliest instant ``t`` with ``business_time(t0, t) == d``.

An instant is *open* when the wall clock of the calendar's timezone, at that instant, shows a
weekday time inside one of that weekday's intervals and the wall date is not a holiday. This
literal reading fixes what daylight saving time does, with no special cases in the arithmetic:

* spring forward: wall times inside the gap never occur, so an interval that starts or ends in the
  gap starts or ends at the transition instant (the instant after the gap). ``01:00-05:00`` on a
  Europe/Berlin spring-forward night is three real hours long;
* fall back: repeated wall times occur twice and are open both times, so ``01:00-03:00`` on a
  Europe/Berlin fall-back night is three real hours long and contains the repeated hour. An interval
  ending at ``02:30`` on such a night is open during both occurrences of ``02:00-02:30``.

How: UTC time is cut into fixed chunks of four weeks. For each chunk, built once on first use and
cached, the open intervals are computed as UTC milliseconds (with prefix sums of their lengths), by
cutting the chunk at the timezone's offset changes and mapping each weekday interval through the
offset in force. Queries are then bisections, and long durations skip whole chunks by their totals,
so ``due(t0, 400 days)`` costs a few dozen additions once the chunks exist, and a 16 h target across
a weekend costs microseconds. Everything is integer milliseconds: exact, no floating point.

Pure: no clock, no I/O; the only state is the cache, which is derived data.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processors.model import Millis

__all__ = ["BusinessCalendar", "CalendarSpecLike"]

MINUTE_MS = 60_000
DAY_MS = 86_400_000
CHUNK_DAYS = 28
CHUNK_MS = CHUNK_DAYS * DAY_MS
_ONE_MS = timedelta(milliseconds=1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
# 1970-01-01 was a Thursday: weekday (0 = Monday) of epoch day n is (n + 3) % 7.
_EPOCH_WEEKDAY = 3


class CalendarSpecLike(Protocol):
    """What ``BusinessCalendar.from_spec`` reads from a calendar of the rules file."""

    @property
    def name(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def week(self) -> Mapping[int, Sequence[tuple[int, int]]]: ...
    @property
    def holidays(self) -> Iterable[date]: ...


# A chunk: open intervals as parallel lists of UTC starts and ends (sorted, disjoint, adjacent
# ones merged) and the prefix sums of their lengths (len(cum) == len(starts) + 1).
_Chunk = tuple[list[int], list[int], list[int]]


class BusinessCalendar:
    """Open hours of one calendar. Build once per calendar of the rules file and share it.

    ``week`` maps a weekday (0 = Monday .. 6 = Sunday) to its open intervals as minutes of the
    local day, ``(start, end)`` with ``0 <= start < end <= 1440`` (1440 is ``24:00``), sorted and
    not overlapping; a missing weekday is closed. ``holidays`` are local dates, closed all day.
    """

    __slots__ = ("_chunks", "_holidays", "_tz", "_week", "name", "timezone")

    def __init__(
        self,
        timezone: str,
        week: Mapping[int, Sequence[tuple[int, int]]],
        holidays: Iterable[date] = (),
        name: str = "",
    ) -> None:
        self.name = name
        self.timezone = timezone
        label = f"calendar {name}" if name else "calendar"
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{label}: unknown timezone {timezone!r}") from exc
        days: list[tuple[tuple[int, int], ...]] = []
        for weekday in range(7):
            intervals = tuple(week.get(weekday, ()))
            previous_end = 0
            for start, end in intervals:
                if not 0 <= start < end <= 1440 or start < previous_end:
                    raise ValueError(
                        f"{label}: weekday {weekday} intervals must be sorted, non-overlapping "
                        f"minutes within 0..1440, got {intervals!r}"
                    )
                previous_end = end
            days.append(tuple((s * MINUTE_MS, e * MINUTE_MS) for s, e in intervals))
        unknown = set(week) - set(range(7))
        if unknown:
            raise ValueError(f"{label}: weekdays must be 0..6, got {sorted(unknown)!r}")
        if not any(days):
            # Without this, due() would search forever for an opening that never comes.
            raise ValueError(
                f"calendar {name} has no open hours" if name else "calendar has no open hours"
            )
        self._week = tuple(days)
        self._holidays = frozenset((d - _EPOCH_DATE).days for d in holidays)
        self._chunks: dict[int, _Chunk] = {}

    @classmethod
    def from_spec(cls, spec: CalendarSpecLike) -> BusinessCalendar:
        """Build from a calendar of the rules file (``rules.CalendarSpec`` fits)."""
        return cls(spec.timezone, spec.week, spec.holidays, spec.name)

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, timezone={self.timezone!r})"

    # ----------------------------------------------------------------------------------------
    # Queries
    # ----------------------------------------------------------------------------------------

    def business_time(self, t0: Millis, t1: Millis) -> int:
        """Milliseconds of ``[t0, t1)`` inside open hours; 0 when ``t1 <= t0``."""
        if t1 <= t0:
            return 0
        k0, k1 = t0 // CHUNK_MS, t1 // CHUNK_MS
        chunk0 = self._chunk(k0)
        if k0 == k1:
            return _elapsed(chunk0, t1) - _elapsed(chunk0, t0)
        total = chunk0[2][-1] - _elapsed(chunk0, t0)
        for k in range(k0 + 1, k1):
            total += self._chunk(k)[2][-1]
        return total + _elapsed(self._chunk(k1), t1)

    def due(self, t0: Millis, d: int) -> Millis:
        """The earliest instant ``t >= t0`` with ``business_time(t0, t) == d``.

        For ``d > 0`` the result lies in open hours (or at the end of an interval), so a clock
        started outside open hours counts from the next opening. ``due(t0, 0) == t0`` even when
        ``t0`` is closed: nothing is left to count, which is what makes a cycle resumed with
        nothing left fire at the resume instant (CONTRACT §3).
        """
        if d < 0:
            raise ValueError(f"negative business duration {d}")
        if d == 0:
            return t0
        k = t0 // CHUNK_MS
        chunk = self._chunk(k)
        # From here on ``target`` is measured from the start of chunk k.
        target = _elapsed(chunk, t0) + d
        while target > chunk[2][-1]:
            target -= chunk[2][-1]
            k += 1
            chunk = self._chunk(k)
        starts, _, cum = chunk
        # The interval i with cum[i] < target <= cum[i + 1]: the target is reached inside it
        # (or exactly at its end, which is then the earliest such instant).
        i = bisect_left(cum, target) - 1
        return starts[i] + (target - cum[i])

    def is_open(self, t: Millis) -> bool:
        """Whether the instant ``t`` lies in open hours."""
        starts, ends, _ = self._chunk(t // CHUNK_MS)
        i = bisect_right(starts, t) - 1
        return i >= 0 and t < ends[i]

    # ----------------------------------------------------------------------------------------
    # Chunks
    # ----------------------------------------------------------------------------------------

    def _chunk(self, k: int) -> _Chunk:
        chunk = self._chunks.get(k)
        if chunk is None:
            chunk = self._chunks[k] = self._build_chunk(k)
        return chunk

    def _build_chunk(self, k: int) -> _Chunk:
        a = k * CHUNK_MS
        b = a + CHUNK_MS
        starts: list[int] = []
        ends: list[int] = []
        week, holidays = self._week, self._holidays
        for seg_a, seg_b, offset in self._offset_segments(a, b):
            # Within a segment the wall clock is UTC + offset, a plain translation, so each
            # weekday interval of each wall day maps to one UTC interval. A gap (spring forward)
            # or a repeat (fall back) is a segment boundary: wall times in a gap belong to no
            # segment, repeated wall times belong to both, exactly the module's semantics.
            wall_a, wall_b = seg_a + offset, seg_b + offset
            for day in range(wall_a // DAY_MS, (wall_b - 1) // DAY_MS + 1):
                if day in holidays:
                    continue
                base = day * DAY_MS
                for start, end in week[(day + _EPOCH_WEEKDAY) % 7]:
                    lo = max(base + start, wall_a) - offset
                    hi = min(base + end, wall_b) - offset
                    if lo >= hi:
                        continue
                    if ends and ends[-1] == lo:  # 24:00 meeting 00:00, or a segment boundary
                        ends[-1] = hi
                    else:
                        starts.append(lo)
                        ends.append(hi)
        cum = [0]
        running = 0
        for start, end in zip(starts, ends, strict=True):
            running += end - start
            cum.append(running)
        return starts, ends, cum

    def _offset(self, t: Millis) -> int:
        """UTC offset of the calendar's timezone at instant ``t``, in milliseconds."""
        offset = (_EPOCH_UTC + t * _ONE_MS).astimezone(self._tz).utcoffset()
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset // _ONE_MS

    def _offset_segments(self, a: Millis, b: Millis) -> list[tuple[int, int, int]]:
        """``[a, b)`` cut where the UTC offset changes: ``(start, end, offset)`` triples.

        The offset is sampled once a day; where two samples differ, the change is located to the
        millisecond by bisection. Timezones change offset at most a few times a year, so a
        change and its reversal within one day (which sampling would miss) does not occur in
        practice.
        """
        samples = [*range(a, b, DAY_MS), b - 1]
        offsets = [self._offset(t) for t in samples]
        segments: list[tuple[int, int, int]] = []
        seg_start, seg_offset = a, offsets[0]
        for i in range(1, len(samples)):
            if offsets[i] == seg_offset:
                continue
            lo, hi = samples[i - 1], samples[i]  # offset(lo) == seg_offset != offset(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._offset(mid) == seg_offset:
                    lo = mid
                else:
                    hi = mid
            segments.append((seg_start, hi, seg_offset))
            seg_start, seg_offset = hi, self._offset(hi)
            # A second change between hi and this sample: keep locating.
            while seg_offset != offsets[i]:
                lo, top = hi, samples[i]
                while top - lo > 1:
                    mid = (lo + top) // 2
                    if self._offset(mid) == seg_offset:
                        lo = mid
                    else:
                        top = mid
                segments.append((seg_start, top, seg_offset))
                hi = top
                seg_start, seg_offset = top, self._offset(top)
        segments.append((seg_start, b, seg_offset))
        return segments


def _elapsed(chunk: _Chunk, t: Millis) -> int:
    """Open milliseconds from the start of ``chunk`` up to ``t`` (``t`` within the chunk)."""
    starts, ends, cum = chunk
    i = bisect_right(starts, t) - 1
    if i < 0:
        return 0
    return cum[i] + min(t, ends[i]) - starts[i]

"""``record_instant``: the fast reading of a line's instant that a replay's index makes of every
line. It must never disagree with ``parse_envelope``: a line it dates is a record with that
``at``; any other line it leaves to ``parse_envelope`` (None)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.generator import generate_week
from processors.model import RawRecord
from processors.parsing import parse_envelope as _parse_envelope
from processors.parsing import record_instant


def parse_envelope(line: bytes) -> RawRecord | None:
    """What a replay's index did with the line before the fast reading: its record, or None
    for a dead letter."""
    parsed = _parse_envelope(line.decode("utf-8", "replace"), "t:1", lambda text: text)
    return parsed if isinstance(parsed, RawRecord) else None


def agrees(line: bytes) -> bool:
    """``record_instant`` dates only records, and at their ``parse_envelope`` instant."""
    fast = record_instant(line)
    if fast is None:
        return True
    record = parse_envelope(line)
    return record is not None and record.at == fast


def test_it_dates_every_record_of_a_generated_week_as_parse_envelope_does() -> None:
    traffic = generate_week(datetime.fromisoformat("2026-03-02T00:00:00+03:00"), seed=3)
    lines = [line.encode() for line in traffic.lines()]
    records = {line: parse_envelope(line) for line in lines}

    dated = {line: record_instant(line) for line in lines}

    assert len(lines) > 3000
    # Every record is dated the fast way (the point of it) and at the same instant...
    assert {line: record.at for line, record in records.items() if record is not None} == {
        line: at for line, at in dated.items() if at is not None
    }
    # ...and the generator's lines that are not records at all are left to parse_envelope.
    assert any(record is None for record in records.values())


LINE = '{"at": "2026-03-02T09:15:00+03:00", "source": "chat", "payload": %s}'


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (LINE % '{"text": "a\\ud83d"}', "a lone surrogate, which the json module repairs"),
        (LINE % '{"score": NaN}', "NaN, which load_json_text refuses"),
        (LINE % '{"score": 1e999}', "a number beyond a double"),
        (LINE % '"\xff"', "invalid UTF-8, which the reader replaces"),
        ("\ufeff" + LINE % "{}", "a byte order mark"),
        (LINE % ("[" * 300 + "]" * 300), "deep nesting, which the json module may refuse"),
        ('{"at": "2026-03-02 09:15", "source": "chat", "payload": {}}', "an unreadable instant"),
        ('{"at": 1772431200000, "source": "chat", "payload": {}}', "an instant not text"),
        ('{"at": "2026-03-02T09:15:00+03:00", "source": "fax", "payload": {}}', "unknown source"),
        ('{"at": "2026-03-02T09:15:00+03:00", "source": ["chat"], "payload": {}}', "a list"),
        ('{"at": "2026-03-02T09:15:00+03:00", "source": "chat"}', "no payload"),
        ('[{"at": "2026-03-02T09:15:00+03:00", "source": "chat", "payload": {}}]', "an array"),
        (LINE % '{"text": "x', "cut short"),
    ],
)
def test_what_it_leaves_to_parse_envelope(line: str, why: str) -> None:
    raw = line.encode("utf-8", "surrogateescape") if "\xff" not in line else line.encode("latin-1")

    assert record_instant(raw) is None, why
    assert agrees(raw)


@pytest.mark.parametrize(
    "line",
    [
        LINE % "null",
        LINE % '{"big": 123456789012345678901234567890}',
        '  {"source": "chat", "payload": {}, "at": "2026-03-02T06:15:00Z"}  \r',
        '{"at": "2020-01-01T00:00:00Z", "source": "chat", "payload": {}, '
        '"at": "2026-03-02T09:15:00.250+03:00"}',
        LINE % ("[" * 50 + "]" * 50),
        LINE % '{"text": "привет 👋"}',
    ],
)
def test_records_it_dates_as_parse_envelope_does(line: str) -> None:
    raw = line.encode()

    assert record_instant(raw) is not None
    assert agrees(raw)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    at=st.sampled_from(["2026-03-02T09:15:00+03:00", "2026-03-02T06:15:00Z", "yesterday"]),
    source=st.sampled_from(["chat", "email", "fax", ""]),
    payload=_JSON,
    cut=st.integers(min_value=0, max_value=400),
    noise=st.binary(max_size=3),
)
def test_it_never_disagrees_with_parse_envelope(
    at: str, source: str, payload: object, cut: int, noise: bytes
) -> None:
    line = json.dumps({"at": at, "source": source, "payload": payload}).encode()
    damaged = line[:cut] + noise + line[cut:]

    assert agrees(line)
    assert agrees(damaged)

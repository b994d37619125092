"""The embedded adapter's insert encoding: orjson for plain columns, the json module for the rest,
and the warehouse ends up holding exactly what the earlier, json-only encoder gave it.

The oracle is that earlier encoder, kept here verbatim (``_old_json_columns``): the same rows go
into two identical tables on real chdb, one through the adapter as it is and one through the
oracle, and the tables must read back byte for byte the same.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from decimal import Decimal
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks import chdb_backend
from sinks.backend import SinkError, check_row_width
from sinks.chdb_backend import ChdbBackend, _json_columns

# -- the oracle: the encoder before orjson, as it was ------------------------------------------


def _old_json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [
            v if type(v) in _OLD_JSON_NATIVE or type(v) is bool else _old_json_value(v)
            for v in value
        ]
    raise SinkError(f"cannot insert a value of type {type(value).__name__}: {value!r}")


def _old_json_columns(rows: Sequence[Sequence[Any]], width: int) -> bytes:
    for row in rows:
        if len(row) != width:
            check_row_width(row, width)
    parts: list[bytes] = []
    for column in zip(*rows, strict=True):
        values = _old_column_values(column)
        try:
            parts.append(json.dumps(values, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            parts.append(json.dumps(values).encode("ascii"))
        except (TypeError, ValueError) as exc:
            raise SinkError(f"cannot insert a value: {exc}") from exc
    return b"[" + b",".join(parts) + b"]"


_OLD_JSON_NATIVE = (str, int, float, type(None))


def _old_column_values(column: tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    if all(type(value) in _OLD_JSON_NATIVE or type(value) is bool for value in column):
        return column
    return [
        value if type(value) in _OLD_JSON_NATIVE or type(value) is bool else _old_json_value(value)
        for value in column
    ]


# -- the tables and the values ---------------------------------------------------------------

# name, ClickHouse type, values of it (every column takes None where it is Nullable)
_TEXT = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=12)
_ZONES = st.sampled_from(
    [dt.UTC, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns")]
    + [dt.timezone(dt.timedelta(minutes=m)) for m in (-150, 0, 330, 600)]
)
_INSTANTS = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2299, 12, 31))
_UTC_INSTANTS = _INSTANTS.map(lambda d: d.replace(tzinfo=dt.UTC))
# From 1970: before, a zone's offset may hold seconds (local mean time), which ClickHouse
# refuses whichever way it is written (the edge cases below have one).
_ZONED_INSTANTS = st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2299, 12, 30), timezones=_ZONES)
_ANY_INSTANTS = st.one_of(_INSTANTS, _UTC_INSTANTS, _ZONED_INSTANTS)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True)

COLUMNS: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("s", "String", _TEXT),
    ("ns", "Nullable(String)", st.one_of(st.none(), _TEXT)),
    ("lc", "LowCardinality(String)", st.sampled_from(["email", "chat", "Ёжик", ""])),
    ("i", "Int64", st.integers(-(2**63), 2**63 - 1)),
    ("u", "UInt64", st.integers(0, 2**64 - 1)),
    ("big", "Int128", st.integers(-(2**127), 2**127 - 1)),
    ("ni", "Nullable(Int32)", st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
    ("f", "Float64", _FLOATS),
    ("nf", "Nullable(Float64)", st.one_of(st.none(), st.floats(-1e300, 1e300))),
    ("b", "Bool", st.booleans()),
    ("t3", "DateTime64(3, 'UTC')", _UTC_INSTANTS),
    ("t6", "DateTime64(6, 'UTC')", _ANY_INSTANTS),
    ("nt", "Nullable(DateTime64(3, 'UTC'))", st.one_of(st.none(), _UTC_INSTANTS, _INSTANTS)),
    ("tz", "DateTime64(6, 'Asia/Kolkata')", _ANY_INSTANTS),
    ("d", "Date", st.dates(dt.date(1970, 1, 1), dt.date(2149, 6, 6))),
    ("d32", "Date32", st.dates(dt.date(1900, 1, 1), dt.date(2299, 12, 31))),
    ("dec", "Decimal(18, 4)", st.decimals(-(10**13), 10**13, places=4, allow_nan=False)),
    ("arr", "Array(String)", st.lists(_TEXT, max_size=3)),
    ("arrf", "Array(Nullable(Float64))", st.lists(st.one_of(st.none(), _FLOATS), max_size=3)),
]
NAMES = tuple(name for name, _, _ in COLUMNS)


def _rows(size: int) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    row = st.tuples(*(values for _, _, values in COLUMNS))
    return st.lists(row, min_size=1, max_size=size)


_tables = count()


def _table(backend: ChdbBackend) -> str:
    name = f"supportstream.enc_{next(_tables)}"
    columns = ", ".join(f"{column} {ch_type}" for column, ch_type, _ in COLUMNS)
    backend.execute(f"CREATE TABLE {name} (n UInt32, {columns}) ENGINE = MergeTree ORDER BY n")
    return name


def _outcome(backend: ChdbBackend, table: str, rows: list[tuple[Any, ...]]) -> str:
    """What the table holds after the insert, or the error the insert raised (its ClickHouse
    code and the column it names: the message quotes the document, whose text may differ)."""
    try:
        backend.insert(table, ("n", *NAMES), rows)
    except SinkError as exc:
        code, column = re.search(r"Code: (\d+)", str(exc)), re.search(r"of key (\w+)", str(exc))
        return f"SinkError {code and code.group(1)} {column and column.group(1)}"
    return backend.query_formatted(f"SELECT * FROM {table} ORDER BY n", "JSONCompactEachRow")


def _insert_both(
    backend: ChdbBackend, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[Any, ...]]
) -> tuple[str, str]:
    numbered = [(n, *row) for n, row in enumerate(rows)]
    new_table, old_table = _table(backend), _table(backend)
    new = _outcome(backend, new_table, numbered)
    with monkeypatch.context() as patch:
        patch.setattr(chdb_backend, "_json_columns", _old_json_columns)
        old = _outcome(backend, old_table, numbered)
    return new, old


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_rows(8))
def test_any_rows_are_stored_as_the_json_only_encoder_stored_them(
    chdb_backend: ChdbBackend, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[Any, ...]]
) -> None:
    new, old = _insert_both(chdb_backend, monkeypatch, rows)
    assert new == old
    assert new.count("\n") == len(rows)


def test_the_edge_cases_are_stored_as_the_json_only_encoder_stored_them(
    chdb_backend: ChdbBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")  # +00:19:32 in 1930: an offset with seconds
    base: list[Any] = [
        "plain",
        None,
        "email",
        0,
        0,
        0,
        None,
        0.0,
        None,
        False,
        dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        None,
        dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 2),
        Decimal("0"),
        [],
        [],
    ]
    at = NAMES.index
    cases: list[dict[str, Any]] = [
        {"s": "lone \ud800 surrogate", "ns": "\udfff"},
        {"s": 'Ёжик в тумане — 🦔 \x00\x1f\x7f\u2028 "q" \\ /', "lc": "Ёжик"},
        {"i": -(2**63), "u": 2**64 - 1, "big": 2**127 - 1, "ni": -(2**31)},
        {"big": -(2**127)},
        {"f": math.nan, "nf": 1e300, "arrf": [math.inf, None, -0.0]},
        {"f": math.inf},
        {"f": -math.inf, "nf": -0.0},
        {"f": 1e-7, "nf": 1.7976931348623157e308},
        {"f": 5e-324, "nf": 123456789012345.67},
        {"b": True, "ni": None, "nt": dt.datetime(2026, 3, 2, 10, 0, 0, 123999)},
        {"t3": dt.datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=dt.UTC)},
        {"t6": dt.datetime(2026, 3, 2, 0, 0, 0, 1), "tz": dt.datetime(2026, 3, 2, 0, 0, 0, 1)},
        {"t6": dt.datetime(1930, 6, 1, 12, 0, 0, 123456, tzinfo=amsterdam)},
        {"tz": dt.datetime(1930, 6, 1, 12, 0, 0, 654321, tzinfo=amsterdam)},
        {"t6": dt.datetime(2026, 3, 2, 1, 2, 3, tzinfo=ZoneInfo("Asia/Kolkata"))},
        {"nt": dt.datetime(2026, 3, 2, 1, 2, 3, 456000, tzinfo=ZoneInfo("UTC"))},
        {"d": dt.date(2149, 6, 6), "d32": dt.date(1900, 1, 1)},
        {"dec": Decimal("-1234567890123.4567"), "arr": ["a", "", "\ud800"]},
    ]
    rows = []
    for case in cases:
        row = list(base)
        for name, value in case.items():
            row[at(name)] = value
        rows.append(tuple(row))
    new, old = _insert_both(chdb_backend, monkeypatch, rows)
    assert new == old
    # Each case alone too: a column's way is chosen by all its values.
    for row in rows:
        new, old = _insert_both(chdb_backend, monkeypatch, [row])
        assert new == old


def test_the_projection_columns_go_through_orjson() -> None:
    # What the writer hands over (UTC instants, dates, text, integers, finite floats, nulls)
    # takes the fast way: one orjson call per column.
    at = dt.datetime(2026, 3, 2, 10, 0, 0, 123000, tzinfo=dt.UTC)
    rows = [
        ("t-1", at, None, 3, 1.5, dt.date(2026, 3, 2), True),
        ("t-2", at, at, 4, None, dt.date(2026, 3, 3), False),
    ]
    document = _json_columns(rows, 7)
    assert orjson.loads(document) == [
        ["t-1", "t-2"],
        ["2026-03-02T10:00:00.123000+00:00"] * 2,
        [None, "2026-03-02T10:00:00.123000+00:00"],
        [3, 4],
        [1.5, None],
        ["2026-03-02", "2026-03-03"],
        [True, False],
    ]
    assert b", " not in document  # orjson's compact form, not json.dumps's


@given(
    instant=st.one_of(
        _INSTANTS, _UTC_INSTANTS, st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))
    )
)
def test_orjson_writes_utc_and_naive_instants_as_isoformat_does(instant: dt.datetime) -> None:
    (text,) = orjson.loads(_json_columns([(instant,)], 1))[0]
    expected = instant.isoformat() + ("+00:00" if instant.tzinfo is None else "")
    assert text == expected


def test_a_value_nothing_can_encode_is_still_a_sink_error() -> None:
    with pytest.raises(SinkError, match="cannot insert a value of type object"):
        _json_columns([(object(),)], 1)
    with pytest.raises(SinkError, match="cannot insert a value of type time"):
        _json_columns([(dt.time(1, 2),)], 1)

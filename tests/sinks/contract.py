"""The backend contract: what every :class:`sinks.backend.Backend` adapter must do, written once.

Not collected by itself (no ``test_`` prefix). An adapter's test module star-imports it and
provides a ``backend`` fixture (an open backend; closed by the fixture afterwards)::

    from tests.sinks.contract import *  # noqa: F403

Most tests use only a small probe table with a unique name in database ``supportstream``
(created if missing), so they run against a shared server too. Tests that need the full
projection schema take the ``migrated`` fixture, which runs ``migrate(backend)``: run those
only against a disposable warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from sinks.backend import Backend, QueryError, SinkError
from sinks.migrate import load_migrations, migrate

__all__ = [
    "migrated",
    "probe",
    "test_a_closed_backend_refuses_work",
    "test_bad_sql_raises_query_error_with_clickhouse_message",
    "test_dedup_token_makes_a_repeated_insert_write_nothing",
    "test_insert_into_a_missing_table_is_a_query_error",
    "test_insert_query_round_trip_keeps_unicode_nulls_and_milliseconds",
    "test_invalid_dedup_token_is_refused",
    "test_migrate_twice_is_a_no_op",
    "test_query_formatted_renders_the_requested_format",
    "test_query_params_are_bound_as_values",
    "test_query_returns_python_values_by_column_type",
    "test_strings_with_quotes_backslashes_and_newlines_are_data_not_sql",
    "test_unknown_table_is_a_query_error",
]

UTC = dt.UTC
COLUMNS = ("id", "name", "note", "at", "score", "day", "tags")
NASTY = [
    "it's",
    'say "hi"',
    "back\\slash \\N \\t",
    "line\nbreak\r\n\ttab",
    "'); DROP TABLE supportstream.tickets; --",
    "{x:String} %(y)s ? $1",
    "null\x00byte",
    "Ёжик в тумане — 🦔 ∑ 漢字",
]


@pytest.fixture
def probe(backend: Backend) -> Iterator[str]:
    """A fresh probe table; its name."""
    name = f"supportstream.contract_probe_{uuid.uuid4().hex[:12]}"
    backend.execute("CREATE DATABASE IF NOT EXISTS supportstream")
    backend.execute(
        f"""CREATE TABLE {name}
        (
            id UInt32,
            name String,
            note Nullable(String),
            at DateTime64(3, 'UTC'),
            score Float64,
            day Date,
            tags Array(String)
        )
        ENGINE = ReplacingMergeTree ORDER BY id
        SETTINGS non_replicated_deduplication_window = 100"""
    )
    try:
        yield name
    finally:
        backend.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def migrated(backend: Backend) -> Backend:
    """The backend with the full projection schema (needs a disposable warehouse)."""
    migrate(backend)
    return backend


def _row(i: int, name: str, note: str | None = None) -> tuple[Any, ...]:
    at = dt.datetime(2026, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC) + dt.timedelta(milliseconds=i)
    return (i, name, note, at, i / 4, dt.date(2026, 3, 1), [name, "x"])


def _count(backend: Backend, table: str) -> int:
    return int(backend.query(f"SELECT count() AS n FROM {table}")[0]["n"])


# -- insert / query ---------------------------------------------------------------------------


def test_insert_query_round_trip_keeps_unicode_nulls_and_milliseconds(
    backend: Backend, probe: str
) -> None:
    rows = [_row(1, "Ёжик 🦔", None), _row(2, "", "заметка"), _row(3, "plain", "")]
    backend.insert(probe, COLUMNS, rows)

    got = backend.query(f"SELECT * FROM {probe} ORDER BY id")

    assert [tuple(r[c] for c in COLUMNS) for r in got] == rows
    assert got[0]["note"] is None and got[2]["note"] == ""
    assert got[0]["at"].tzinfo is not None
    assert got[0]["at"] == dt.datetime(2026, 3, 1, 12, 0, 0, 124_000, tzinfo=UTC)
    ms = backend.query(f"SELECT toUnixTimestamp64Milli(at) AS ms FROM {probe} WHERE id = 1")
    assert ms == [{"ms": 1772366400124}]


def test_strings_with_quotes_backslashes_and_newlines_are_data_not_sql(
    backend: Backend, probe: str
) -> None:
    rows = [_row(i, text, text) for i, text in enumerate(NASTY)]
    backend.insert(probe, COLUMNS, rows)

    got = backend.query(f"SELECT id, name, note, tags FROM {probe} ORDER BY id")

    assert [r["name"] for r in got] == NASTY
    assert [r["note"] for r in got] == NASTY
    assert [r["tags"][0] for r in got] == NASTY
    assert _count(backend, probe) == len(NASTY)


def test_query_returns_python_values_by_column_type(backend: Backend) -> None:
    (row,) = backend.query(
        """SELECT
            toUInt64(18446744073709551615) AS big,
            toInt8(-5) AS small,
            toFloat64(0.1) AS f,
            toDecimal64('12.34', 2) AS dec,
            true AS flag,
            toDate('2026-03-01') AS d,
            toDateTime64('2026-03-01 12:00:00.007', 3, 'UTC') AS at,
            toDateTime64('2026-03-01 15:00:00.007', 3, 'Europe/Moscow') AS at_msk,
            CAST(NULL AS Nullable(String)) AS nothing,
            ['a', 'b'] AS arr,
            toLowCardinality('lc') AS lc"""
    )
    assert row == {
        "big": 18446744073709551615,
        "small": -5,
        "f": 0.1,
        "dec": Decimal("12.34"),
        "flag": True,
        "d": dt.date(2026, 3, 1),
        "at": dt.datetime(2026, 3, 1, 12, 0, 0, 7000, tzinfo=UTC),
        "at_msk": dt.datetime(2026, 3, 1, 12, 0, 0, 7000, tzinfo=UTC),
        "nothing": None,
        "arr": ["a", "b"],
        "lc": "lc",
    }
    assert isinstance(row["dec"], Decimal) and isinstance(row["f"], float)


def test_query_params_are_bound_as_values(backend: Backend) -> None:
    for text in NASTY:
        got = backend.query("SELECT {s:String} AS s, length({s:String}) AS n", {"s": text})
        assert got == [{"s": text, "n": len(text.encode("utf-8"))}]
    at = dt.datetime(2026, 3, 1, 12, 0, 0, 5000, tzinfo=UTC)
    got = backend.query(
        "SELECT {n:Int64} + 1 AS n, {at:DateTime64(3, 'UTC')} AS at, {d:Date} AS d",
        {"n": 41, "at": at, "d": dt.date(2026, 3, 1)},
    )
    assert got == [{"n": 42, "at": at, "d": dt.date(2026, 3, 1)}]


def test_query_formatted_renders_the_requested_format(backend: Backend, probe: str) -> None:
    backend.insert(probe, COLUMNS, [_row(1, "Ёжик"), _row(2, "it's\nme")])

    text = backend.query_formatted(f"SELECT id, name FROM {probe} ORDER BY id", "JSONEachRow")

    assert [json.loads(line) for line in text.splitlines()] == [
        {"id": 1, "name": "Ёжик"},
        {"id": 2, "name": "it's\nme"},
    ]
    csv_text = backend.query_formatted(f"SELECT id FROM {probe} ORDER BY id", "CSV")
    assert csv_text.split() == ["1", "2"]


# -- deduplication ----------------------------------------------------------------------------


def test_dedup_token_makes_a_repeated_insert_write_nothing(backend: Backend, probe: str) -> None:
    rows = [_row(1, "a"), _row(2, "b")]
    backend.insert(probe, COLUMNS, rows, dedup_token="batch-1")
    backend.insert(probe, COLUMNS, rows, dedup_token="batch-1")
    assert _count(backend, probe) == 2

    # The token, not the content, names the batch: a new token is a new insert.
    backend.insert(probe, COLUMNS, rows, dedup_token="batch-2")
    assert _count(backend, probe) == 4
    # ...and the table's key collapses the copies under FINAL.
    assert _count(backend, f"{probe} FINAL") == 2


def test_invalid_dedup_token_is_refused(backend: Backend, probe: str) -> None:
    with pytest.raises(SinkError):
        backend.insert(probe, COLUMNS, [_row(1, "a")], dedup_token="x'; DROP TABLE t; --")
    assert _count(backend, probe) == 0


# -- errors -----------------------------------------------------------------------------------


def test_bad_sql_raises_query_error_with_clickhouse_message(backend: Backend) -> None:
    with pytest.raises(QueryError) as caught:
        backend.query("SELEC 1")
    err = caught.value
    assert err.code == 62
    assert "Syntax error" in str(err)
    assert not err.retryable
    assert "Traceback" not in str(err)

    with pytest.raises(QueryError) as caught:
        backend.query_formatted("SELECT nope(1)", "CSV")
    assert caught.value.code == 46  # UNKNOWN_FUNCTION


def test_unknown_table_is_a_query_error(backend: Backend) -> None:
    with pytest.raises(QueryError) as caught:
        backend.query("SELECT * FROM supportstream.no_such_table_here")
    assert caught.value.code == 60
    assert "no_such_table_here" in str(caught.value)


def test_insert_into_a_missing_table_is_a_query_error(backend: Backend) -> None:
    with pytest.raises(QueryError):
        backend.insert("supportstream.no_such_table_here", ("a",), [(1,)])


def test_a_closed_backend_refuses_work(backend: Backend) -> None:
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(SinkError):
        backend.query("SELECT 1")


# -- schema (needs the full projection DDL) ---------------------------------------------------


def test_migrate_twice_is_a_no_op(migrated: Backend) -> None:
    def schema() -> list[dict[str, Any]]:
        return migrated.query(
            "SELECT table, name, type FROM system.columns "
            "WHERE database = 'supportstream' ORDER BY table, name"
        )

    before = schema()
    ledger = _count(migrated, "supportstream.schema_migrations")

    assert migrate(migrated) == []

    assert schema() == before
    assert _count(migrated, "supportstream.schema_migrations") == ledger == len(load_migrations())
    tables = {r["name"] for r in migrated.query("SHOW TABLES FROM supportstream")}
    assert {
        "events",
        "tickets",
        "sla_metrics",
        "dead_letters",
        "contact_reasons_daily",
        "sla_achievement",
        "csat_daily",
        "nps_daily",
        "csi_quarterly",
        "repeat_contacts",
        "customer_health",
    } <= tables

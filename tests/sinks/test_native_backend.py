"""The native adapter (clickhouse-driver) against a real ClickHouse server process.

The server is Debian's ``clickhouse-server`` started on loopback by a fixture
(``tests.support.clickhouse``). The shared contract suite (``tests/sinks/contract.py``) runs
here unchanged; a contract test that needs something the server lacks (Debian's 18.16 has no
``DateTime64``, no ``{name:Type}`` parameters, no insert deduplication tokens) is skipped
*naming the missing feature*, found by asking the server, never by version guesswork. The
tests after it exercise the same promises on a simple table every version supports: rows
travel as data in compressed native blocks, ReplacingMergeTree collapses redeliveries, errors
are the project's, and an outage is retryable and survived by the same backend object.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks.backend import QueryError, SinkError, open_backend
from sinks.native_backend import NativeBackend
from tests.sinks import contract
from tests.sinks.contract import NASTY, migrated, probe  # noqa: F401  (fixtures of the suite)
from tests.support.clickhouse import ClickHouseServer, server_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(server_binary() is None, reason="clickhouse-server is not installed"),
]


@pytest.fixture(scope="module")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    # The contract's SQL names the project's database, which the embedded warehouse creates
    # on open; on a server it is the deployment's (``supportstream migrate``) to create.
    with NativeBackend(server.url) as setup:
        setup.execute("CREATE DATABASE IF NOT EXISTS supportstream")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def features(clickhouse_server: ClickHouseServer) -> frozenset[str]:
    """What this server can do, asked of the server itself."""
    backend = NativeBackend(clickhouse_server.url)
    found: set[str] = set()
    try:
        probes: dict[str, Callable[[], object]] = {
            "DateTime64": lambda: backend.query(
                "SELECT toDateTime64('2026-01-01 00:00:00', 3) AS x"
            ),
            "query parameters": lambda: backend.query("SELECT {x:Int64} AS x", {"x": 1}),
        }
        for name, run in probes.items():
            try:
                run()
                found.add(name)
            except SinkError:
                pass
        settings = {
            r["name"]
            for r in backend.query(
                "SELECT name FROM system.settings WHERE name IN "
                "('insert_deduplication_token', 'session_timezone')"
            )
        }
        tree = {
            r["name"]
            for r in backend.query(
                "SELECT name FROM system.merge_tree_settings "
                "WHERE name = 'non_replicated_deduplication_window'"
            )
        }
        if "insert_deduplication_token" in settings:
            found.add("insert deduplication tokens")
        if {"DateTime64", "insert deduplication tokens"} <= found and tree and settings:
            found.add("the projection DDL")
    finally:
        backend.close()
    return frozenset(found)


@pytest.fixture
def backend(clickhouse_server: ClickHouseServer) -> Iterator[NativeBackend]:
    b = NativeBackend(clickhouse_server.url)
    try:
        yield b
    finally:
        b.close()


# -- the shared contract, each test with what it needs from the server -----------------------

_NEEDS: dict[str, tuple[str, ...]] = {
    "test_a_closed_backend_refuses_work": (),
    "test_bad_sql_raises_query_error_with_clickhouse_message": (),
    "test_unknown_table_is_a_query_error": (),
    "test_insert_into_a_missing_table_is_a_query_error": (),
    "test_insert_query_round_trip_keeps_unicode_nulls_and_milliseconds": ("DateTime64",),
    "test_strings_with_quotes_backslashes_and_newlines_are_data_not_sql": ("DateTime64",),
    "test_query_returns_python_values_by_column_type": ("DateTime64",),
    "test_query_formatted_renders_the_requested_format": ("DateTime64",),
    "test_query_params_are_bound_as_values": ("DateTime64", "query parameters"),
    "test_invalid_dedup_token_is_refused": ("DateTime64",),
    "test_dedup_token_makes_a_repeated_insert_write_nothing": (
        "DateTime64",
        "insert deduplication tokens",
    ),
    "test_migrate_twice_is_a_no_op": ("the projection DDL",),
}


def _contract_test(name: str) -> Callable[..., None]:
    test = getattr(contract, name)
    needs = _NEEDS[name]

    # A new function per module: marks or skips must not leak into the chdb run of the suite.
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        request: pytest.FixtureRequest = kwargs["request"]
        have: frozenset[str] = request.getfixturevalue("features")
        missing = [n for n in needs if n not in have]
        if missing:
            pytest.skip(f"this ClickHouse server lacks {', '.join(missing)}")
        for fixture in ("probe", "migrated"):
            if fixture in test.__code__.co_varnames[: test.__code__.co_argcount]:
                kwargs[fixture] = request.getfixturevalue(fixture)
        test(*args, **{k: v for k, v in kwargs.items() if k != "request"})

    original = dict(run.__annotations__)
    del run.__wrapped__  # pytest must see the wrapper's own signature
    params = [p for p in test.__code__.co_varnames[: test.__code__.co_argcount]]
    run.__signature__ = _signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = original
    return run


def _signature(params: list[str]) -> Any:
    import inspect

    # Fixtures that may be skipped before they are built (probe, migrated) are requested
    # lazily inside the test, after the feature check.
    eager = [p for p in params if p not in ("probe", "migrated")]
    return inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in [*eager, "request"]]
    )


for _name in _NEEDS:
    assert _name in contract.__all__, _name
    globals()[_name] = _contract_test(_name)
assert {n for n in contract.__all__ if n.startswith("test_")} == set(_NEEDS)


# -- the same promises on a simple table (every server version) ------------------------------

SIMPLE = ("id", "name", "note", "at", "score", "day", "tags", "version")


@pytest.fixture
def simple(backend: NativeBackend) -> Iterator[str]:
    name = f"default.native_probe_{uuid.uuid4().hex[:12]}"
    backend.execute(
        f"""CREATE TABLE {name}
        (
            id UInt32,
            name String,
            note Nullable(String),
            at DateTime('UTC'),
            score Float64,
            day Date,
            tags Array(String),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version) ORDER BY id"""
    )
    try:
        yield name
    finally:
        backend.execute(f"DROP TABLE IF EXISTS {name}")


def _row(i: int, text: str, note: str | None, version: int = 1) -> tuple[Any, ...]:
    at = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    return (i, text, note, at, i / 4, dt.date(2026, 3, 1), [text, "x"], version)


def test_rows_travel_as_data_in_native_blocks(backend: NativeBackend, simple: str) -> None:
    rows = [_row(i, text, None if i % 2 else text) for i, text in enumerate(NASTY)]
    backend.insert(simple, SIMPLE, rows)

    got = backend.query(f"SELECT * FROM {simple} ORDER BY id")

    assert [tuple(r[c] for c in SIMPLE) for r in got] == rows
    assert got[0]["at"].tzinfo is not None
    tables = {r["name"] for r in backend.query("SHOW TABLES FROM default")}
    assert simple.split(".")[1] in tables  # the hostile strings did not drop it


def test_blocks_are_compressed_with_lz4(clickhouse_server: ClickHouseServer) -> None:
    backend = NativeBackend(clickhouse_server.url)
    try:
        assert backend._client.connection.compression
        name = f"default.native_big_{uuid.uuid4().hex[:8]}"
        backend.execute(
            f"CREATE TABLE {name} (id UInt32, text String) ENGINE = MergeTree ORDER BY id"
        )
        rows = [(i, "Ёжик " * 50) for i in range(20_000)]
        backend.insert(name, ("id", "text"), rows)
        assert backend.query(f"SELECT count() AS n, uniqExact(text) AS u FROM {name}") == [
            {"n": 20_000, "u": 1}
        ]
        backend.execute(f"DROP TABLE {name}")
    finally:
        backend.close()


def test_a_redelivered_batch_collapses_under_final(backend: NativeBackend, simple: str) -> None:
    first = [_row(1, "a", None, version=1), _row(2, "b", None, version=1)]
    backend.insert(simple, SIMPLE, first)
    # at-least-once: the same rows again, and a newer version of one of them
    backend.insert(simple, SIMPLE, [*first, _row(2, "b2", "newer", version=2)])

    got = backend.query(f"SELECT id, name, note FROM {simple} FINAL ORDER BY id")
    assert got == [{"id": 1, "name": "a", "note": None}, {"id": 2, "name": "b2", "note": "newer"}]
    backend.execute(f"OPTIMIZE TABLE {simple} FINAL")
    assert backend.query(f"SELECT count() AS n FROM {simple}") == [{"n": 2}]


def test_query_formatted_renders_text_formats(backend: NativeBackend, simple: str) -> None:
    backend.insert(simple, SIMPLE, [_row(1, "Ёжик", None), _row(2, "it's\nme", "x")])

    text = backend.query_formatted(
        f"SELECT id, name, note FROM {simple} ORDER BY id", "JSONEachRow"
    )
    assert [json.loads(line) for line in text.splitlines()] == [
        {"id": 1, "name": "Ёжик", "note": None},
        {"id": 2, "name": "it's\nme", "note": "x"},
    ]
    assert backend.query_formatted(f"SELECT id FROM {simple} ORDER BY id", "CSV").split() == [
        "1",
        "2",
    ]
    with pytest.raises(QueryError, match="not available over the native protocol"):
        backend.query_formatted("SELECT 1", "Parquet")


def test_a_type_mismatch_never_reaches_the_server(backend: NativeBackend, simple: str) -> None:
    with pytest.raises(SinkError) as caught:
        backend.insert(simple, SIMPLE, [("not a number", *_row(1, "a", None)[1:])])
    assert not caught.value.retryable
    assert backend.query(f"SELECT count() AS n FROM {simple}") == [{"n": 0}]


def test_open_backend_reads_the_clickhouse_url(clickhouse_server: ClickHouseServer) -> None:
    backend = open_backend(clickhouse_server.url)
    try:
        assert isinstance(backend, NativeBackend)
        assert backend.query("SELECT 1 AS one") == [{"one": 1}]
    finally:
        backend.close()


def test_an_outage_is_retryable_and_the_backend_reconnects(tmp_path: Path) -> None:
    server = ClickHouseServer(tmp_path / "outage")
    server.start()
    backend = NativeBackend(server.url + "?connect_timeout=2&send_receive_timeout=5")
    try:
        backend.execute("CREATE TABLE default.t (id UInt32) ENGINE = MergeTree ORDER BY id")
        backend.insert("default.t", ("id",), [(1,)])
        server.stop()
        with pytest.raises(SinkError) as caught:
            backend.insert("default.t", ("id",), [(2,)])
        assert caught.value.retryable
        assert "Traceback" not in str(caught.value)
        server.start()
        backend.insert("default.t", ("id",), [(2,)])  # the same object, a new connection
        assert backend.query("SELECT count() AS n FROM default.t") == [{"n": 2}]
    finally:
        backend.close()
        server.stop()

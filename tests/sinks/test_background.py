"""Inserts in a thread of their own (sinks.background) on the embedded warehouse: the same
tables as inserting in line, nothing overtaken by a query or a compaction, and a failed
insert reported by the next call, never lost silently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sinks.backend import Backend, SinkError
from sinks.background import BackgroundInserts
from sinks.writer import TABLES, ProjectionWriter
from tests.sinks.test_writer import counts, replay_outputs


def table_contents(backend: Backend) -> dict[str, list[dict[str, Any]]]:
    return {
        t: backend.query(f"SELECT * FROM supportstream.{t} FINAL ORDER BY tuple(*)") for t in TABLES
    }


def test_background_inserts_write_the_tables_an_inline_writer_writes(warehouse: Backend) -> None:
    inline = ProjectionWriter(warehouse, batch_size=2)
    for output in replay_outputs():
        inline.add_output(output)
    inline.compact()
    expected = table_contents(warehouse)
    expected_counts = counts(warehouse)
    for table in TABLES:
        warehouse.execute(f"TRUNCATE TABLE supportstream.{table}")

    background = BackgroundInserts(warehouse)
    writer = ProjectionWriter(background, batch_size=2)  # many small batches, queued
    for output in replay_outputs():
        writer.add_output(output)
    writer.compact()  # waits for every insert before OPTIMIZE
    assert table_contents(background) == expected
    assert counts(background) == expected_counts
    assert any(n > 0 for n in expected_counts.values())


def test_a_query_waits_for_the_inserts_handed_over(warehouse: Backend) -> None:
    background = BackgroundInserts(warehouse, depth=1)
    writer = ProjectionWriter(background, batch_size=1)
    for output in replay_outputs():
        writer.add_output(output)
    writer.flush()
    # No drain() here: the query itself must see every row already handed to the thread.
    total = background.query("SELECT count() AS n FROM supportstream.events")[0]["n"]
    assert int(total) == sum(len(o.events) for o in replay_outputs())


class _Failing:
    """The real warehouse, whose second insert fails."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.inserts = 0

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        self.inserts += 1
        if self.inserts == 2:
            raise SinkError("Code: 241. memory limit exceeded", retryable=True, code=241)
        self.backend.insert(table, columns, rows, dedup_token)

    def execute(self, sql: str) -> None:
        self.backend.execute(sql)

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return self.backend.query(sql, params)

    def query_formatted(self, sql: str, fmt: str) -> str:
        return self.backend.query_formatted(sql, fmt)

    def close(self) -> None:
        pass


def test_a_failed_insert_is_raised_by_the_next_call_and_nothing_after_it_is_written(
    warehouse: Backend,
) -> None:
    failing = _Failing(warehouse)
    background = BackgroundInserts(failing)
    writer = ProjectionWriter(background, batch_size=1)
    with pytest.raises(SinkError) as caught:
        for output in replay_outputs():
            writer.add_output(output)
        writer.compact()
    assert caught.value.code == 241
    assert "memory limit" in str(caught.value)
    # The batches behind the failed one were dropped, not written out of order.
    assert sum(counts(warehouse).values()) == 1
    with pytest.raises(SinkError):
        background.execute("SELECT 1")
    background.close()  # cleanup never hides the first error by raising again


def test_a_backend_opened_by_the_thread_writes_the_same_tables(warehouse: Backend) -> None:
    # The thread opens the backend first (a replay indexes its input meanwhile); whatever
    # is handed over before it is open waits for it, and every call sees it open.
    opened: list[str] = []

    def opener() -> Backend:
        opened.append("opened")
        return warehouse

    background = BackgroundInserts.opening(opener)
    writer = ProjectionWriter(background, batch_size=2)
    for output in replay_outputs():
        writer.add_output(output)
    writer.compact()
    assert opened == ["opened"] and background.backend is warehouse
    assert counts(background) == counts(warehouse)
    assert sum(counts(background).values()) > 0


def test_a_backend_that_fails_to_open_is_reported_by_the_next_call_and_close_is_quiet() -> None:
    def opener() -> Backend:
        raise SinkError("the embedded warehouse at /x is in use by another process (pid 1)")

    background = BackgroundInserts.opening(opener)
    with pytest.raises(SinkError, match="in use by another process"):
        background.drain()
    with pytest.raises(SinkError, match="in use by another process"):
        background.insert("events", ["event_id"], [["e-1"]])
    with pytest.raises(SinkError, match="in use by another process"):
        background.backend  # noqa: B018
    background.close()  # nothing to close, and no second report of the failure

"""The production path against the reference: the same generated week through ``replay`` and
through raw topic -> Faust workers -> sink must give identical tables. Real processes on a
real Kafka-protocol broker (noida-db): ``supportstream migrate``, ``publish``, ``worker`` and
``sink``, configured by environment as an operator would.

The week is published before the workers start: the workers' wall clock would otherwise fire
the historical week's timers between records (live mode, CONTRACT §3), which replay does not.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import Broker
from tests.support.pipeline import DUPLICATES, Pipeline, dump, replay, wait_until, write_week

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_week(tmp_path_factory.mktemp("scenario") / "week.jsonl", tickets=60)


@pytest.fixture(scope="module")
def reference(week: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    warehouse = tmp_path_factory.mktemp("replay") / "warehouse"
    replay(week, warehouse)
    tables = dump(warehouse)
    assert len(tables["tickets"]) >= 50
    assert any(r["status"] == "breached" for r in tables["sla_metrics"])
    return tables


def _prepare(pipeline: Pipeline, week: Path) -> int:
    assert "ClickHouse schema" in pipeline.run("migrate")
    assert "already there" in pipeline.run("migrate")  # safe to run twice
    return int(pipeline.run("publish", "--input", str(week)).split()[1])


SECTION_6 = (
    "supportstream_contacts_total",
    "supportstream_tickets_opened_total",
    "supportstream_sla_breaches_total",
    "supportstream_sla_warnings_total",
    "supportstream_sla_active_cycles",
    "supportstream_sla_fulfilment_business_seconds",
    "supportstream_dead_letters_total",
    "supportstream_sink_rows_total",
    "supportstream_event_lag_seconds",
)


def _finish(pipeline: Pipeline) -> dict[str, Any]:
    """Wait for the sink to go idle (it exits, compacting), stop the workers, read tables."""
    sink = next(p for p in pipeline.processes if p.args[1] == "sink")  # type: ignore[index]
    try:
        assert pipeline.wait(sink, timeout=150) == 0
    finally:
        pipeline.stop_all()
    tables = dump(pipeline.warehouse)
    duplicates = dump(pipeline.warehouse, DUPLICATES)
    assert {name: rows[0]["n"] for name, rows in duplicates.items()} == dict.fromkeys(DUPLICATES, 0)
    return tables


def _assert_identical(got: dict[str, Any], want: dict[str, Any]) -> None:
    for table in ("tickets", "sla_metrics", "contact_reasons_daily", "events", "dead_letters"):
        assert len(got[table]) == len(want[table]), table
        for g, w in zip(got[table], want[table], strict=True):
            assert g == w, table


def test_one_worker_computes_what_replay_computes(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap)
    _prepare(pipeline, week)
    worker = pipeline.worker()
    sink = pipeline.sink()

    # The running worker serves the metrics of CONTRACT §6, and they move with the week.
    def counted(process: Any, name: str) -> float:
        found = re.findall(
            rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", pipeline.scrape(process), re.M
        )
        return sum(float(value) for value in found)

    assert wait_until(lambda: counted(worker, "supportstream_tickets_opened_total") > 0, timeout=90)
    page = pipeline.scrape(worker)
    for name in SECTION_6:
        assert re.search(rf"^# TYPE {name} ", page, re.M), name
    assert counted(worker, "supportstream_contacts_total") > 0
    assert wait_until(lambda: counted(sink, "supportstream_sink_rows_total") > 0, timeout=90)

    _assert_identical(_finish(pipeline), reference)


def _parsed(pipeline: Pipeline, process: Any) -> dict[int, float]:
    """Raw messages the worker parsed, by raw partition (its /metrics)."""
    found = re.findall(
        r'^supportstream_intake_records_total\{partition="(\d+)"\} ([0-9.e+-]+)$',
        pipeline.scrape(process),
        re.M,
    )
    return {int(partition): float(count) for partition, count in found}


def test_two_workers_split_the_raw_partitions_and_agree_with_replay(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap, partitions=3)
    records = _prepare(pipeline, week)
    first, second = pipeline.worker(), pipeline.worker()
    pipeline.sink()

    def parsed() -> tuple[dict[int, float], dict[int, float]]:
        return _parsed(pipeline, first), _parsed(pipeline, second)

    assert wait_until(lambda: sum(map(sum, (p.values() for p in parsed()))) >= records, 120)
    by_first, by_second = parsed()
    print(f"raw partitions parsed: first worker {by_first}, second {by_second}")
    # Both workers parse, each its own raw partitions, and together all of them.
    assert sum(by_first.values()) > 0 and sum(by_second.values()) > 0
    assert set(by_first) | set(by_second) == {0, 1, 2}

    _assert_identical(_finish(pipeline), reference)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_killed_worker_resumes_from_offsets_and_changelog(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path, store: str
) -> None:
    """With ``rocksdb://`` the restarted worker finds the table on its disk as the killed one
    left it, and reads only the changelog's tail; with ``memory://`` it reads it all."""
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap)
    records = _prepare(pipeline, week)
    first = pipeline.worker(store)
    sink = pipeline.sink(idle_s=20)
    # Killed (no goodbye, no final commit) once the desk has committed part of the week: the
    # parse stage is far ahead by then, so its entries wait on desk-input, some applied.
    desk_input = pipeline.topic("desk-input")
    assert wait_until(lambda: pipeline.committed(desk_input) > 0, timeout=60, step=0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    committed = pipeline.committed(desk_input)
    # The broker forgets a member only when it leaves: restart it, as an operator's broker
    # would expire the dead member's session.
    kafka_broker.restart()
    pipeline.worker(store)

    tables = _finish(pipeline)

    assert sink.returncode == 0
    if store == "rocksdb://":  # the table lived on disk, where the restarted worker found it
        assert (tmp_path / "state" / "v1" / "tables" / "desk-state-0.db" / "CURRENT").is_file()
    print(f"killed at desk-input offset {committed}; {records} records")
    assert 0 < committed < records
    _assert_identical(tables, reference)

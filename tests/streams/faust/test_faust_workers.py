"""The production path against the reference: the same generated week through ``replay`` and
through raw topic -> Faust workers -> sink must give identical tables. Real processes on a
real Kafka-protocol broker (noida-db): ``supportstream migrate``, ``publish``, ``worker`` and
``sink``, configured by environment as an operator would.

The week is published before the workers start: the workers' wall clock would otherwise fire
the historical week's timers between records (live mode, CONTRACT §3), which replay does not.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from processors.native import describe
from schemas.codec import CODEC
from tests.support.broker import Broker
from tests.support.pipeline import (
    DUPLICATES,
    RULES,
    VIEWS,
    Pipeline,
    dump,
    replay,
    wait_until,
    write_week,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every worker and sink a test started is stopped when it ends, passed or failed (a
    failed assertion before ``_finish`` left them running, busy with a broker gone)."""
    created: list[Pipeline] = []
    original = Pipeline.__init__

    def register(self: Pipeline, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(Pipeline, "__init__", register)
    yield
    for pipeline in created:
        for process in pipeline.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_week(tmp_path_factory.mktemp("scenario") / "week.jsonl", tickets=60)


@pytest.fixture(scope="module")
def reference(week: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    warehouse = tmp_path_factory.mktemp("replay") / "warehouse"
    replay(week, warehouse)
    tables = {**dump(warehouse), **dump(warehouse, VIEWS)}
    assert len(tables["tickets"]) >= 50
    assert any(r["status"] == "breached" for r in tables["sla_metrics"])
    # the week's traffic holds QA reviews and surveys attributed to agents (CONTRACT §7)
    assert tables["qa_reviews"]
    assert any(r["most_active_agent"] for r in tables["tickets"])
    assert any(
        r["event_type"] == "survey.answered" and '"agent_id":""' not in r["data"]
        for r in tables["events"]
    )
    for view in ("agent_daily", "qa_sample", "qa_agent_weekly", "promises_daily", "csat_daily"):
        assert tables[view], view  # the comparisons below compare something
    return tables


def _prepare(pipeline: Pipeline, week: Path) -> int:
    # with the workers' rules: the views' days in their reporting time zone, as replay's
    assert "ClickHouse schema" in pipeline.run("migrate", "--rules", str(RULES))
    assert "already there" in pipeline.run("migrate", "--rules", str(RULES))  # safe twice
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
    tables = {**dump(pipeline.warehouse), **dump(pipeline.warehouse, VIEWS)}
    duplicates = dump(pipeline.warehouse, DUPLICATES)
    assert {name: rows[0]["n"] for name, rows in duplicates.items()} == dict.fromkeys(DUPLICATES, 0)
    return tables


def _assert_identical(got: dict[str, Any], want: dict[str, Any]) -> None:
    for table in (
        "tickets",
        "sla_metrics",
        "contact_reasons_daily",
        "events",
        "dead_letters",
        "qa_reviews",
        *VIEWS,
    ):
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

    # CONTRACT §7: the week's promises and its outage incident came out the same (the tickets
    # and events above), and every acknowledgement was published on `acknowledgements`, keyed
    # by conversation, for the auto-reply gateway.
    assert any(t["incident_id"] for t in reference["tickets"])
    assert all(t["promised_by"] is not None for t in reference["tickets"])
    acknowledged = {
        (e["conversation_id"], e["event_id"])
        for e in reference["events"]
        if e["event_type"] == "ticket.acknowledged"
    }
    topic = pipeline.env["SUPPORTSTREAM_TOPIC_PREFIX"] + "acknowledgements"
    published = {(key, event.event_id) for key, event in _acknowledgements(kafka_broker, topic)}
    assert published == acknowledged


def _acknowledgements(broker: Broker, topic: str) -> list[tuple[str, Any]]:
    """Every message of the acknowledgements topic: (key, the decoded event)."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[tuple[str, Any]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=300).values():
                out.extend((m.key.decode(), CODEC.decode_event(m.value)) for m in messages)
        return out
    finally:
        consumer.close()


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
    """With ``memory://`` the restarted worker rebuilds the table from the changelog; with
    ``rocksdb://`` too, after discarding what the killed worker left on disk (a local store
    can be ahead of its changelog after a crash, see ``streams.faust_app``)."""
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
    if store == "rocksdb://":  # the table lives on disk, rebuilt there after the crash
        assert (tmp_path / "state" / "v1" / "tables" / "desk-state-0.db" / "CURRENT").is_file()
        assert "did not stop cleanly" in (tmp_path / "worker-3.log").read_text()
    print(f"killed at desk-input offset {committed}; {records} records")
    assert 0 < committed < records
    _assert_identical(tables, reference)


@pytest.mark.parametrize("standby", ["1", "0"])
def test_the_desk_fails_over_when_its_worker_is_killed(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path, standby: str
) -> None:
    """Two workers; the one running the desk is SIGKILLed as soon as it has applied records.
    The other takes the desk (its standby table, the changelog; with
    ``SUPPORTSTREAM_STANDBY_REPLICAS=0`` the whole changelog) and the dead worker's raw
    partitions, and ClickHouse ends identical to replay. (No replacement joins: noida-db can
    leave a group stuck in a rebalance when a member joins while another recovers; the
    killed-worker test above covers a worker that is restarted.) The language model is
    loaded by a worker holding the desk or its standby, not by one that only parses."""
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap, partitions=3)
    pipeline.env["SUPPORTSTREAM_STANDBY_REPLICAS"] = standby
    _prepare(pipeline, week)
    workers = [pipeline.worker(), pipeline.worker()]
    pipeline.sink(idle_s=20)

    def total(process: Any, metric: str) -> float:
        found = re.findall(rf"^{metric}\{{[^}}]*\}} ([0-9.e+-]+)$", pipeline.scrape(process), re.M)
        return sum(float(value) for value in found)

    def opened(process: Any) -> float:
        return total(process, "supportstream_tickets_opened_total")

    def parsed(process: Any) -> float:
        return total(process, "supportstream_intake_records_total")

    desks: list[Any] = []

    def desk_found() -> bool:
        desks[:] = [w for w in workers if opened(w) > 0]
        return bool(desks)

    assert wait_until(desk_found, timeout=90, step=0.05)
    (desk,) = desks  # one worker runs the desk
    (other,) = [w for w in workers if w is not desk]
    assert "language model loading" in pipeline.log(desk)
    # A standby copy of the table is the desk's too; without one the other worker only parses.
    if standby == "1":
        assert wait_until(lambda: "language model loading" in pipeline.log(other), timeout=60)
        # It follows the desk's changelog one fetch at a time (faust_port.install_lean_standby).
        following = "standby table follows its changelog in fetched batches"
        assert wait_until(lambda: following in pipeline.log(other), timeout=60, step=0.05)
    else:
        assert wait_until(lambda: parsed(other) > 0, timeout=60)
        assert "language model loading" not in pipeline.log(other)
    desk.send_signal(signal.SIGKILL)
    desk.wait(timeout=10)
    kafka_broker.restart()  # as a real broker would expire the dead member

    _assert_identical(_finish(pipeline), reference)
    assert "language model loading" in pipeline.log(other)  # it took the desk over


def _end(broker: Broker, topic: str) -> int:
    """The end offset of partition 0 of ``topic``."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def _recoveries(pipeline: Pipeline, process: Any) -> list[dict[str, Any]]:
    """The worker's log lines saying a table partition it restores as active has recovered
    (``faust_port.MemoryStoreWithOffsets``): where it resumed, how much it read."""
    lines = [line for line in pipeline.log(process).splitlines() if '"table recovered"' in line]
    return [json.loads(line[line.index("{") :]) for line in lines]


def test_a_worker_joining_does_not_make_the_desk_read_its_changelog_again(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """Issue #12: the desk's worker, its table built from the whole week, keeps the desk when
    a second worker joins; the rebalance's recovery resumes where its store is and reads at
    most a few changelog messages, not the hundreds it holds (Faust's memory store answered
    no offset, and every rebalance read the whole changelog again). The tables still end
    identical to replay."""
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap, partitions=3)
    records = _prepare(pipeline, week)
    first = pipeline.worker()
    pipeline.sink(idle_s=20)
    desk_input = pipeline.topic("desk-input")
    changelog = f"{pipeline.group}-desk-state-changelog"

    def applied() -> bool:
        end = _end(kafka_broker, desk_input)
        return pipeline.committed(pipeline.topic("raw-contacts")) >= records and (
            end > 0 and pipeline.committed(desk_input) >= end
        )

    assert wait_until(applied, timeout=120, step=0.2)
    assert wait_until(lambda: len(_recoveries(pipeline, first)) == 1, timeout=30)
    (started,) = _recoveries(pipeline, first)
    assert started["read"] == 0 and started["resumed_from"] is None  # a new changelog
    held = _end(kafka_broker, changelog)
    assert held > 500  # the week's state: what a full replay would read again

    second = pipeline.worker()
    assert wait_until(lambda: len(_recoveries(pipeline, first)) >= 2, timeout=90), pipeline.log(
        first
    )[-3000:]
    joined = _recoveries(pipeline, first)[1]
    print(f"changelog {held} messages; the desk's recovery at the join: {joined}")
    assert joined["partition"] == f"{changelog}/0"
    assert joined["resumed_from"] >= held - 10  # where its store was
    assert joined["read"] <= 10  # not the changelog again
    assert _recoveries(pipeline, second) == []  # the desk stayed where it was

    _assert_identical(_finish(pipeline), reference)


def test_a_committed_offset_ahead_of_the_desk_s_table_is_read_again(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """The desk's table, not the group's committed offset, says which inputs it applied. Here
    the committed offset of desk-input is ahead of a table that applied nothing (as when a
    worker dies between committing and its changelog reaching the broker): the desk reads
    desk-input again from its own position, and nothing is skipped."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap)
    _prepare(pipeline, week)
    ahead = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=pipeline.group,
        enable_auto_commit=False,
    )
    try:
        tp = TopicPartition(pipeline.topic("desk-input"), 0)
        ahead.commit({tp: OffsetAndMetadata(25, "", -1)})  # 25 inputs never applied
        assert ahead.committed(tp) == 25
    finally:
        ahead.close(autocommit=False)
    worker = pipeline.worker()
    pipeline.sink()

    tables = _finish(pipeline)

    log = pipeline.log(worker)
    assert "desk-input is ahead of the desk's table" in log, worker.args
    assert "worker starting" in log and describe() in log  # how its domain runs, said once
    _assert_identical(tables, reference)


def test_sigterm_under_load_stops_cleanly(kafka_broker: Broker, tmp_path: Path) -> None:
    """An operator's SIGTERM (a deploy, a scale-down) while the worker is busy with a
    backlog: it stops cleanly, exit 0, with no ``CRITICAL`` crash traceback in its log, and
    what it committed is a prefix of the week (a restarted worker goes on from there)."""
    week = write_week(tmp_path / "busy.jsonl", tickets=600, seed=3)
    pipeline = Pipeline(tmp_path / "deployment", kafka_broker.bootstrap)
    records = _prepare(pipeline, week)
    worker = pipeline.worker()
    raw = pipeline.topic("raw-contacts")
    # Busy: the intake has committed part of the backlog, not all of it.
    assert wait_until(lambda: pipeline.committed(raw) > 0, timeout=90, step=0.05)
    worker.send_signal(signal.SIGTERM)
    code = pipeline.wait(worker, timeout=60)

    log = (tmp_path / "deployment" / "worker-1.log").read_text(errors="replace")
    committed = pipeline.committed(raw)
    print(f"stopped with {committed} of {records} raw records committed")
    assert code == 0, log[-3000:]
    assert "CRITICAL" not in log and "crash" not in log.lower(), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "\x1b[" not in log  # no terminal control codes in a log that is not a terminal


def test_a_partition_read_to_its_end_is_marked_at_once_not_at_the_next_tick(
    kafka_broker: Broker, week: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """The intake marks a raw partition its batch read to the end as soon as it has forwarded
    the batch: the merge lets the last entries of every partition through without the
    wall-clock timer's mark. With the timer a minute away, the whole week is applied and
    stored all the same, long before it (its wall-clock timers do not fire: the tickets and
    their contacts are compared, not their SLA cycles)."""
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap, partitions=3)
    _prepare(pipeline, week)
    started = time.monotonic()
    pipeline.worker("memory://", "--tick-interval", "60")
    pipeline.sink(idle_s=8)

    tables = _finish(pipeline)

    assert time.monotonic() - started < 60  # the timer never ran
    got_tickets = [(r["ticket_id"], r["channel"], r["opened_at"]) for r in tables["tickets"]]
    want_tickets = [(r["ticket_id"], r["channel"], r["opened_at"]) for r in reference["tickets"]]
    assert got_tickets == want_tickets

    def received(tables: dict[str, Any]) -> list[Any]:
        return [r for r in tables["events"] if r["event_type"] == "contact.received"]

    assert received(tables) == received(reference)

"""The sink consumer's delivery rules, on the embedded warehouse with a scripted source:
rows are stored before their offsets are committed, an outage is waited out without loss,
redelivery writes nothing new, and a message that cannot be read becomes a dead letter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import Output
from processors.rules import load_rules
from sinks.backend import Backend, SinkError
from sinks.consumer import Backoff, SinkConsumer, SourceRecord
from sinks.writer import ProjectionWriter
from streams.faust_runner import output_messages
from streams.local import LocalRunner, replay_file

RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.demo.yaml"


class ScriptedSource:
    def __init__(self, records: Sequence[SourceRecord], log: list[str]) -> None:
        self.records = list(records)
        self.log = log
        self.committed: dict[tuple[str, int], int] = {}
        self.alive = 0

    def poll(self, timeout_s: float, max_records: int) -> Sequence[SourceRecord]:
        taken, self.records = self.records[:max_records], self.records[max_records:]
        return taken

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.log.append(f"commit {sorted(offsets.items())}")
        self.committed.update(offsets)

    def keep_alive(self) -> None:
        self.alive += 1

    def caught_up(self) -> bool:
        return not self.records

    def close(self) -> None:
        pass


class Recording:
    """A backend proxy that logs inserts and can fail the next ``fail`` of them."""

    def __init__(self, inner: Backend, log: list[str], fail: int = 0, retryable: bool = True):
        self.inner, self.log, self.fail, self.retryable = inner, log, fail, retryable

    def insert(self, table: str, columns: Any, rows: Any, dedup_token: str | None = None) -> None:
        if self.fail:
            self.fail -= 1
            self.log.append(f"failed {table}")
            raise SinkError("connection refused", retryable=self.retryable)
        self.inner.insert(table, columns, rows, dedup_token)
        self.log.append(f"insert {table} {len(rows)}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> list[SourceRecord]:
    path = tmp_path_factory.mktemp("week") / "week.jsonl"
    generate_week(datetime(2026, 9, 7, tzinfo=UTC), seed=3, tickets=15).write_jsonl(path)
    outputs: list[Output] = []

    class Collect:
        def add_output(self, output: Output) -> None:
            outputs.append(output)

        def flush(self) -> int:
            return 0

    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("k"), Collect())  # type: ignore[arg-type]
    replay_file(runner, path)
    offsets: dict[tuple[str, int], int] = {}
    records = []
    for output in outputs:
        for topic, key, value in output_messages(output):
            partition = hash(key) % 3
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            records.append(SourceRecord(topic, partition, offset, value))
    return records


def _counts(backend: Backend, final: bool) -> dict[str, int]:
    suffix = " FINAL" if final else ""
    return {
        table: int(backend.query(f"SELECT count() AS n FROM supportstream.{table}{suffix}")[0]["n"])
        for table in ("events", "tickets", "sla_metrics", "dead_letters")
    }


def test_rows_are_stored_before_their_offsets_are_committed(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    log: list[str] = []
    source = ScriptedSource(messages, log)
    sink = SinkConsumer(source, ProjectionWriter(Recording(warehouse, log)), batch_rows=100)  # type: ignore[arg-type]

    sink.run(idle_exit_s=0)

    assert log and log[-1].startswith("commit")
    # Every commit follows at least one insert since the previous commit.
    since_commit = 0
    for line in log:
        if line.startswith("commit"):
            assert since_commit > 0
            since_commit = 0
        else:
            since_commit += 1
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic, m.partition)] = m.offset + 1
    assert source.committed == last
    counts = _counts(warehouse, final=True)
    assert counts["events"] == sum(1 for m in messages if m.topic == "domain-events")
    assert counts["tickets"] >= 15


def test_an_outage_is_waited_out_and_nothing_is_committed_meanwhile(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    log: list[str] = []
    source = ScriptedSource(messages[:50], log)
    slept: list[float] = []
    sink = SinkConsumer(
        source,
        ProjectionWriter(Recording(warehouse, log, fail=4)),  # type: ignore[arg-type]
        batch_rows=1000,
        backoff=Backoff(first_s=0.5, max_s=2.0),
        sleep=slept.append,
    )

    sink.run(idle_exit_s=0)

    assert slept == [0.5, 1.0, 2.0, 2.0]
    assert source.alive == 4
    assert [line for line in log if line.startswith(("failed", "commit"))][:4] == [
        "failed supportstream.events"
    ] * 4
    assert sum(1 for line in log if line.startswith("commit")) == 1
    assert _counts(warehouse, final=True)["events"] == sum(
        1 for m in messages[:50] if m.topic == "domain-events"
    )


def test_a_broken_schema_stops_the_sink_without_committing(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    log: list[str] = []
    source = ScriptedSource(messages[:10], log)
    sink = SinkConsumer(
        source,
        ProjectionWriter(Recording(warehouse, log, fail=1, retryable=False)),  # type: ignore[arg-type]
        sleep=lambda s: None,
    )
    with pytest.raises(SinkError):
        sink.run(idle_exit_s=0)
    assert source.committed == {}


def test_redelivery_in_other_batches_writes_each_fact_once(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    log: list[str] = []
    first = SinkConsumer(ScriptedSource(messages, log), ProjectionWriter(warehouse), batch_rows=64)
    first.run(idle_exit_s=0)
    once = _counts(warehouse, final=True)
    # A crash before the commit: everything again, cut into other batches, plus a tail again.
    again = SinkConsumer(
        ScriptedSource(messages + messages[-40:], log), ProjectionWriter(warehouse), batch_rows=97
    )
    again.run(idle_exit_s=0)

    assert _counts(warehouse, final=True) == once
    ProjectionWriter(warehouse).compact()
    assert _counts(warehouse, final=False) == once


def test_an_unreadable_message_becomes_a_dead_letter(warehouse: Backend) -> None:
    log: list[str] = []
    source = ScriptedSource([SourceRecord("domain-events", 0, 7, b"\x00garbage")], log)
    SinkConsumer(source, ProjectionWriter(warehouse)).run(idle_exit_s=0)

    rows = warehouse.query("SELECT source, reason, ref FROM supportstream.dead_letters")
    assert len(rows) == 1
    assert rows[0]["source"] == "sink" and rows[0]["ref"] == "domain-events/0/7"
    assert "undecodable domain-events message" in rows[0]["reason"]
    assert source.committed == {("domain-events", 0): 8}


def test_a_revocation_stores_what_was_taken_and_commits_nothing(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    """The Kafka client calls the revocation hook on its network thread, where no commit can
    be made: the rows taken are stored, the offsets left to the partitions' next owner, whose
    second copy writes nothing new."""
    log: list[str] = []
    source = ScriptedSource(messages[:40], log)
    sink = SinkConsumer(source, ProjectionWriter(Recording(warehouse, log)), batch_rows=1000)
    sink.step()  # takes the 40 messages, below the batch size: nothing stored yet
    assert not any(line.startswith("insert") for line in log)

    sink.on_revoked()

    assert any(line.startswith("insert") for line in log)
    assert source.committed == {}
    stored = _counts(warehouse, final=True)
    # The next owner reads them again from the last commit (none): same facts, nothing new.
    SinkConsumer(ScriptedSource(messages[:40], []), ProjectionWriter(warehouse)).run(idle_exit_s=0)
    assert _counts(warehouse, final=True) == stored


def test_rows_inserted_while_messages_are_taken_are_counted_by_the_next_flush(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    # A table whose buffer fills inserts before the checkpoint: its rows are in the flush's
    # report (the log line, the stats, the metrics) all the same.
    events = sum(1 for m in messages if m.topic == "domain-events")
    writer = ProjectionWriter(warehouse, batch_size=7)
    flushed: list[Mapping[str, int]] = []
    sink = SinkConsumer(
        ScriptedSource(messages, []), writer, batch_rows=len(messages), on_flush=flushed.append
    )

    stats = sink.run(idle_exit_s=0)

    assert stats.rows == writer.rows_written
    assert stats.rows["events"] == events
    assert sum(f.get("events", 0) for f in flushed) == events


class PacedSource(ScriptedSource):
    """Brings ``per_poll`` messages a poll until it has none left, then nothing; each poll
    takes ``poll_s`` of the injected clock."""

    def __init__(
        self, records: Sequence[SourceRecord], log: list[str], per_poll: int, clock: list[float]
    ) -> None:
        super().__init__(records, log)
        self.per_poll, self.clock = per_poll, clock

    def poll(self, timeout_s: float, max_records: int) -> Sequence[SourceRecord]:
        self.clock[0] += 0.1
        return super().poll(timeout_s, min(max_records, self.per_poll))


def _paced_sink(
    warehouse: Backend, records: Sequence[SourceRecord], per_poll: int, linger_s: float
) -> tuple[SinkConsumer, list[str], list[float]]:
    """A sink over a ``PacedSource``, with its log of commits and its clock."""
    log: list[str] = []
    clock = [0.0]
    source = PacedSource(records, log, per_poll=per_poll, clock=clock)
    sink = SinkConsumer(
        source,
        ProjectionWriter(warehouse),
        batch_rows=10_000,
        linger_s=linger_s,
        clock=lambda: clock[0],
    )
    return sink, log, clock


def test_a_burst_is_stored_once_the_stream_goes_quiet_not_after_the_linger(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    sink, log, clock = _paced_sink(warehouse, messages[:60], per_poll=60, linger_s=60)

    assert sink.step() == 60 and not log  # taken; more may come
    assert sink.step() == 0  # a poll brought nothing: the burst is over, store it now
    assert log == [f"commit {sorted(_last_offsets(messages[:60]).items())}"]
    assert clock[0] < 60  # long before the linger


def test_a_steady_trickle_waits_for_the_linger_and_is_stored_in_one_batch(
    warehouse: Backend, messages: list[SourceRecord]
) -> None:
    sink, log, _ = _paced_sink(warehouse, messages[:30], per_poll=1, linger_s=0.85)

    steps = [sink.step() for _ in range(9)]  # one message a poll, 0.1 s apart
    assert steps == [1] * 9 and not log  # the oldest (0.1 s) has waited 0.8 s
    assert sink.step() == 1
    # At the tenth poll (1.0 s) the oldest has waited out its linger: one commit for all ten,
    # not ten commits of one.
    assert log == [f"commit {sorted(_last_offsets(messages[:10]).items())}"]


def _last_offsets(records: Sequence[SourceRecord]) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for m in records:
        last[(m.topic, m.partition)] = m.offset + 1
    return last

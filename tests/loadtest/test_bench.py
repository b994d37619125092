"""The benchmark harness runs end to end at a tiny size and reports what BENCHMARKS.md shows.

No timing thresholds: the machine is shared. These tests check the report's structure and that
its values are sane (counts add up, sizes and times are positive, variants agree on the work).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtest.bench import (
    CODEC_KINDS,
    OPERATIONS,
    PARSE_STAGE,
    PRODUCTION_STAGES,
    RAW_PARTITIONS,
    BookResult,
    CodecResult,
    ReplayResult,
    Report,
    bench_book,
    bench_codec,
    bench_production,
    main,
    render_markdown,
    run_benchmark,
)
from loadtest.generator import generate_week

TICKETS = 2000


@pytest.fixture(scope="module")
def report() -> Report:
    return run_benchmark([TICKETS], ops=400, replay_tickets=20, replay_repeats=1, book_repeats=2)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_the_book_holds_two_open_cycles_per_ticket(report: Report) -> None:
    [book] = report.book
    assert book.tickets == TICKETS
    assert book.cycles == 2 * TICKETS
    assert book.rss_after >= book.rss_before > 0
    assert book.peak_rss >= book.rss_after


def test_memory_per_cycle_is_measured_by_tracemalloc(report: Report) -> None:
    [book] = report.book
    assert book.traced_bytes is not None and book.neutral_traced_bytes is not None
    per_cycle = book.traced_per_cycle
    assert per_cycle is not None
    # A cycle is a few Python objects: hundreds of bytes, not tens and not kilobytes.
    assert 100 < per_cycle < 2000
    # The book holds more than a bare dict + heap entry per ticket.
    assert book.traced_bytes > book.neutral_traced_bytes > 0


def test_every_operation_has_a_cost_and_a_load_normalised_ratio(report: Report) -> None:
    [book] = report.book
    assert set(book.ns) == set(book.units) == set(OPERATIONS)
    for name in OPERATIONS:
        assert _positive(book.ns[name]), name
        assert _positive(book.units[name]), name
    assert _positive(book.unit_ns) and _positive(book.neutral_build_ns)
    assert book.fired >= min(400, TICKETS) // 2  # each advance fired at least one timer


def test_the_replay_variants_do_the_same_work(report: Report) -> None:
    assert [r.variant for r in report.replay] == ["no-op writer", "discarding backend", "chdb"]
    first = report.replay[0]
    assert first.records == report.lines > 0
    assert first.events > first.records // 2
    for r in report.replay:
        assert (r.records, r.events) == (first.records, first.events), r.variant
        assert _positive(r.seconds) and _positive(r.json_seconds)
        assert _positive(r.records_per_s) and _positive(r.vs_json)


def _same_work(rows: Sequence[ReplayResult]) -> None:
    """The production rows: every stage took the same records; every desk and runner row
    emitted the same domain events (the parse stage emits none)."""
    assert [r.variant for r in rows] == list(PRODUCTION_STAGES)
    parse, *applying = rows
    assert parse.variant == PARSE_STAGE and parse.events == 0
    for r in rows:
        assert r.records == parse.records > 0, r.variant
        assert _positive(r.seconds) and _positive(r.json_seconds), r.variant
        assert _positive(r.records_per_s) and _positive(r.us_per_record), r.variant
        assert _positive(r.vs_json), r.variant
    assert len({r.events for r in applying}) == 1
    assert applying[0].events > parse.records // 2


def test_the_production_path_stages_do_the_same_work(report: Report) -> None:
    _same_work(report.production)
    assert report.raw_partitions == RAW_PARTITIONS
    # The lines that are not records (a few malformed ones) never reach the raw topic.
    assert 0 < report.lines - report.production[0].records <= 20
    # The same records as the end-to-end replay, which also counts those lines' dead letters.
    assert report.production[1].events == report.replay[0].events


def test_bench_production_runs_in_process(tmp_path: Path) -> None:
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), 3, 10).write_jsonl(path)
    one = bench_production(path, repeats=1, partitions=1)
    three = bench_production(path, repeats=1, partitions=3)
    _same_work(one)
    _same_work(three)
    # However the records are spread over raw partitions, the desk applies them all the same.
    assert [r.events for r in one] == [r.events for r in three]


def test_the_codec_section_encodes_every_output_of_the_week_both_ways(report: Report) -> None:
    codec = report.codec
    assert isinstance(codec, CodecResult)
    assert list(codec.counts) == list(CODEC_KINDS)
    # The desk's domain events are the replay's; a snapshot per change, so at least one per
    # ticket.
    assert codec.counts["domain events"] == report.replay[0].events
    assert codec.counts["ticket snapshots"] >= 20 and codec.counts["cycle snapshots"] > 0
    assert codec.fallbacks == 0  # the desk's outputs all take the flat writer
    for kind in (*CODEC_KINDS, None):
        assert _positive(codec.fastavro_us(kind)) and _positive(codec.flat_us(kind))
        assert _positive(codec.speedup(kind))
    total = codec.fastavro_us() * codec.messages
    assert math.isclose(total, sum(codec.fastavro_seconds.values()) * 1e6)


def test_bench_codec_runs_in_process(tmp_path: Path) -> None:
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), 3, 10).write_jsonl(path)
    result = bench_codec(path, repeats=1)
    assert result.messages == sum(result.counts.values()) > 0
    assert result.fallbacks == 0


def test_the_markdown_report_has_its_tables(report: Report) -> None:
    text = render_markdown(report)
    for heading in (
        "# Benchmarks",
        "## Headline",
        "## SLA book: memory per open cycle",
        "## SLA book: cost per event",
        "## End to end: LocalRunner replaying a generated week",
        "## Production path: parse stage and desk",
        "## Avro encoding of the desk's outputs",
        "## How to rerun",
    ):
        assert heading in text
    assert "**Production path:**" in text and "| desk's share of parse + desk |" in text
    for stage in PRODUCTION_STAGES:
        assert f"| {stage} | " in text
    assert f"| {TICKETS:,} | {2 * TICKETS:,} |" in text
    assert "| chdb |" in text and "vs JSON" in text
    assert "| domain events | " in text and "| ticket snapshots | " in text
    assert "| cycle snapshots | " in text and "| all | " in text
    assert report.machine.python in text and f"{report.machine.cores} cores" in text
    assert "nan" not in text


def test_bench_book_runs_in_process() -> None:
    result = bench_book(500, ops=100)
    assert isinstance(result, BookResult)
    assert result.cycles == 1000 and result.traced_bytes is None


def test_the_command_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    code = main(
        [
            "--sizes",
            "500",
            "--ops",
            "100",
            "--replay-tickets",
            "10",
            "--book-repeats",
            "1",
            "--no-sink",
            "--no-traced",
            "--no-codec",
            "--raw-partitions",
            "2",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "bench.json"),
        ]
    )
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert "| 500 | 1,000 |" in text and "| chdb |" not in text
    assert "## Avro encoding" not in text
    assert "over 2 raw partitions" in text and "--raw-partitions 2" in text
    assert (tmp_path / "bench.json").stat().st_size > 0

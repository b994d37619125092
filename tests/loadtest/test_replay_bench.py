"""The replay benchmark runs end to end at a tiny size and reports what BENCHMARKS.md shows."""

from __future__ import annotations

from pathlib import Path

from loadtest.replay_bench import MARK_END, MARK_START, render, run, write_section
from processors.native import describe


def test_the_replay_benchmark_measures_and_writes_its_section(tmp_path: Path) -> None:
    report = run(tickets=40, days=1, seed=1, scale=2, repeats=1)
    assert report.rerun_identical
    assert report.records > 50
    [replay] = report.replays
    assert replay.wall > 0 and replay.cpu > 0 and replay.peak_rss_mib > 50
    assert replay.worker_peak_rss_mib > 20  # the parse worker, measured apart
    assert report.insert_rows > report.records  # events, tickets, cycles: more rows than records
    assert report.json_seconds > 0 and report.insert_seconds > 0
    assert {"email", "chat", "agent"} <= set(report.parse_us)
    assert report.scaled is not None and report.scaled_records > report.records
    assert replay.domain == describe()  # what the replay imported, as this process would
    section = render(report)
    assert f"**Domain: {describe()}**" in section
    assert "records/s per CPU-second" in section
    assert "| email |" in section and "vs chat" in section
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\nother sections\n")
    write_section(target, section)
    write_section(target, section)  # a rerun replaces the section, it does not add another
    text = target.read_text()
    assert text.startswith("# Benchmarks\n\nother sections\n")
    assert text.count(MARK_START) == 1 and text.count(MARK_END) == 1

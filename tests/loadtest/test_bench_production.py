"""The end-to-end production benchmark's report: its ratios and its section of BENCHMARKS.md.
The full measurement takes minutes (`python -m loadtest.bench_production`); a small week runs
it here end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.bench_production import BEGIN, END, Figure, Report, render, write_section

ROOT = Path(__file__).resolve().parents[2]


def _report() -> Report:
    report = Report(started="2026-12-06 23:00 UTC", machine="test", load_before=(1.0, 1.0, 1.0))
    report.records, report.lines, report.command = 1000, 1002, "python -m loadtest.bench_production"
    report.figures = {
        "replay": Figure("replay", "one process", 1000, 2.0, 2.0),
        "copy": Figure("raw aiokafka copy", "copy", 1000, 0.2, 0.1, 0.1, 1000),
        "one": Figure("production path, one worker", "w+s", 1000, 3.0, 5.0, 1.0, 2500),
        "two": Figure("production path, 2 workers", "w+s", 1000, 2.5, 6.0, 1.0, 2500),
        "two-no-standby": Figure(
            "production path, 2 workers, standby replicas 0", "w+s", 1000, 2.0, 5.0, 1.0, 2500
        ),
        "sink": Figure("sink alone", "sink", 1000, 1.0, 0.8, 0.2, 2400),
        "insert": Figure("raw insert", "insert", 1000, 0.5, 0.4, rows=2400),
    }
    report.figures["one"].extra = {"worker_cpu_s": [4.0], "sink_cpu_s": 1.0, "partitions": 3}
    return report


def test_the_section_shows_every_path_and_the_ratios_the_issue_asks_for() -> None:
    text = render(_report())
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    for name in (
        "replay",
        "raw aiokafka copy",
        "one worker",
        "2 workers",
        "sink alone",
        "raw insert",
    ):
        assert name in text
    # 333 records/s against replay's 500; 5 CPU s against 2; two workers 400 against 333.
    assert "| production path (one worker) records/s vs replay's | 0.67 | at least 0.5 |" in text
    assert (
        "| production path (one worker) CPU per record vs replay's (worker + sink) | 2.50 |" in text
    )
    assert "| two workers records/s vs one worker's | 1.20 | at least 1 |" in text
    assert "| production path, 2 workers, standby replicas 0 | 1,000 | 2.0 | 500 |" in text
    assert (
        "| two workers without a standby (`SUPPORTSTREAM_STANDBY_REPLICAS=0`) records/s vs one "
        "worker's | 1.50 |  |" in text
    )
    assert "| sink alone: wall time vs raw insert | 2.00 |" in text


def test_the_section_replaces_its_old_self_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\nbefore\n\n{BEGIN}\nold figures\n{END}\n\nafter\n")
    write_section(path, render(_report()))
    text = path.read_text()
    assert "old figures" not in text and text.count(BEGIN) == 1
    assert text.startswith("# Benchmarks\n\nbefore\n\n") and text.rstrip().endswith("after")
    fresh = tmp_path / "NEW.md"
    write_section(fresh, render(_report()))
    assert fresh.read_text().startswith(BEGIN)


@pytest.mark.integration
@pytest.mark.slow
def test_the_benchmark_measures_every_path_on_a_small_week(tmp_path: Path) -> None:
    """The real benchmark, on a day of 40 tickets: a broker, replay, the raw copy, one worker
    and then two, with and without a standby (all stopped by the benchmark once everything is
    applied and stored, not left to exit by themselves), the sink alone and the raw insert,
    all measured."""
    out, figures = tmp_path / "BENCHMARKS.md", tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench_production",
            "--tickets",
            "40",
            "--days",
            "1",
            "--timeout",
            "150",
            "--out",
            str(out),
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(figures.read_text())
    assert set(measured) == {"replay", "copy", "one", "two", "two-no-standby", "sink", "insert"}
    records = measured["replay"]["records"]
    assert records > 100 and all(f["records"] == records for f in measured.values())
    assert all(measured[path]["rows"] > records for path in ("one", "two", "two-no-standby"))
    replays = measured["replay"]["extra"]["runs_wall_s"]  # 3 before the production paths, 2 after
    assert len(replays) == 5 and measured["replay"]["wall_s"] == pytest.approx(
        min(replays), abs=0.01
    )
    # the fastest of two runs, each on a fresh broker, counts
    for path in ("one", "two", "two-no-standby"):
        walls = measured[path]["extra"]["runs_wall_s"]
        assert len(walls) == 2 and measured[path]["wall_s"] == pytest.approx(min(walls), abs=0.01)
    # each path's run is also taken against the machine's speed measured just before it
    for path in ("replay", "one", "two", "two-no-standby"):
        assert measured[path]["extra"]["baseline_s"] > 0
    text = out.read_text()
    assert "| ratio, each run against the baseline measured just before it | value |" in text
    one, replay = measured["one"], measured["replay"]
    expected = (replay["wall_s"] / replay["extra"]["baseline_s"]) / (
        one["wall_s"] / one["extra"]["baseline_s"]
    )
    assert f"| production path (one worker) records/s vs replay's | {expected:.2f} |" in text
    assert "not measured" not in text

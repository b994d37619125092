"""The demo's console is for people: a dead letter is logged once, warnings are summarised
after the run on a terminal (JSON lines otherwise, or when asked), progress stays on one line,
empty sections say "none", and the run ends with the HTML report's path."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from processors.ids import Pseudonymizer
from processors.rules import load_rules
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from streams.console import Console, console_mode, demo_console
from streams.demo import report
from streams.local import LocalRunner, embedded_warehouse, replay_file
from streams.logging import configure_logging

REPO = Path(__file__).resolve().parents[2]
RULES = load_rules(REPO / "examples" / "rules.demo.yaml")
PSEUDO = Pseudonymizer.from_text("console-test-key")
ENV = {**os.environ, "SUPPORTSTREAM_PII_KEY": "console-test-key", "SUPPORTSTREAM_METRICS_PORT": "0"}
DEMO = [sys.executable, "-m", "streams.cli", "demo", "--tickets", "60"]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_each_dead_letter_is_logged_once(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        "not json at all",  # refused reading the envelope
        json.dumps(  # refused by the survey parser
            {
                "at": "2026-03-02T10:00:00Z",
                "source": "survey",
                "payload": {"conversation_id": "chat:s", "kind": "csat", "score": 9},
            }
        ),
        json.dumps(  # refused by the desk: no such conversation
            {
                "at": "2026-03-02T10:01:00Z",
                "source": "agent",
                "payload": {"type": "reply", "conversation_id": "chat:none", "agent_id": "a"},
            }
        ),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with embedded_warehouse(tmp_path / "w", RULES) as writer, capture_logs() as logs:
        runner = LocalRunner(RULES, PSEUDO, writer, logger=structlog.get_logger("t"))
        stats = replay_file(runner, source)
    letters = [line for line in logs if line["event"] == "dead letter"]
    assert sum(stats.dead_letters.values()) == 3
    assert sorted(line["ref"] for line in letters) == ["in.jsonl:1", "in.jsonl:2", "in.jsonl:3"]
    assert all(line["log_level"] == "warning" for line in letters)


def test_on_a_terminal_warnings_are_held_back_and_summarised() -> None:
    stream = io.StringIO()
    configure_logging(False, stream, level=30)
    with demo_console("console") as console:
        log = structlog.get_logger("t")
        for _ in range(3):
            log.warning("dead letter", stage="parse", source="crm", reason="unknown tier 'gold'")
        log.warning("dead letter", stage="desk", source="", reason="invalid json")
        log.error("sink flush failed", stage="sink", error="disk full")
    out = stream.getvalue()
    assert "dead letter" not in out  # summarised, not interleaved
    assert "sink flush failed" in out and not out.lstrip().startswith(
        "{"
    )  # errors: at once, readable
    summary = console.summary()
    assert summary.splitlines() == [
        "== Warnings (5) ==",
        "    3 × dead letter · crm · unknown tier 'gold'",
        "    1 × ERROR sink flush failed · disk full",
        "    1 × dead letter · invalid json",
    ]
    # The process's logging is as it was afterwards.
    structlog.get_logger("t").warning("after", x=1)
    assert json.loads(stream.getvalue().splitlines()[-1])["event"] == "after"


def test_in_json_mode_warnings_stay_json_lines_and_are_summarised_too() -> None:
    stream = io.StringIO()
    configure_logging(False, stream, level=30)
    with demo_console("json") as console:
        structlog.get_logger("t").warning("dead letter", source="vk", reason="missing field")
    line = json.loads(stream.getvalue())
    assert line["event"] == "dead letter" and line["source"] == "vk"
    assert "1 × dead letter · vk · missing field" in console.summary()
    assert Console(True).summary() == "== Warnings ==\nnone"


def test_auto_means_console_only_on_a_terminal() -> None:
    assert not console_mode("auto", io.StringIO())
    assert console_mode("console", io.StringIO())
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert console_mode("auto", tty)
            assert not console_mode("json", tty)
    finally:
        os.close(master)
        os.close(slave)


def test_empty_sections_say_none(tmp_path: Path) -> None:
    backend = ChdbBackend(tmp_path / "w")
    try:
        migrate(backend)
        text = report(backend)
    finally:
        backend.close()
    for section in ("Top contact reasons", "Tickets per channel", "Dead letters"):
        assert f"== {section} ==\nnone" in text


@pytest.mark.slow
def test_demo_in_a_log_keeps_json_lines_one_per_dead_letter(tmp_path: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--warehouse", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    letters = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert letters and all(x["event"] == "dead letter" for x in letters)
    assert len({x["ref"] for x in letters}) == len(letters)  # no record logged twice
    total = int(re.search(r"(\d+) dead letters", done.stdout).group(1))
    assert len(letters) == total
    assert "\r" not in done.stderr
    assert f"== Warnings ({total}) ==" in done.stdout
    path = Path(re.search(r"HTML report: (\S+)", done.stdout).group(1))
    assert path == (tmp_path / "demo-report.html").resolve() and path.stat().st_size > 100_000


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=ENV, cwd=cwd
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_demo_on_a_terminal_is_for_people(tmp_path: Path) -> None:
    code, out = _on_a_terminal([*DEMO, "--warehouse", str(tmp_path / "demo")], tmp_path)
    assert code == 0, out
    assert '{"' not in out  # no JSON log lines
    progress = re.findall(r"\r  (\d+) events processed", out)
    assert len(progress) >= 2  # rewritten in place...
    assert not re.search(r"events processed\r?\n\r?  \d+ events processed", out)  # ...on one line
    summary = re.search(r"== Warnings \((\d+)\) ==", out)
    assert summary and int(summary.group(1)) > 0
    assert out.index("== Dead letters ==") < summary.start() < out.index("HTML report:")
    # Asked for JSON, a terminal gets JSON lines.
    code, out = _on_a_terminal(
        [*DEMO, "--warehouse", str(tmp_path / "json"), "--log-format", "json"], tmp_path
    )
    assert code == 0, out
    assert re.search(r'^\{"stage": "(parse|desk)"', out, re.M)


@pytest.mark.slow
def test_live_demo_on_a_terminal_keeps_its_progress_on_one_line(tmp_path: Path) -> None:
    """``demo --duration`` (the live mode): the progress line is rewritten in place every
    second, the closing report follows it on a line of its own, and no JSON log line shows."""
    live = [
        sys.executable,
        "-m",
        "streams.cli",
        "demo",
        "--duration",
        "4s",
        "--warehouse",
        str(tmp_path / "live"),
    ]
    code, out = _on_a_terminal(live, tmp_path)
    assert code == 0, out
    assert '{"' not in out
    ticks = re.findall(r"\r  t\+(\d+)s: \d+ contacts, \d+ tickets, \d+ breaches", out)
    assert len(ticks) >= 2, out  # rewritten in place...
    assert [int(t) for t in ticks] == sorted(int(t) for t in ticks)
    assert not re.search(r"dead letters(\x1b\[K)?\r?\n\r?  t\+", out)  # ...never a new line
    # The last progress line is ended before the run's summary, not overwritten by it.
    assert re.search(r"dead letters\x1b\[K\r?\n\r?\n?live run: \d+ records", out), out
    assert out.index("live run:") < out.index("== Warnings") < out.index("HTML report:")

"""``streams.intake_process``: a worker's intake parsing in a child process.

The child must forward exactly what the worker's own intake forwards (``Intake.batch``), batch
after batch, for a generated week of every source, live (records dated ahead of the clock
dead-lettered) or not; a child that stops must fail the batch, never hang it or skip it; the
terminal's signals are the worker's, and closing the worker's end ends the child."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.parsing import parse_envelope
from processors.rules import load_rules
from streams.faust_app import WorkerConfig
from streams.faust_runner import encode_raw
from streams.intake import Intake, Raw, decode_inputs
from streams.intake_process import IntakeProcess, IntakeProcessError
from streams.local import LIVE_MAX_AHEAD_MS, ParseStage
from streams.settings import Settings, SettingsError

KEY = "intake-process-key"
RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.demo.yaml"


def _raws(tmp_path: Path) -> list[Raw]:
    week = generate_week(datetime(2026, 9, 7, tzinfo=UTC), seed=4, tickets=40, pii_key=KEY)
    path = tmp_path / "week.jsonl"
    week.write_jsonl(path)
    raws: list[Raw] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        offset = len(raws)
        record = parse_envelope(line, f"week:{number}", str)
        if not isinstance(record, RawRecord):  # not a record at all: never published
            continue
        if offset == 7:  # dated years ahead: a dead letter live, applied as dated otherwise
            record = replace(record, at=record.at + 4 * 365 * 86_400_000)
        raws.append((encode_raw(record, connector="t", sequence=offset), offset % 3, offset, 3, 0))
    raws.append((b"\x00not avro", 1, len(raws), 3, 1_757_000_000_000))  # unreadable: a letter
    return raws


def _batches(raws: list[Raw], size: int) -> Iterator[list[Raw]]:
    for start in range(0, len(raws), size):
        yield raws[start : start + size]


@pytest.mark.parametrize("live", [False, True])
def test_the_child_forwards_what_the_worker_s_own_intake_forwards(
    tmp_path: Path, live: bool
) -> None:
    raws = _raws(tmp_path)
    ahead = LIVE_MAX_AHEAD_MS if live else None
    own = Intake(ParseStage(Pseudonymizer.from_text(KEY), max_ahead_ms=ahead))
    child = IntakeProcess(Pseudonymizer.from_text(KEY), max_ahead_ms=ahead, debug=False)
    try:
        for batch in _batches(raws, 97):
            got = asyncio.run(child.parse(batch))
            expected = own.batch(batch)
            assert got == expected
            assert sum(got.lanes.values()) == len(batch)
    finally:
        child.close()
    # The far-dated record: a dead letter live, a record otherwise (the messages decode).
    first = [entry for value in own.batch(raws[:97]).messages for entry in decode_inputs(value)]
    reasons = [str(getattr(item, "reason", "")) for e in first for item in getattr(e, "items", ())]
    assert any("ahead of the wall clock" in reason for reason in reasons) == live


def test_a_child_that_stops_fails_the_batch_and_does_not_hang(tmp_path: Path) -> None:
    raws = _raws(tmp_path)[:50]
    child = IntakeProcess(Pseudonymizer.from_text(KEY), max_ahead_ms=None, debug=False)
    try:
        assert asyncio.run(child.parse(raws)).messages
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(IntakeProcessError, match="stopped"):
            asyncio.run(asyncio.wait_for(child.parse(raws), timeout=30))
    finally:
        child.close()


def test_the_terminal_s_signals_are_the_worker_s_and_closing_ends_the_child(
    tmp_path: Path,
) -> None:
    raws = _raws(tmp_path)[:20]
    child = IntakeProcess(Pseudonymizer.from_text(KEY), max_ahead_ms=None, debug=False)
    asyncio.run(child.parse(raws))  # started and serving: its handlers are in place
    os.kill(child.pid, signal.SIGINT)
    os.kill(child.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert asyncio.run(child.parse(raws)).messages  # still serving
    child.close()
    assert child._child.returncode == 0


def test_the_child_logs_its_dead_letters_where_the_worker_logs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    raws = _raws(tmp_path)
    child = IntakeProcess(Pseudonymizer.from_text(KEY), max_ahead_ms=None, debug=False)
    try:
        asyncio.run(child.parse(raws))
    finally:
        child.close()
    err = capfd.readouterr().err
    # The week's payloads the parsers refuse (an unknown tier, a form without its message...)
    assert '"event": "dead letter"' in err and '"ref": "raw-contacts/' in err


def test_the_intake_process_setting() -> None:
    rules = load_rules(RULES)
    pseudo = Pseudonymizer.from_text(KEY)

    def config(value: str | None) -> WorkerConfig:
        env = {} if value is None else {"SUPPORTSTREAM_INTAKE_PROCESS": value}
        return WorkerConfig.from_env(Settings.from_env({}), rules, pseudo, env=env)

    assert config(None).intake_process == ((os.cpu_count() or 1) >= 2)
    assert config("0").intake_process is False and config("off").intake_process is False
    assert config("1").intake_process is True and config("ON").intake_process is True
    with pytest.raises(SettingsError, match="SUPPORTSTREAM_INTAKE_PROCESS='sometimes'"):
        config("sometimes")

"""The parallel parse stage changes nothing: a replay whose records are parsed in a worker
process hands the desk the same items in the same order, so everything it emits is the same
as when the runner parses them itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.model import Output
from processors.rules import load_rules
from processors.timeutil import parse_rfc3339
from streams.local import LocalRunner, replay_file
from streams.parse_pool import CHUNK, ParsePool, ParseWorkerError
from streams.replay_input import index_records

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.demo.yaml"


class Collect:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def flush(self) -> int:
        return 0


def run(path: Path, workers: int, until: int | None = None) -> tuple[list[Output], str]:
    collect = Collect()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("pool-key"), collect)  # type: ignore[arg-type]
    stats = replay_file(runner, path, until=until, parse_workers=workers)
    return collect.outputs, stats.summary()


def test_a_worker_parsed_replay_emits_exactly_what_an_in_process_one_does(tmp_path: Path) -> None:
    path = tmp_path / "week.jsonl"
    start = datetime(2026, 3, 2, tzinfo=UTC)
    generate_week(start, seed=5, tickets=150, pii_key="pool-key").write_jsonl(path)
    here, here_summary = run(path, 0)
    pooled, pooled_summary = run(path, 1)
    assert len(here) > 1000
    assert pooled == here
    assert pooled_summary == here_summary
    two, _ = run(path, 2)
    assert two == here


def test_until_stops_the_pool_at_the_same_record(tmp_path: Path) -> None:
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), seed=6, tickets=60).write_jsonl(path)
    until = parse_rfc3339("2026-03-04T12:00:00Z")
    here, here_summary = run(path, 0, until)
    pooled, pooled_summary = run(path, 1, until)
    assert pooled == here
    assert pooled_summary == here_summary


def test_the_worker_detects_the_language_of_every_ticket_the_desk_opens(tmp_path: Path) -> None:
    """The hints are only hints (the tables are the same with or without them, above), but
    they are what spares the desk the language model: on a generated week every opening
    contact's language arrives from the worker, already masked text and all."""
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), seed=7, tickets=200).write_jsonl(path)
    collect = Collect()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("pool-key"), collect)  # type: ignore[arg-type]
    detector = runner.desk.language_detector
    asked: list[bool] = []
    detect = detector.detect

    def spy(text: str) -> str:
        asked.append(text in detector.known)
        return detect(text)

    detector.detect = spy  # type: ignore[method-assign]
    stats = replay_file(runner, path, parse_workers=1)
    assert stats.tickets_opened > 100
    assert len(asked) == stats.tickets_opened
    assert all(asked)


def test_a_worker_that_dies_stops_the_replay_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), seed=8, tickets=400).write_jsonl(path)
    with path.open("rb") as handle:
        index = index_records(handle, path.name, str)
        places = [(index.number[p], index.offset[p], index.length[p]) for p in index.order()]
        # More chunks than the window: whatever the worker wrote before it died, the pool
        # must send it more and read what never comes.
        assert len(places) > 8 * CHUNK
        with ParsePool(Pseudonymizer.from_text("pool-key"), 1, handle, path.name) as pool:
            results = pool.parse_in_order(places)
            first = next(results)
            assert first[1]  # parsed items
            pool._workers[0].kill()  # out of memory, a bug, an operator's kill
            with pytest.raises(ParseWorkerError, match="parse worker stopped"):
                list(results)

"""Replay's input: the index, the order, and every shape an input file arrives in
(docs/REPLAY_INPUT.md): a BOM, CRLF and bare CRs, blank and control-character lines, standard
input, a FIFO, a directory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Output
from processors.rules import load_rules
from streams.local import LocalRunner, replay_file
from streams.replay_input import InputError, index_records, open_input, records_in_order

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "tests" / "fixtures" / "rules.handworked.yaml"


def chat(at: str, session: str, text: str = "Здравствуйте") -> str:
    payload = {"session_id": session, "message_id": "m1", "visitor": {"id": "v1"}, "text": text}
    return json.dumps({"at": at, "source": "chat", "payload": payload}, ensure_ascii=False)


def survey(at: str) -> str:
    return json.dumps({"at": at, "source": "survey", "payload": {"kind": "csat"}})


class Collect:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def flush(self) -> int:
        return 0


def replay(data: bytes, tmp_path: Path, **kwargs: object) -> tuple[LocalRunner, Collect]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    writer = Collect()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("k"), writer)  # type: ignore[arg-type]
    replay_file(runner, path, **kwargs)  # type: ignore[arg-type]
    return runner, writer


def index_of(data: bytes) -> tuple[list[str], list[DeadLetter], int]:
    handle = io.BytesIO(data)
    index = index_records(handle, "in.jsonl", lambda text: text)
    refs = [record.ref for record in records_in_order(handle, index, lambda text: text)]
    return refs, index.dead_letters, index.blank_lines


def test_records_come_back_in_at_order_file_order_among_equals() -> None:
    lines = [
        chat("2026-03-02T10:00:00+03:00", "c"),
        chat("2026-03-02T09:00:00+03:00", "a"),
        chat("2026-03-02T06:00:00Z", "b"),  # the same instant as line 2
        chat("2026-03-02T08:00:00+03:00", "d"),
    ]
    refs, letters, blank = index_of("\n".join(lines).encode())
    assert refs == ["in.jsonl:4", "in.jsonl:2", "in.jsonl:3", "in.jsonl:1"]
    assert letters == [] and blank == 0


def test_a_bom_at_the_start_is_skipped() -> None:
    data = b"\xef\xbb\xbf" + chat("2026-03-02T09:00:00+03:00", "a").encode() + b"\n"
    refs, letters, _ = index_of(data)
    assert refs == ["in.jsonl:1"]
    assert letters == []


def test_crlf_line_ends_are_line_ends_and_a_bare_cr_splits_nothing() -> None:
    first = chat("2026-03-02T09:00:00+03:00", "a")
    second = chat("2026-03-02T09:01:00+03:00", "b")
    # a bare CR between two records is inside one line: that line is one bad record
    data = (first + "\r\n" + first + "\r" + second + "\n" + second + "\r\n").encode()
    refs, letters, _ = index_of(data)
    assert refs == ["in.jsonl:1", "in.jsonl:3"]
    assert [letter.ref for letter in letters] == ["in.jsonl:2"]
    assert letters[0].reason.startswith("invalid json")


def test_blank_lines_are_counted_and_control_characters_are_dead_letters(tmp_path: Path) -> None:
    record = chat("2026-03-02T09:00:00+03:00", "a")
    data = f"\n{record}\n   \n\t\r\n\x00\x01\n\x0b\x0c\n{record}\n\n".encode()
    refs, letters, blank = index_of(data)
    assert refs == ["in.jsonl:2", "in.jsonl:7"]
    assert blank == 4  # lines 1, 3, 4 and 8
    assert [letter.ref for letter in letters] == ["in.jsonl:5", "in.jsonl:6"]
    assert all(letter.reason.startswith("invalid json") for letter in letters)
    runner, _ = replay(data, tmp_path)
    assert runner.stats.blank_lines == 4
    assert sum(runner.stats.dead_letters.values()) == 2
    assert "4 blank lines skipped" in runner.stats.summary()


def test_bad_utf8_is_read_with_replacement_characters() -> None:
    data = (
        chat("2026-03-02T09:00:00+03:00", "a", "caf\ufffd")
        .encode()
        .replace("\ufffd".encode(), b"\xff")
    )
    handle = io.BytesIO(data)
    index = index_records(handle, "in.jsonl", lambda text: text)
    [record] = records_in_order(handle, index, lambda text: text)
    assert record.payload["text"] == "caf\ufffd"


def test_an_undated_dead_letter_takes_the_instant_of_the_record_before_it() -> None:
    lines = [chat("2026-03-02T09:00:00+03:00", "a"), "{not json", survey("bad")]
    _, letters, _ = index_of("\n".join(lines).encode())
    assert [letter.at for letter in letters] == [1772431200000, 1772431200000]


def test_standard_input_is_spooled(tmp_path: Path) -> None:
    data = "\n".join(
        [chat("2026-03-02T10:00:00+03:00", "b"), chat("2026-03-02T09:00:00+03:00", "a")]
    ).encode()
    with open_input("-", io.BytesIO(data)) as (handle, name):
        assert name == "stdin"
        index = index_records(handle, name, lambda text: text)
        refs = [r.ref for r in records_in_order(handle, index, lambda text: text)]
    assert refs == ["stdin:2", "stdin:1"]


def test_a_fifo_is_read_once_and_replayed_like_the_file(tmp_path: Path) -> None:
    data = "\n".join(
        [chat("2026-03-02T10:00:00+03:00", "b"), chat("2026-03-02T09:00:00+03:00", "a")]
    ).encode()
    _, from_file = replay(data, tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as pipe:
            pipe.write(data)

    writer_thread = threading.Thread(target=feed)
    writer_thread.start()
    collect = Collect()
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("k"), collect)  # type: ignore[arg-type]
    replay_file(runner, fifo)
    writer_thread.join()
    assert collect.outputs == from_file.outputs
    assert runner.stats.records == 2


def test_a_directory_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"), open_input(tmp_path):
        pass
    with pytest.raises(InputError, match="not found"), open_input(tmp_path / "nope.jsonl"):
        pass


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": "k", "SUPPORTSTREAM_METRICS_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def test_the_command_line_reads_stdin_and_refuses_a_directory_with_exit_2(tmp_path: Path) -> None:
    done = cli("replay", "--rules", str(RULES), "--input", str(tmp_path), "--warehouse", "w")
    assert done.returncode == 2
    assert b"is a directory" in done.stderr
    assert b"Traceback" not in done.stderr
    data = (chat("2026-03-02T09:00:00+03:00", "a") + "\n\n").encode()
    warehouse = tmp_path / "wh"
    done = cli(
        "replay", "--rules", str(RULES), "--input", "-", "--warehouse", str(warehouse), stdin=data
    )
    assert done.returncode == 0, done.stderr
    assert b"1 records" in done.stdout
    assert b"1 blank lines skipped" in done.stdout

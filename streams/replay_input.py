"""Replay's input: a JSON Lines file read through a small index, never held as text.

``replay`` applies records in the order of ``at`` (file order among equals, CONTRACT §1), so
every line's instant must be known before the first record is applied. Holding every record
for that would make memory grow with the file; instead one pass reads each line's envelope
and keeps only ``(at, line number, byte offset, length)`` in four ``array`` columns (32 bytes
a record), sorts a permutation of them, and the records are read back from the file one by
one in that order (``RecordIndex.lines_in_order``). Memory is then the index plus the desk's
own state; docs/REPLAY.md has the rule of thumb and the reasons.

What counts as a line, and what a line may hold:

- Records are separated by ``\\n`` only (JSON Lines). A CR before it is part of the line end
  (CRLF files); a bare CR anywhere else is just a character (inside a JSON string it is invalid
  JSON, so such a record is a dead letter; it never splits a record in two).
- A UTF-8 byte order mark at the very start of the file is skipped. Bytes that are not UTF-8
  become U+FFFD, so the record is still read (and usually dead-lettered with its reason).
- A *blank line* (empty, or only spaces, tabs and CRs: JSON's own whitespace) separates
  nothing and means nothing: it is not a record and not a dead letter, but it is counted
  (``blank_lines``) and reported, so an operator can tell why the line count and the record
  count differ. Any other line, one of only control characters included, is a record to
  read; one that is not JSON becomes a dead letter with the reason.
- ``--input -`` reads standard input and a FIFO (``--input <(zcat week.jsonl.gz)``) is read
  once: both are spooled to a temporary file first, since the index reads lines back out of
  order. A directory is refused as bad usage (exit 2).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from processors.model import DeadLetter, RawRecord
from processors.parsing import parse_envelope, record_instant

__all__ = [
    "InputError",
    "RecordIndex",
    "check_input",
    "index_records",
    "open_input",
    "read_line",
    "records_in_order",
]

_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = b" \t\r\n"
_SPOOL_CHUNK = 1 << 20


class InputError(ValueError):
    """The input cannot be read as asked (a directory, a missing file): bad usage."""


def check_input(path: str | Path) -> int | None:
    """``--input`` of replay, whatif and publish, checked before any work starts, and by
    ``open_input``: ``-`` is standard input (None), a FIFO is read once (docs/REPLAY.md); a path
    naming nothing, one that cannot be read or a directory is bad usage, like a missing
    argument (``InputError``, exit 2). Returns the file's mode."""
    if str(path) == "-":
        return None
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"input file {str(path)!r} not found") from None
    except OSError as error:
        raise InputError(f"input file {str(path)!r} cannot be read: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"input {str(path)!r} is a directory; give a JSON Lines file")
    return mode


@contextlib.contextmanager
def open_input(name: str | Path, stdin: IO[bytes] | None = None) -> Iterator[tuple[IO[bytes], str]]:
    """The input as a seekable binary file and the name its dead letters cite.

    ``-`` is standard input; a FIFO, a character device or anything else that cannot seek is
    copied to a temporary file (deleted when the block ends) so that lines can be read back in
    ``at`` order. A missing file or a directory raises ``InputError``.
    """
    if str(name) == "-":
        with _spooled(stdin if stdin is not None else sys.stdin.buffer) as spool:
            yield spool, "stdin"
        return
    path = Path(name)
    mode = check_input(path)
    assert mode is not None
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputError(f"input file {str(path)!r} cannot be read: {error.strerror}") from None
    with handle:
        if stat.S_ISREG(mode) and handle.seekable():
            yield handle, path.name
            return
        with _spooled(handle) as spool:
            yield spool, path.name


@contextlib.contextmanager
def _spooled(source: IO[bytes]) -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile(prefix="supportstream-input-") as spool:
        shutil.copyfileobj(source, spool, _SPOOL_CHUNK)
        spool.seek(0)
        yield spool


@dataclass
class RecordIndex:
    """Where each record of the input is, and when it happened.

    Columns, one entry per record in file order: ``at`` (ms), 1-based line ``number``,
    byte ``offset`` of the line and its ``length`` in bytes (line end excluded). Dead letters
    of lines that are not records at all are kept whole (they are few, and written first).
    """

    source_name: str
    at: array[int] = field(default_factory=lambda: array("q"))
    number: array[int] = field(default_factory=lambda: array("q"))
    offset: array[int] = field(default_factory=lambda: array("q"))
    length: array[int] = field(default_factory=lambda: array("q"))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    blank_lines: int = 0

    def __len__(self) -> int:
        return len(self.at)

    def order(self) -> array[int]:
        """Positions of the records in replay order: by ``at``, file order among equals
        (the sort is stable)."""
        at = self.at
        return array("q", sorted(range(len(at)), key=at.__getitem__))

    def ref(self, position: int) -> str:
        return f"{self.source_name}:{self.number[position]}"

    def lines_in_order(self, handle: IO[bytes]) -> Iterator[tuple[int, str]]:
        """``(position, line text)`` of every record in replay order, read back from
        ``handle``."""
        for position in self.order():
            yield position, read_line(handle, self.offset[position], self.length[position])


def read_line(handle: IO[bytes], offset: int, length: int) -> str:
    """One line of the input as text (a CR before its LF removed, bad UTF-8 as U+FFFD).

    A file is read with ``pread``, which leaves its position alone (the parse pool's workers
    read the same file through its inherited descriptor, ``streams.parse_pool``)."""
    try:
        descriptor = handle.fileno()
    except (AttributeError, OSError):  # an in-memory stream (io.UnsupportedOperation)
        handle.seek(offset)
        return line_text(handle.read(length))
    return line_text(os.pread(descriptor, length, offset))


def line_text(raw: bytes) -> str:
    """A line's bytes (its LF excluded) as text: a CR before the LF removed, bad UTF-8 as
    U+FFFD."""
    return raw.decode("utf-8", "replace").removesuffix("\r")


def index_records(handle: IO[bytes], source_name: str, redact: Callable[[str], str]) -> RecordIndex:
    """One pass over the input: every record's place and instant into a ``RecordIndex``,
    every line that is not a record into its dead letters. A dead letter whose instant cannot
    be read is dated at the nearest readable record before it (or after it, at the top of the
    file), so it lands on the right day."""
    index = RecordIndex(source_name)
    letters: list[tuple[int, DeadLetter]] = []
    offset = 0
    for number, raw in enumerate(handle, start=1):
        start = offset
        offset += len(raw)
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
            start += len(_BOM)
        if not line.strip(_JSON_WHITESPACE):
            index.blank_lines += 1
            continue
        at = record_instant(line)
        if at is None:  # perhaps not a record: the full reading says what it is
            envelope = parse_envelope(line_text(line), f"{source_name}:{number}", redact)
            if isinstance(envelope, DeadLetter):
                letters.append((len(index.at), envelope))
                continue
            at = envelope.at
        index.at.append(at)
        index.number.append(number)
        index.offset.append(start)
        index.length.append(len(line))
    for position, letter in letters:
        if letter.at >= 0:
            index.dead_letters.append(letter)
            continue
        neighbour = position - 1 if position > 0 else position
        at = index.at[neighbour] if 0 <= neighbour < len(index.at) else 0
        index.dead_letters.append(
            DeadLetter(at, letter.source, letter.reason, letter.record, letter.ref)
        )
    return index


def records_in_order(
    handle: IO[bytes], index: RecordIndex, redact: Callable[[str], str]
) -> Iterator[RawRecord]:
    """The records in replay order, their envelopes read again from the file."""
    for position, line in index.lines_in_order(handle):
        record = parse_envelope(line, index.ref(position), redact)
        if isinstance(record, RawRecord):  # it was one when indexed: the file has not changed
            yield record

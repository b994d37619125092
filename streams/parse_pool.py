"""Replay's parse stage in worker processes, so that parsing and the desk use two cores.

The local runner parses a record and hands it to the desk in one process; on a replay the
desk and the warehouse writer keep that process busy, and parsing (the channel payloads,
e-mail MIME, identities and their keyed hashes) can run beside it. ``ParsePool`` sends the
records' lines, in replay order and in chunks, to ``workers`` processes and hands the results
back in exactly that order, so the desk sees the same items in the same order as when it
parses itself: the tables are identical (``tests/streams/test_parse_pool.py``).

Parsing is pure (``processors.parsing``), so a worker needs nothing but the PII key. Workers
are started with ``spawn``: the parent has the embedded warehouse's engine threads, which a
forked child must not inherit. (As with any ``spawn``, a script that replays with workers must
keep its top-level code under ``if __name__ == "__main__":``; the command line does.) At most
``window`` chunks are in flight, so memory does not grow with the input (the lines are read
from the file as they are sent).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Millis, Parsed
from processors.parsing import parse_envelope, parse_record
from processors.pii import Masker

__all__ = ["ParsePool", "default_parse_workers"]

CHUNK = 256
"""Records per task: large enough that a task's overhead (pickling, a queue round trip) is a
few per cent of its parsing, small enough that the desk starts at once."""

Line = tuple[str, str]
"""A record's ref (``file:line``) and its line text."""

Result = tuple[Millis, list[Parsed]]


def default_parse_workers() -> int:
    """One parse worker beside the desk when the machine has a second core, none otherwise.
    (The desk and the writer cost about three times what parsing does, so a second worker
    would only take a core from them.)"""
    return 1 if (os.cpu_count() or 1) >= 2 else 0


class ParsePool:
    """Worker processes parsing lines for one replay. Use as a context manager: the workers
    start on entry (their imports overlap the indexing of the input) and stop on exit."""

    def __init__(self, pseudo: Pseudonymizer, workers: int, *, window: int | None = None) -> None:
        if workers < 1:
            raise ValueError("a parse pool needs at least one worker")
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(pseudo.key,),
        )
        self._window = window if window is not None else 4 * workers + 2
        self._warm = [self._executor.submit(_ready) for _ in range(workers)]

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def parse_in_order(self, lines: Iterable[Line]) -> Iterator[Result]:
        """Each line's ``(at, parsed items)``, in the order of ``lines``."""
        pending: deque[Future[list[Result]]] = deque()
        chunk: list[Line] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= CHUNK:
                pending.append(self._executor.submit(_parse_chunk, chunk))
                chunk = []
                if len(pending) >= self._window:
                    yield from pending.popleft().result()
        if chunk:
            pending.append(self._executor.submit(_parse_chunk, chunk))
        while pending:
            yield from pending.popleft().result()


# -- in the worker ------------------------------------------------------------------------------

_pseudo: Pseudonymizer | None = None
_redact: Callable[[str], str] = str


def _start_worker(key: bytes) -> None:
    global _pseudo, _redact
    pseudo = Pseudonymizer(key)
    masker = Masker()
    _pseudo = pseudo

    def redact(text: str) -> str:
        return masker.redact_json_text(text, pseudo.h)

    _redact = redact


def _ready() -> bool:
    return True


def _parse_chunk(lines: list[Line]) -> list[Result]:
    assert _pseudo is not None, "worker not initialised"
    results: list[Result] = []
    for ref, text in lines:
        envelope = parse_envelope(text, ref, _redact)
        if isinstance(envelope, DeadLetter):  # indexed as a record, so only if the file changed
            results.append((envelope.at, [envelope]))
        else:
            results.append((envelope.at, parse_record(envelope, _pseudo, _redact)))
    return results

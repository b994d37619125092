"""Replay's parse stage in worker processes, so that parsing and the desk use two cores.

The local runner parses a record and hands it to the desk in one process; on a replay the
desk and the warehouse writer keep that process busy, and parsing (the channel payloads,
e-mail MIME, identities and their keyed hashes) can run beside it. ``ParsePool`` sends the
records' lines, in replay order and in chunks, to ``workers`` processes and hands the results
back in exactly that order, so the desk sees the same items in the same order as when it
parses itself: the tables are identical (``tests/streams/test_parse_pool.py``).

Parsing is pure (``processors.parsing``), so a worker needs nothing but the PII key. A worker
is a fresh interpreter running this module (``python -m streams.parse_pool``), not a
``multiprocessing`` child: it imports only the parsers (a ``spawn``ed child imports the
parent's main module too, the whole command line with the embedded warehouse, which cost
most of a CPU-second per replay), never inherits the warehouse's engine threads (as a forked
child would), and asks nothing of the caller's script. Chunks and results travel as pickles
over the worker's standard input and output; the key is the first message, never an argument
or an environment variable that ``ps`` would show. A thread feeds the chunks, at most
``window`` ahead of the results read back, so memory does not grow with the input and neither
side can block the other on a full pipe.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from processors.ids import Pseudonymizer
from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    DeadLetter,
    EmailThreading,
    Identity,
    Ignored,
    Millis,
    Parsed,
    QaReview,
    SurveyAnswer,
)
from processors.parsing import parse_envelope, parse_record
from processors.pii import Masker

__all__ = ["ParsePool", "ParseWorkerError", "default_parse_workers"]

CHUNK = 256
"""Records per task: large enough that a task's overhead (pickling, a pipe round trip) is a
few per cent of its parsing, small enough that the desk starts at once."""

Line = tuple[str, str]
"""A record's ref (``file:line``) and its line text."""

Result = tuple[Millis, list[Parsed]]

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class ParseWorkerError(RuntimeError):
    """A parse worker stopped before answering (killed, out of memory, a bug): the replay
    cannot go on with a hole in its input."""


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
        self._window = window if window is not None else 4 * workers + 2
        self._workers: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(workers):
                worker = subprocess.Popen(
                    [sys.executable, "-m", "streams.parse_pool"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=_ROOT,
                )
                self._workers.append(worker)
                assert worker.stdin is not None
                pickle.dump(pseudo.key, worker.stdin, _PROTOCOL)
                worker.stdin.flush()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and wait for them. Their output is closed first: a worker still
        writing results nobody will read (the replay failed) then stops at once, which also
        frees a feeder blocked on its input; a worker waiting for input sees its end."""
        for worker in self._workers:
            for pipe in (worker.stdout, worker.stdin):
                if pipe is not None:
                    # A worker that died has closed its end already.
                    with contextlib.suppress(OSError):
                        pipe.close()
        for worker in self._workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self._workers = []

    def parse_in_order(self, lines: Iterable[Line]) -> Iterator[Result]:
        """Each line's ``(at, parsed items)``, in the order of ``lines``. Chunk ``k`` goes to
        worker ``k mod workers`` and its results are read back in the same rotation."""
        workers = self._workers
        slots = threading.Semaphore(self._window)
        sent: queue.SimpleQueue[int | BaseException | None] = queue.SimpleQueue()
        stop = threading.Event()

        def feed() -> None:
            # Sends chunks ahead of the results, at most ``window`` of them; says on ``sent``
            # which worker got each, then None at the end (or what went wrong).
            try:
                for number, chunk in enumerate(_chunks(lines)):
                    slots.acquire()
                    if stop.is_set():
                        return
                    stdin = workers[number % len(workers)].stdin
                    assert stdin is not None
                    pickle.dump(chunk, stdin, _PROTOCOL)
                    stdin.flush()
                    sent.put(number % len(workers))
                sent.put(None)
            except BaseException as error:  # reading the input, or a worker gone
                sent.put(error)

        feeder = threading.Thread(target=feed, name="parse-feeder", daemon=True)
        feeder.start()
        finished = False
        try:
            while (notice := sent.get()) is not None:
                if isinstance(notice, BaseException):
                    if isinstance(notice, OSError):
                        raise ParseWorkerError(f"a parse worker stopped: {notice}") from notice
                    raise notice
                stdout = workers[notice].stdout
                assert stdout is not None
                results = _read_results(stdout)
                slots.release()
                yield from results
            finished = True
        finally:
            stop.set()
            slots.release()
            if not finished:
                # Stopped early (the desk failed, a worker died): the feeder may be blocked
                # on a full pipe, which only the workers' end can free.
                self._kill()
            feeder.join()

    def _kill(self) -> None:
        for worker in self._workers:
            if worker.poll() is None:
                worker.kill()


def _chunks(lines: Iterable[Line]) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_results(stdout: IO[bytes]) -> list[Result]:
    try:
        results: list[Result] = pickle.load(stdout)
    except EOFError:
        raise ParseWorkerError("a parse worker stopped before answering") from None
    return results


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- in the worker ------------------------------------------------------------------------------


def parse_chunk(
    lines: list[Line], pseudo: Pseudonymizer, redact: Callable[[str], str]
) -> list[Result]:
    """What a worker does with one chunk (the same as the runner's own parse)."""
    results: list[Result] = []
    for ref, text in lines:
        envelope = parse_envelope(text, ref, redact)
        if isinstance(envelope, DeadLetter):  # indexed as a record, so only if the file changed
            results.append((envelope.at, [envelope]))
        else:
            results.append((envelope.at, parse_record(envelope, pseudo, redact)))
    return results


def _rebuild(cls: type[Any], values: tuple[Any, ...]) -> Any:
    """A parsed item (a frozen dataclass with slots) from its field values, as the pool's
    reader unpickles it: without the ``dataclasses.fields()`` call per object of the default
    ``__setstate__``, which was the largest part of reading the results."""
    item = object.__new__(cls)
    for name, value in zip(_field_names(cls), values, strict=True):
        object.__setattr__(item, name, value)
    return item


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _reduce(item: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    cls = type(item)
    return _rebuild, (cls, tuple(getattr(item, name) for name in _field_names(cls)))


def _pickle_items_compactly() -> None:
    """In the worker: every parsed item's class, and what they hold, pickled by ``_reduce``."""
    for cls in (
        AgentAction, Contact, CrmUpsert, DeadLetter, EmailThreading, Identity, Ignored,
        QaReview, SurveyAnswer,
    ):  # fmt: skip
        copyreg.pickle(cls, _reduce)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The worker's loop: the key, then chunks until the end of input."""
    try:
        key: Any = pickle.load(stdin)
    except EOFError:
        return 0
    _pickle_items_compactly()
    pseudo = Pseudonymizer(key)
    masker = Masker()

    def redact(text: str) -> str:
        return masker.redact_json_text(text, pseudo.h)

    while True:
        try:
            chunk = pickle.load(stdin)
        except EOFError:
            return 0
        pickle.dump(parse_chunk(chunk, pseudo, redact), stdout, _PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # Served by the module under its own name, so that what it pickles (``_rebuild``) names a
    # module the reader can import, not ``__main__``.
    from streams import parse_pool

    try:
        sys.exit(parse_pool._serve(sys.stdin.buffer, sys.stdout.buffer))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(1)

"""Replay's parse stage in worker processes, so that parsing and the desk use two cores.

The local runner parses a record and hands it to the desk in one process; on a replay the
desk and the warehouse writer keep that process busy, and parsing (the channel payloads,
e-mail MIME, identities and their keyed hashes) can run beside it. ``ParsePool`` sends the
records' lines, in replay order and in chunks, to ``workers`` processes and hands the results
back in exactly that order, so the desk sees the same items in the same order as when it
parses itself: the tables are identical (``tests/streams/test_parse_pool.py``).

Parsing is pure (``processors.parsing``), so a worker needs nothing but the PII key and the
input. A worker is a fresh interpreter running this module (``python -m streams.parse_pool``),
not a ``multiprocessing`` child: it imports only the parsers (a ``spawn``ed child imports the
parent's main module too, the whole command line with the embedded warehouse, which cost most
of a CPU-second per replay), never inherits the warehouse's engine threads (as a forked child
would), and asks nothing of the caller's script. It inherits the input file's descriptor and
is sent only the records' places (line number, offset, length) over its standard input, in
chunks, so this process never reads a record's text for it; the results come back as pickles
over its standard output. The key is the first message, never an argument or an environment
variable that ``ps`` would show. At most ``window`` chunks are ahead of the results read, so
memory does not grow with the input.

Beside each record's items a worker sends *hints* (``Hints``): the masked form of every
contact's subject and body and the language of every contact that may open a ticket, which
the desk would otherwise work out itself (``streams.local.HintedMasker``,
``LanguageDetector.known``). Both are pure functions of the text, so the desk's result is the
same whether it uses a hint or not; the worker's core does the work and the desk's core is
spared it.
"""

from __future__ import annotations

import contextlib
import copyreg
import fcntl
import operator
import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, get_args

from processors.ids import Pseudonymizer
from processors.language import LanguageDetector, model_loader, use_model_loader
from processors.model import (
    Contact,
    DeadLetter,
    EmailThreading,
    Identity,
    Millis,
    Parsed,
    field_names,
)
from processors.parsing import parse_envelope, parse_record
from processors.pii import Masker
from processors.threads import ThreadIndex
from streams.replay_input import line_text

__all__ = ["ParsePool", "ParseWorkerError", "default_parse_workers"]

CHUNK = 256
"""Records per task: large enough that a task's overhead (pickling, a pipe round trip) is a
few per cent of its parsing, small enough that the desk starts at once."""

Place = tuple[int, int, int]
"""Where a record is in the input: its line number, byte offset and length (the index's
columns, ``streams.replay_input.RecordIndex``)."""

Hints = tuple[dict[str, str | None], dict[str, str]]
"""What a worker worked out for the desk beside a record's items: each contact text's masked
form (None: unchanged) and the language of the texts that may open a ticket (``_Worker``)."""

Result = tuple[Millis, list[Parsed], Hints | None]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_MAX_WINDOW = 8
"""Chunks in flight per worker at most: their places (a few kB a chunk) must fit in a pipe's
buffer (64 kB on Linux), so that sending one never waits for a worker busy writing results."""


class ParseWorkerError(RuntimeError):
    """A parse worker stopped before answering (killed, out of memory, a bug): the replay
    cannot go on with a hole in its input."""


def default_parse_workers() -> int:
    """One parse worker beside the desk when the machine has a second core, none otherwise.
    (The desk and the writer cost about three times what parsing does, so a second worker
    would only take a core from them.)"""
    return 1 if (os.cpu_count() or 1) >= 2 else 0


class ParsePool:
    """Worker processes parsing one replay's input. Use as a context manager: the workers
    start on entry (their imports overlap the indexing of the input) and stop on exit.

    ``source`` is the input file (seekable, with a descriptor: ``replay_input.open_input``
    gives one), ``source_name`` what dead letters cite. Each worker inherits the file's
    descriptor and reads the records it is given by place (``pread``), so this process sends
    only numbers and never reads a record's text for them."""

    def __init__(
        self,
        pseudo: Pseudonymizer,
        workers: int,
        source: IO[bytes],
        source_name: str,
        *,
        window: int | None = None,
        languages: tuple[str, ...] | None = None,
        reopen_within_ms: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError("a parse pool needs at least one worker")
        self._window = min(window if window is not None else 6, _MAX_WINDOW) * workers
        self._workers: list[subprocess.Popen[bytes]] = []
        descriptor = source.fileno()
        try:
            for _ in range(workers):
                worker = subprocess.Popen(
                    [sys.executable, "-m", "streams.parse_pool"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=_ROOT,
                    pass_fds=(descriptor,),
                )
                self._workers.append(worker)
                assert worker.stdin is not None and worker.stdout is not None
                _widen(worker.stdout)
                # The model is loaded as this process loads it (a cache, streams.model_cache).
                loader = model_loader()
                setup = (pseudo.key, descriptor, source_name, languages, reopen_within_ms, loader)
                pickle.dump(setup, worker.stdin, _PROTOCOL)
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
        writing results nobody will read (the replay failed) then stops at once; a worker
        waiting for input sees its end."""
        for worker in self._workers:
            for pipe in (worker.stdout, worker.stdin):
                if pipe is not None:
                    # A worker that died has closed its end already.
                    with contextlib.suppress(OSError):
                        pipe.close()
        for worker in self._workers:
            # With both pipes closed a worker ends at once (end of input, or a broken pipe on
            # its next result). A wait without a timeout blocks in waitpid; one with a timeout
            # polls, which made every replay end up to a tenth of a second late.
            worker.wait()
        self._workers = []

    def parse_in_order(self, places: Iterable[Place]) -> Iterator[Result]:
        """Each record's ``(at, parsed items, hints)``, in the order of ``places``. Chunk
        ``k`` goes to worker ``k mod workers``, results are read back in the same rotation,
        and at most ``window`` chunks are ahead of the results read."""
        workers = self._workers
        pending: deque[subprocess.Popen[bytes]] = deque()
        try:
            for number, chunk in enumerate(_chunks(places)):
                worker = workers[number % len(workers)]
                assert worker.stdin is not None
                pickle.dump(chunk, worker.stdin, _PROTOCOL)
                worker.stdin.flush()
                pending.append(worker)
                if len(pending) >= self._window:
                    yield from _read_results(pending.popleft())
            while pending:
                yield from _read_results(pending.popleft())
        except OSError as error:  # BrokenPipeError: the worker is gone
            raise ParseWorkerError(f"a parse worker stopped: {error}") from error


_PIPE_SIZE = 1 << 20


def _widen(pipe: IO[bytes]) -> None:
    """Let a worker's results pipe hold a whole window of chunks (about 50 kB of results a
    chunk; Linux gives a pipe 64 kB unless asked, and allows 1 MiB): with a narrow pipe the
    worker cannot run ahead, it waits for each result to be read and the runner then waits
    for the next to be written. Where the system does not allow it, the pipe stays as it is
    (slower, the same results)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), set_size, _PIPE_SIZE)


def _chunks(places: Iterable[Place]) -> Iterator[list[Place]]:
    chunk: list[Place] = []
    for place in places:
        chunk.append(place)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_results(worker: subprocess.Popen[bytes]) -> list[Result]:
    assert worker.stdout is not None
    try:
        results: list[Result] = pickle.load(worker.stdout)
    except EOFError:
        raise ParseWorkerError("a parse worker stopped before answering") from None
    return results


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- in the worker ------------------------------------------------------------------------------


class _Worker:
    """What a worker does with each chunk: the runner's own parse, and the hints for the desk
    (``Hints``): the masking of every contact's subject and body, and, when the rules' languages
    are given, the language of every contact that may open a ticket.

    Which contacts may open one is judged from the records alone, generously: the first
    contact of a conversation (an e-mail's threaded as the desk threads it), and one that
    comes more than ``reopen_within_ms`` after the conversation's previous contact (a solved
    ticket is reopened within that time of its solving, which is after that contact). A hint
    the desk does not use costs only the worker's time; a contact without one is detected by
    the desk itself, with the same result (``tests/streams/test_parse_pool.py``)."""

    def __init__(
        self,
        pseudo: Pseudonymizer,
        descriptor: int,
        source_name: str,
        languages: tuple[str, ...] | None,
        reopen_within_ms: int,
    ) -> None:
        self.pseudo = pseudo
        self.descriptor = descriptor
        self.source_name = source_name
        self.masker = Masker()
        self.detector = LanguageDetector(languages) if languages else None
        self.reopen_within_ms = reopen_within_ms
        self.last_contact: dict[str, Millis] = {}
        self.threads = ThreadIndex(pseudo, {})

    def redact(self, text: str) -> str:
        return self.masker.redact_json_text(text, self.pseudo.h)

    def parse_chunk(self, places: list[Place]) -> list[Result]:
        results: list[Result] = []
        for number, offset, length in places:
            ref = f"{self.source_name}:{number}"
            text = line_text(os.pread(self.descriptor, length, offset))
            envelope = parse_envelope(text, ref, self.redact)
            if isinstance(envelope, DeadLetter):  # indexed as a record: the file has changed
                results.append((envelope.at, [envelope], None))
                continue
            items = parse_record(envelope, self.pseudo, self.redact)
            results.append((envelope.at, items, self.hints(items)))
        return results

    def hints(self, items: list[Parsed]) -> Hints | None:
        masked: dict[str, str | None] = {}
        languages: dict[str, str] = {}
        for item in items:
            if not isinstance(item, Contact):
                continue
            subject, body = self._mask(item.subject, masked), self._mask(item.body, masked)
            if self.detector is not None and self._may_open(item):
                text = f"{subject}\n{body}"
                languages[text] = self.detector.detect(text)
        return (masked, languages) if masked else None

    def _mask(self, text: str, masked: dict[str, str | None]) -> str:
        result = self.masker.mask(text)
        masked[text] = None if result == text else result
        return result

    def _may_open(self, contact: Contact) -> bool:
        conversation = contact.conversation_id
        if contact.threading is not None:
            # The desk's own threading, on the customers' mails this worker has seen (the desk
            # also knows its agents' replies, so it may thread a mail elsewhere: then the
            # desk detects that mail's language itself).
            conversation = self.threads.conversation_of(contact.threading)
            self.threads.remember(contact.threading.message_id, conversation)
        previous = self.last_contact.get(conversation)
        self.last_contact[conversation] = contact.at
        return previous is None or contact.at - previous > self.reopen_within_ms


def _rebuild(cls: type[Any], values: tuple[Any, ...]) -> Any:
    """A parsed item (a frozen dataclass) from its field values, as the pool's reader unpickles
    it: called with them positionally, without the ``dataclasses.fields()`` call per object of
    the default ``__setstate__``, which was the largest part of reading the results. (Not
    ``object.__new__`` and ``object.__setattr__``: compiled classes refuse them,
    ``processors.native``.)"""
    if len(values) != len(field_names(cls)):
        raise ParseWorkerError(f"a parse worker sent a {cls.__name__} of another shape")
    return cls(*values)


_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _reduce(item: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    cls = type(item)
    values = _GETTERS.get(cls)
    if values is None:
        names = field_names(cls)
        get = operator.attrgetter(*names)
        values = _GETTERS[cls] = get if len(names) > 1 else lambda item: (get(item),)
    return _rebuild, (cls, values(item))


def _pickle_items_compactly() -> None:
    """In the worker: every parsed item's class (``processors.model.Parsed``), and the
    identities and threading they hold, pickled by ``_reduce``."""
    for cls in (*get_args(Parsed), EmailThreading, Identity):
        copyreg.pickle(cls, _reduce)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The worker's loop: the key, then chunks until the end of input."""
    try:
        key, descriptor, source_name, languages, reopen_within_ms, loader = pickle.load(stdin)
    except EOFError:
        return 0
    use_model_loader(loader)
    _pickle_items_compactly()
    worker = _Worker(Pseudonymizer(key), descriptor, source_name, languages, reopen_within_ms)
    if worker.detector is not None:
        worker.detector.warm_up(background=True)  # while the runner indexes the input
    while True:
        try:
            chunk = pickle.load(stdin)
        except EOFError:
            return 0
        pickle.dump(worker.parse_chunk(chunk), stdout, _PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # Served by the module under its own name, so that what it pickles (``_rebuild``) names a
    # module the reader can import, not ``__main__``.
    import logging

    from streams import parse_pool
    from streams.logging import configure_logging
    from streams.runtime import tune_garbage_collector

    tune_garbage_collector()
    # Standard output carries the results: warnings (a model cache that cannot be written)
    # go to standard error, which the worker shares with the replay.
    configure_logging(False, level=logging.WARNING)
    try:
        sys.exit(parse_pool._serve(sys.stdin.buffer, sys.stdout.buffer))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(1)

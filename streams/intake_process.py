"""A worker's intake parsing in a process of its own, so that its desk and its intake use two cores.

A worker runs Faust's event loop on one core: it fetches the raw messages, parses them into
entries (``streams.intake``: the Avro envelope, the channel's payload, e-mail MIME, identities
and their keyed hashes), forwards them on ``desk-input``, and, on the worker that holds the
desk, applies them. Parsing needs nothing from the loop, so ``IntakeProcess`` does it in a
child process: the intake agent hands it each batch of raw messages and gets back the
``desk-input`` messages to send, exactly those the worker makes itself (``Intake.batch``;
``tests/streams/test_intake_process.py``). While the child parses a batch, the loop applies
the desk's inputs. ``SUPPORTSTREAM_INTAKE_PROCESS=0`` parses in the loop instead (the default
where the machine has one core).

The child is a fresh interpreter running this module (``python -m streams.intake_process``),
as replay's parse workers are (``streams.parse_pool`` says why not ``multiprocessing``). The
batches go to it as pickles over its standard input, the results come back over its standard
output, one at a time, in order. Its first message is the pseudonymisation key, never an
argument or an environment variable that ``ps`` would show. It ignores SIGINT and SIGTERM and
lives as long as its standard input is open: the worker stopping, however it stops, ends it,
and a terminal's Ctrl-C reaches only the worker, which stops cleanly. It logs its dead letters
(and, with ``--debug``, every parsed record) as the worker's intake does, on the standard error
they share.

A child that stops (killed, out of memory, a bug) fails the batch with ``IntakeProcessError``:
the worker stops rather than skip it (``streams.faust_app``), and its raw offsets, never
committed past that batch, are read again by whoever takes the partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from processors.ids import Pseudonymizer
from processors.model import Millis
from streams.intake import IntakeBatch, Raw

__all__ = ["IntakeProcess", "IntakeProcessError"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class IntakeProcessError(RuntimeError):
    """The intake's child process stopped, or failed a batch: the batch is not forwarded."""


class IntakeProcess:
    """The child that parses the intake's batches; ``parse`` is awaited by the intake agent,
    one batch at a time. ``max_ahead_ms`` and ``debug`` are the worker's intake settings
    (``ParseStage``)."""

    def __init__(self, pseudo: Pseudonymizer, *, max_ahead_ms: Millis | None, debug: bool) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "streams.intake_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._stdin: IO[bytes] = self._child.stdin
        self._stdout: IO[bytes] = self._child.stdout
        self._lock = threading.Lock()  # one batch in the pipes at a time
        try:
            self._send((pseudo.key, max_ahead_ms, debug))
        except OSError as error:
            self.close()
            raise IntakeProcessError(f"the intake process did not start: {error}") from error

    @property
    def pid(self) -> int:
        return self._child.pid

    async def parse(self, raws: list[Raw]) -> IntakeBatch:
        """The batch's ``desk-input`` messages, parsed by the child while the loop runs on."""
        return await asyncio.to_thread(self._round_trip, raws)

    def _round_trip(self, raws: list[Raw]) -> IntakeBatch:
        with self._lock:
            try:
                self._send(raws)
                answer = pickle.load(self._stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as error:
                raise IntakeProcessError(
                    f"the intake process stopped (exit status {self._child.poll()}): {error!r}"
                ) from error
        if isinstance(answer, str):  # the child's own failure, described
            raise IntakeProcessError(f"the intake process failed a batch: {answer}")
        messages, lanes, last_at = answer
        return IntakeBatch(messages, lanes, last_at)

    def _send(self, value: Any) -> None:
        pickle.dump(value, self._stdin, _PROTOCOL)
        self._stdin.flush()

    def close(self) -> None:
        """End the child (its input closes, so it exits) and wait for it."""
        for pipe in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


# -- in the child -------------------------------------------------------------------------------


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The child's loop: its settings, then batches until the end of its input."""
    import structlog

    from streams.intake import Intake
    from streams.local import ParseStage
    from streams.logging import configure_logging

    try:
        key, max_ahead_ms, debug = pickle.load(stdin)
    except EOFError:
        return 0
    configure_logging(debug)  # the worker's format, on the standard error it shares
    log = structlog.get_logger("supportstream.worker")
    intake = Intake(ParseStage(Pseudonymizer(key), logger=log, max_ahead_ms=max_ahead_ms))
    while True:
        try:
            raws = pickle.load(stdin)
        except EOFError:
            return 0
        answer: Any
        try:
            batch = intake.batch(raws)
            answer = (batch.messages, batch.lanes, batch.last_at)
        except Exception as error:  # reported to the worker, which stops: never skipped
            log.exception("intake process failed a batch")
            answer = f"{type(error).__name__}: {error}"
        pickle.dump(answer, stdout, _PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # The worker decides when the child ends (by closing its input): a terminal's signals
    # are the worker's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from streams.runtime import tune_garbage_collector

    tune_garbage_collector()
    try:
        sys.exit(_serve(sys.stdin.buffer, sys.stdout.buffer))
    except BrokenPipeError:
        sys.exit(1)

"""``BackgroundInserts``: a :class:`~sinks.backend.Backend` whose inserts run in a thread of
their own, so that a run's processing goes on while the warehouse takes a batch.

The embedded warehouse (chdb) releases the GIL while it parses and writes an insert, which is
most of an insert's time: on a replay that time can overlap the desk's work on the next
records instead of stopping it (docs/REPLAY.md, "Two cores"). Inserts keep their order (one
thread, first in first out), so the tables are written exactly as without the thread; at most
``depth`` batches wait, so memory stays bounded by the writer's batch size.

Everything else (``execute``, ``query``, ``query_formatted``, ``close``) first waits for the
inserts already handed over, then runs as usual: a compaction or a query never overtakes rows.

A failed insert is reported by the next call made on this backend (or by ``drain()``), as the
``SinkError`` it raised; the batch is not retried here. So this is for a run that ends at its
first warehouse failure and can simply be run again (a replay: every row has a deterministic
id and every batch its token, so a rerun writes nothing twice), not for a live sink that must
hold its batches for a retry (``ProjectionWriter.flush``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sinks.backend import Backend, SinkError

__all__ = ["BackgroundInserts"]

_Insert = tuple[str, Sequence[str], Sequence[Sequence[Any]], str | None]


class BackgroundInserts:
    """Wraps ``backend``; its inserts run in one thread, everything else after them.

    :meth:`opening` makes one whose thread first opens its backend (the embedded warehouse's
    start and migration, a third of a second that a replay spends indexing its input
    meanwhile): every call waits for the opening as it waits for inserts, and a failure to
    open is raised by the next call, as a failed insert is."""

    def __init__(self, backend: Backend, *, depth: int = 2) -> None:
        self._backend: Backend | None = backend
        self._opener: Callable[[], Backend] | None = None
        self._start(depth)

    @classmethod
    def opening(cls, opener: Callable[[], Backend], *, depth: int = 2) -> BackgroundInserts:
        """Inserts in a thread that first calls ``opener`` for its backend."""
        self = cls.__new__(cls)
        self._backend, self._opener = None, opener
        self._start(depth)
        return self

    def _start(self, depth: int) -> None:
        self._queue: queue.Queue[_Insert | None] = queue.Queue(maxsize=depth)
        self._failure: BaseException | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warehouse-inserts", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> Backend:
        """The backend, once open (waits for the opening; raises its failure)."""
        self._opened.wait()
        if self._backend is None:
            self._raise_failure()
            raise SinkError("the warehouse was not opened")
        return self._backend

    def _run(self) -> None:
        try:
            if self._opener is not None:
                self._backend = self._opener()
        except BaseException as error:
            self._failure = error
        finally:
            self._opened.set()
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._failure is None:  # after a failure the rest is dropped, not written
                    table, columns, rows, token = job
                    assert self._backend is not None  # opened, or _failure says why not
                    self._backend.insert(table, columns, rows, dedup_token=token)
            except BaseException as error:
                self._failure = error
            finally:
                self._queue.task_done()

    def _raise_failure(self) -> None:
        failure = self._failure
        if failure is not None:
            if isinstance(failure, SinkError):
                raise failure
            raise SinkError(f"a warehouse insert failed: {failure!r}") from failure

    def drain(self) -> None:
        """Wait until the backend is open and every insert handed over is written; raise the
        first failure."""
        self._opened.wait()
        self._queue.join()
        self._raise_failure()

    # -- the port --------------------------------------------------------------------------

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        self._raise_failure()
        if not self._thread.is_alive():
            raise SinkError("the warehouse's insert thread has stopped (the backend is closed)")
        self._queue.put((table, columns, rows, dedup_token))

    def execute(self, sql: str) -> None:
        self.drain()
        self.backend.execute(sql)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.drain()
        return self.backend.query(sql, params)

    def query_formatted(self, sql: str, fmt: str) -> str:
        self.drain()
        return self.backend.query_formatted(sql, fmt)

    def close(self) -> None:
        """Write what was handed over, stop the thread, close the backend. It raises nothing
        of an insert's failure: a run learns of that from its own next call (its last is the
        flush or the compaction that ends it), and on a run already failing, ``close`` is
        cleanup that must not hide the first error."""
        try:
            if self._thread.is_alive():
                self._queue.join()
                self._queue.put(None)
                self._thread.join()
        finally:
            self._opened.wait()
            if self._backend is not None:
                self._backend.close()

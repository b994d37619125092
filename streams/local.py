"""The local runner: the whole topology in one process, in event-time order (the embedded default).

It interprets ``streams.topology``: raw records are parsed (stage ``parse``), handed to the
``Desk`` (stage ``desk``), and everything the desk emits goes to the ``ProjectionWriter``
(stage ``sink``). Event time drives the SLA timers: before a record at instant ``t`` is applied,
the timers due strictly before ``t`` fire; timers at ``t`` itself fire only once time moves past
``t`` (CONTRACT §3: records at an instant are applied before timers of that instant fire).

``replay`` reads a JSON Lines file, orders it by ``at`` (file order among equals), and feeds it.
A live run (the demo) feeds records as they come and lets the wall clock advance time.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import structlog

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import Contact, DeadLetter, Ignored, Millis, Output, Parsed, RawRecord
from processors.parsing import parse_envelope, parse_record, record_line
from processors.pii import Masker
from processors.rules import Rules
from sinks.backend import Backend, SinkError
from sinks.background import BackgroundInserts
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.logging import debug_enabled, log_flush, log_output, log_parsed
from streams.metrics import PipelineMetrics
from streams.parse_pool import ParsePool
from streams.replay_input import index_records, open_input, read_line

log = structlog.get_logger("supportstream.local")


def wall_clock_ms() -> Millis:
    return int(time.time() * 1000)


LIVE_MAX_AHEAD_MS: Millis = 3_600_000
"""In live operation a record dated more than this (1 h) ahead of the wall clock is a dead
letter (CONTRACT §1, docs/DEAD_LETTERS.md)."""


@dataclass
class RunStats:
    """What a run did, for the closing report and the metrics."""

    records: int = 0
    contacts: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    tickets_opened: int = 0
    not_replayed: int = 0
    blank_lines: int = 0

    def summary(self) -> str:
        """One line for the person who ran it."""
        blank = f", {self.blank_lines} blank lines skipped" if self.blank_lines else ""
        return (
            f"{self.records} records, {sum(self.contacts.values())} contacts, "
            f"{self.tickets_opened} tickets opened, {sum(self.events.values())} events, "
            f"{sum(self.ignored.values())} ignored, {sum(self.dead_letters.values())} dead letters"
            f"{blank}"
        )


OutputHook = Callable[[Output], None]


class HintedMasker(Masker):
    """The runner's ``Masker``, which can be told how texts mask before the desk asks:
    ``known`` maps a text to its masked form (None: unchanged). Replay's parse worker masks
    each contact's subject and body beside parsing it (``streams.parse_pool``), and the runner
    hands that over for the record being applied; any other text is masked here."""

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: dict[str, str | None] = {}

    def mask(self, text: str) -> str:
        if self.known:
            hit = self.known.get(text, _UNKNOWN)
            if hit is not _UNKNOWN:
                return text if hit is None else hit  # type: ignore[return-value]
        return super().mask(text)


_UNKNOWN = object()


class ParseStage:
    """Stage ``parse``: a raw record to what it means (``processors.parsing``), pure apart
    from logging and the parse-lag gauge. The local runner runs it just before the desk; the
    Faust workers run it in parallel, one raw partition each, ahead of the desk
    (``streams.intake``)."""

    def __init__(
        self,
        pseudo: Pseudonymizer,
        *,
        metrics: PipelineMetrics | None = None,
        logger: Any = None,
        clock: Callable[[], Millis] = wall_clock_ms,
        max_ahead_ms: Millis | None = None,
    ) -> None:
        self.masker = HintedMasker()
        self._pseudo = pseudo
        self._metrics = metrics
        self._log = logger
        # Asked once: with debug off, no per-record line is built (only dead letters, warnings).
        self._debug = logger is not None and debug_enabled(logger)
        self._clock = clock
        # Live operation (workers, the live demo) sets this to LIVE_MAX_AHEAD_MS: a record
        # dated further ahead of the wall clock is a dead letter (CONTRACT §1). Replay leaves
        # it None and applies history as it is dated.
        self._max_ahead_ms = max_ahead_ms

    @property
    def pseudo(self) -> Pseudonymizer:
        return self._pseudo

    def parse(self, record: RawRecord) -> list[Parsed]:
        now = self._clock() if (self._metrics is not None or self._max_ahead_ms is not None) else 0
        if self._max_ahead_ms is not None and record.at > now + self._max_ahead_ms:
            items: list[Parsed] = [self.ahead_of_clock(record, now)]
        else:
            items = parse_record(record, self._pseudo, self.redact)
        return self.observe(record.at, record.ref, items, now=now)

    def observe(
        self, at: Millis, ref: str, items: list[Parsed], *, now: Millis | None = None
    ) -> list[Parsed]:
        """The stage's lag gauge and log lines for a record parsed here or by a worker
        (``streams.parse_pool``); ``now`` is the wall clock if the caller has read it."""
        if self._metrics is not None:
            self._metrics.observe_lag("parse", at, self._clock() if now is None else now)
        if self._log is not None:
            for item in items:
                if self._debug or isinstance(item, DeadLetter):
                    log_parsed(self._log, item, ref)
        return items

    def redact(self, text: str) -> str:
        """A dead letter's record as stored: personal values masked, identities as keyed
        hashes (CONTRACT §4), whatever shape the record had."""
        return self.masker.redact_json_text(text, self._pseudo.h)

    @property
    def max_ahead_ms(self) -> Millis | None:
        """How far ahead of the wall clock a record may be dated (None: any, as in replay)."""
        return self._max_ahead_ms

    def ahead_of_clock(self, record: RawRecord, now: Millis) -> DeadLetter:
        """The dead letter of a live record dated more than ``max_ahead_ms`` after ``now``: a
        connector or producer with a wrong clock must not fire every timer up to its date."""
        ahead_s = (record.at - now) // 1000
        limit_s = (self._max_ahead_ms or 0) // 1000
        return DeadLetter(
            at=record.at,
            source=record.source,
            reason=f"field at is {ahead_s} s ahead of the wall clock (more than {limit_s} s)",
            record=self.redact(record_line(record)),
            ref=record.ref,
        )


class LocalRunner:
    """Drives the desk with records and time, and writes what it emits.

    ``on_output`` (optional) sees every output, after it is handed to the writer: metrics and
    progress reporting hang there without the runner knowing about them.
    """

    def __init__(
        self,
        rules: Rules,
        pseudo: Pseudonymizer,
        writer: ProjectionWriter | None,
        *,
        on_output: OutputHook | None = None,
        metrics: PipelineMetrics | None = None,
        logger: Any = None,
        clock: Callable[[], Millis] = wall_clock_ms,
        max_ahead_ms: Millis | None = None,
        desk: Desk | None = None,
    ) -> None:
        self.parser = ParseStage(
            pseudo, metrics=metrics, logger=logger, clock=clock, max_ahead_ms=max_ahead_ms
        )
        self.masker = self.parser.masker
        # ``desk``: one whose state lives elsewhere (the Faust desk's table); ``writer`` None:
        # no warehouse here (the Faust desk publishes through ``on_output`` instead).
        self.desk = desk if desk is not None else Desk(rules, pseudo, self.masker)
        self.writer = writer
        self.stats = RunStats()
        self._on_output = on_output
        # Observability is injected: a long-running process passes its metrics and logger, a
        # replay passes neither and pays nothing for them. The clock only dates the lag gauge.
        self._metrics = metrics
        self._log = logger
        self._debug = logger is not None and debug_enabled(logger)
        self._clock = clock
        self._now: Millis | None = None
        if metrics is not None:
            # The series the rules make possible, and, for a desk built from stored state (a
            # restarted worker), its waiting tickets and open incidents: on the gauges at once,
            # not from 0 until their next event.
            metrics.observe_desk_state(self.desk)

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> Millis | None:
        """Event time: the last instant applied, None before the first."""
        return self._now

    def advance_to(self, now: Millis, *, inclusive: bool) -> None:
        """Move event time to ``now``, firing the timers it passes."""
        if self._now is not None and now < self._now:
            now = self._now  # time never runs backwards; a late record is applied "now"
        self._emit(self.desk.advance(now, inclusive=inclusive))
        self._now = now

    # -- records ------------------------------------------------------------------------------

    def feed(self, record: RawRecord) -> None:
        """Apply one record: timers before its instant fire first."""
        self.apply_parsed(record.at, self.parse(record), lambda: self.redact(record_line(record)))

    def parse(self, record: RawRecord) -> list[Parsed]:
        return self.parser.parse(record)

    def apply_parsed(
        self, at: Millis, items: Iterable[Parsed], redacted_record: Callable[[], str]
    ) -> None:
        """Stage ``desk`` of one record parsed into ``items``: timers due before ``at`` fire
        first. ``redacted_record`` gives the record as a dead letter stores it, should the
        desk refuse one of the items.

        Only a record that is understood moves event time: one that is nothing but dead
        letters (the parser's, or the desk's refusal of an agent or survey record naming no
        ticket) is reported at ``at`` without firing a timer (CONTRACT §1), so one bad line
        dated 2030 cannot breach every open ticket."""
        self.stats.records += 1
        items = list(items)
        if not all(isinstance(item, DeadLetter) or self.desk.refuses(item) for item in items):
            self.advance_to(at, inclusive=False)
        for item in items:
            self._apply(item, redacted_record)

    def redact(self, text: str) -> str:
        return self.parser.redact(text)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.stats.records += 1
        self.stats.dead_letters[letter.source] += 1
        self._emit(Output(dead_letters=(letter,)))

    def _apply(self, item: Parsed, redacted_record: Callable[[], str]) -> None:
        if isinstance(item, Ignored):
            self.stats.ignored[item.source] += 1
            return
        if isinstance(item, DeadLetter):
            self.stats.dead_letters[item.source] += 1
            # The parse stage has logged this one already: one dead letter, one log line.
            self._emit(Output(dead_letters=(item,)), logged=True)
            return
        if isinstance(item, Contact):
            self.stats.contacts[item.channel] += 1
        output = self.desk.handle(item)
        if output.dead_letters:
            # The desk names the problem; the offending record is this one, redacted.
            redacted = redacted_record()
            letters = tuple(
                DeadLetter(d.at, d.source, d.reason, redacted, d.ref) for d in output.dead_letters
            )
            self.stats.dead_letters.update(d.source for d in letters)
            output = replace(output, dead_letters=letters)
        self._emit(output)

    def _emit(self, output: Output, *, logged: bool = False) -> None:
        if not (output.events or output.tickets or output.cycles or output.dead_letters):
            return
        for event in output.events:
            self.stats.events[event.event_type] += 1
            if event.event_type == "ticket.opened":
                self.stats.tickets_opened += 1
        if self.writer is not None:
            writer = self.writer
            self._sink(lambda: writer.add_output(output))
        if self._metrics is not None:
            self._metrics.observe_output(output, self._clock())
        if self._log is not None and not logged and (self._debug or output.dead_letters):
            log_output(self._log, output, stage="desk")
        if self._on_output is not None:
            self._on_output(output)

    def flush(self) -> None:
        """Write what the sink holds now (a live run does this on a timer)."""
        if self.writer is not None:
            self._sink(self.writer.flush)

    def _sink(self, write: Callable[[], object]) -> None:
        assert self.writer is not None
        before = dict(self.writer.rows_written) if self._log is not None else {}
        try:
            write()
        except SinkError as error:
            if self._metrics is not None:
                self._metrics.observe_sink_failure()
            if self._log is not None:
                log_flush(self._log, {}, failed=str(error))
            raise
        if self._metrics is not None:
            self._metrics.observe_sink(self.writer.rows_written, self._clock())
        if self._log is not None:
            written = {
                table: count - before.get(table, 0)
                for table, count in self.writer.rows_written.items()
                if count != before.get(table, 0)
            }
            if written:
                log_flush(self._log, written)

    # -- whole runs ---------------------------------------------------------------------------

    def finish(self, until: Millis | None) -> None:
        """End of input: move time to ``until`` (or keep it at the last record) and fire every
        timer due at or before it; then flush the sink."""
        end = until if until is not None else self._now
        if end is not None:
            self.advance_to(end, inclusive=True)
        self.flush()


@contextlib.contextmanager
def embedded_warehouse(
    path: Path, rules: Rules, *, background_inserts: bool = False
) -> Iterator[ProjectionWriter]:
    """The embedded (chdb) warehouse a local run writes to: opened, migrated with the rules'
    reporting time zone (the daily views' days), and closed whatever happens. Callers compact
    it (``writer.compact()``) when their run is complete. ``background_inserts``: inserts run
    in a thread beside the run (``sinks.background``), which also opens and migrates the
    warehouse while the run starts (a replay indexes its input meanwhile), for a run that
    ends at its first warehouse failure (a replay: a warehouse that cannot be opened fails
    it at its first write)."""

    def opened() -> ChdbBackend:
        chdb = ChdbBackend(path)
        try:
            migrate(
                chdb,
                reporting_timezone=rules.reporting_timezone,
                qa_sample_per_agent_week=rules.qa.sample_per_agent_week,
            )
        except BaseException:
            chdb.close()
            raise
        return chdb

    backend: Backend = BackgroundInserts.opening(opened) if background_inserts else opened()
    try:
        yield ProjectionWriter(backend)
    finally:
        backend.close()


def read_records(
    lines: Iterable[str], source_name: str, redact: Callable[[str], str]
) -> tuple[list[RawRecord], list[DeadLetter]]:
    """Parse the envelopes of a JSON Lines input and order the records by ``at``, file order
    among equals (Python's sort is stable). Lines that are not records become dead letters; a
    dead letter whose instant cannot be read is dated at the nearest readable record before it
    (or after it, at the top of the file), so it lands on the right day."""
    records: list[RawRecord] = []
    letters: list[tuple[int, DeadLetter]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = parse_envelope(line.rstrip("\n"), f"{source_name}:{number}", redact)
        if isinstance(parsed, DeadLetter):
            letters.append((len(records), parsed))
        else:
            records.append(parsed)
    dated: list[DeadLetter] = []
    for position, letter in letters:
        if letter.at >= 0:
            dated.append(letter)
            continue
        neighbour = position - 1 if position > 0 else position
        at = records[neighbour].at if 0 <= neighbour < len(records) else 0
        dated.append(DeadLetter(at, letter.source, letter.reason, letter.record, letter.ref))
    records.sort(key=lambda r: r.at)
    return records, dated


def replay_file(
    runner: LocalRunner,
    path: Path | str,
    *,
    until: Millis | None = None,
    parse_workers: int = 0,
    stdin: IO[bytes] | None = None,
) -> RunStats:
    """Replay a JSON Lines file (``-``: standard input) through the runner. Records after
    ``until`` are not applied (they are counted in ``stats.not_replayed`` and reported), so
    ``--until`` shows the warehouse as it stood at that instant.

    The file is read through an index (``streams.replay_input``): memory holds the desk's
    state and 32 bytes a record, not the text. With ``parse_workers`` > 0 the records are
    parsed in that many worker processes (``streams.parse_pool``) while this one applies
    them, in the same order and with the same results."""
    with contextlib.ExitStack() as stack:
        handle, name = stack.enter_context(open_input(path, stdin))
        pool = (
            stack.enter_context(
                ParsePool(
                    runner.parser.pseudo,
                    parse_workers,
                    handle,
                    name,
                    languages=runner.desk.rules.languages,
                    reopen_within_ms=runner.desk.rules.reopen_within_ms,
                )
            )
            # A runner that refuses records dated ahead of the wall clock parses them itself.
            if parse_workers > 0 and runner.parser.max_ahead_ms is None
            else None
        )
        index = index_records(handle, name, runner.redact)
        runner.stats.blank_lines += index.blank_lines
        for letter in index.dead_letters:
            if until is None or letter.at <= until:
                runner.dead_letter(letter)
            else:
                runner.stats.not_replayed += 1  # after --until, as the records after it
        order = index.order()
        applied = len(order)
        if until is not None:
            applied = bisect.bisect_right(order, until, key=index.at.__getitem__)
            runner.stats.not_replayed += len(order) - applied
        positions = order[:applied]
        if pool is not None:
            number, offset, length = index.number, index.offset, index.length
            parsed = pool.parse_in_order((number[p], offset[p], length[p]) for p in positions)
        else:
            lines = (
                (index.ref(p), read_line(handle, index.offset[p], index.length[p]))
                for p in positions
            )
            parsed = _parse_here(runner, lines)
        masker, detector = runner.parser.masker, runner.desk.language_detector
        for position, (at, items, hints) in zip(positions, parsed, strict=True):
            if pool is not None:
                runner.parser.observe(at, index.ref(position), items)

            def redacted(position: int = position) -> str:
                text = read_line(handle, index.offset[position], index.length[position])
                return runner.redact(text.rstrip("\r\n"))

            if hints is None:
                runner.apply_parsed(at, items, redacted)
                continue
            # What the worker masked and detected for this record, for this record only.
            masker.known, detector.known = hints
            runner.apply_parsed(at, items, redacted)
            masker.known, detector.known = {}, {}
    runner.finish(until)
    log.info(
        "replay finished",
        records=runner.stats.records,
        tickets_opened=runner.stats.tickets_opened,
        dead_letters=sum(runner.stats.dead_letters.values()),
    )
    return runner.stats


def _parse_here(
    runner: LocalRunner, lines: Iterable[tuple[str, str]]
) -> Iterator[tuple[Millis, list[Parsed], None]]:
    """``(at, items, no hints)`` of each line, parsed in this process."""
    for ref, text in lines:
        record = parse_envelope(text, ref, runner.redact)
        if isinstance(record, DeadLetter):  # indexed as a record, so only if the file changed
            yield record.at, [record], None
        else:
            yield record.at, runner.parse(record), None

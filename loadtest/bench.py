"""The benchmark harness: what an open SLA cycle costs in memory and time; end-to-end throughput.

``python -m loadtest.bench [--sizes 10000,100000,1000000] [--out BENCHMARKS.md]`` (``make bench``)
writes ``BENCHMARKS.md``. Four parts:

* **SLA book at scale.** For each size N an ``SlaBook`` holds N open tickets, two cycles each
  (first_response and resolution, half on a 24/7 policy, half on an office-hours one), with due
  instants spread over a week. Each size runs in fresh subprocesses so that its RSS is its own:
  RSS growth per open cycle (tracemalloc off), then the per-event cost of ``open``, a public
  reply, an inbound contact, firing one timer (``advance`` popping one due timer) and
  ``next_timer`` (three processes, the median kept). Another subprocess per size builds the
  same book under ``tracemalloc`` for the bytes Python itself allocated per cycle.
* **End to end.** ``LocalRunner`` replays a generated week (``loadtest.generator.generate_week``)
  with the writer replaced by a no-op, with a writer over a backend that discards the rows, and
  into chdb in a temporary directory (a subprocess per run: chdb serves one directory per
  process).
* **Production path: parse stage and desk.** The same week as the Faust workers process it,
  without a broker: what the parallel parse stage costs per record (``streams.intake``: a raw
  Avro message to a ``desk-input`` message) against what the single desk costs
  (``streams.faust_runner.PartitionDesk``: the merge of the raw partitions, the desk's state in
  a table, the messages it publishes), and the local runner doing both in one process for
  reference. The desk's share of the per-record cost bounds what more parse workers can give.
* **Avro encoding of the desk's outputs.** Every domain event, ticket snapshot and cycle
  snapshot the desk emits over the same week, encoded as the workers publish them
  (``schemas.codec``), once by fastavro alone and once by the compiled flat writer
  (``processors.avro``) with fastavro as its fallback, alternating in one process: µs per
  message each, and their ratio (fastavro is the baseline).

The machine is shared and busy, so absolute times drift between runs. Times are CPU time of the
measuring process (waiting for a core does not count), and every figure also comes as a ratio
against a baseline measured in the same process at the same moment: a unit of plain Python work
(a dict insert and a ``heapq.heappush``) for the SLA book, JSON-parsing the same lines for the
replay and the production path. Ratios between sizes are of load-normalised costs, so "firing
costs 1.3x at 1M what it costs at 10k" does not depend on what else ran on the machine at that
moment.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import gc
import heapq
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.bench_production import BEGIN, END
from processors.rules import SlaPolicy, rules_from_mapping
from processors.slabook import SlaBook

if TYPE_CHECKING:
    from processors.ids import Pseudonymizer
    from processors.model import Output, Parsed, RawRecord
    from processors.rules import Rules
    from sinks.backend import Backend
    from sinks.writer import ProjectionWriter

__all__ = [
    "BookResult",
    "CodecResult",
    "MachineFacts",
    "ReplayResult",
    "Report",
    "bench_book",
    "bench_codec",
    "bench_production",
    "bench_replay",
    "desk_outputs",
    "main",
    "render_markdown",
    "run_benchmark",
]

REPO = Path(__file__).resolve().parent.parent
DEMO_RULES = REPO / "examples" / "rules.demo.yaml"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_OPS = 20_000
DEFAULT_REPLAY_TICKETS = 400
RAW_PARTITIONS = 6  # SUPPORTSTREAM_PARTITIONS' default (streams/settings.py)
GIB = 1 << 30

# 2026-03-02T00:00Z, a Monday; tickets open at instants spread over the week after it.
T0 = 1_772_409_600_000
SPAN_MS = 7 * 86_400_000
# A prime, so i -> i * _SPREAD % SPAN_MS is a bijection on [0, SPAN_MS): every ticket gets its
# own instant, deterministically, and the benchmark keeps no per-ticket list of its own (which
# would be counted in the book's RSS).
_SPREAD = 2_654_435_761
_BATCHES = 10  # each per-event cost is the median of this many batch averages
_UNIT_COUNT = 2_000  # entries per baseline-unit probe

_ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
_OFFICE = {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
BENCH_RULES: dict[str, Any] = {
    "version": 1,
    "calendars": {
        "always": {"timezone": "UTC", "week": _ALWAYS},
        "office": {"timezone": "Europe/Moscow", "week": _OFFICE, "holidays": ["2026-03-09"]},
    },
    "queues": [{"name": "general-l1", "default": True}],
    "sla_policies": [
        {
            "name": "vip",
            "when": {"tier": "vip"},
            "calendar": "always",
            "targets": {"first_response": "15m", "next_response": "30m", "resolution": "4h"},
        },
        {
            "name": "standard",
            "when": {},
            "calendar": "office",
            "targets": {"first_response": "1h", "next_response": "2h", "resolution": "16h"},
        },
    ],
}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


OPERATIONS = ("open", "reply", "inbound", "fire", "next_timer")


@dataclass
class BookResult:
    """One size of the SLA book benchmark. ``ns`` holds each operation's cost in nanoseconds
    per event, ``units`` the same in baseline units (each batch against a probe of the unit
    taken just before it), both the median over batches; ``unit_ns`` is the median probe."""

    tickets: int
    cycles: int  # open (running) cycles after the build
    ops: int  # events timed per operation
    build_s: float
    rss_before: int  # bytes, VmRSS before the build
    rss_after: int  # bytes, VmRSS after the build (gc collected)
    peak_rss: int  # bytes, ru_maxrss of the process
    traced_bytes: int | None  # tracemalloc: bytes Python allocated for the book (other process)
    neutral_traced_bytes: int | None  # tracemalloc: a dict + heap of as many tickets
    unit_ns: float
    neutral_build_ns: float  # dict insert + heappush per ticket, building N of them
    # open: marginal, one more ticket into the book of N; reply: a public reply fulfilling
    # first_response of a random ticket; inbound: a contact starting next_response on a replied
    # ticket; fire: advance() popping one due timer and firing it; next_timer: the peek.
    ns: dict[str, float]
    units: dict[str, float]
    fired: int  # timers fired while timing "fire"

    @property
    def rss_growth(self) -> int:
        return self.rss_after - self.rss_before

    @property
    def rss_per_cycle(self) -> float:
        return self.rss_growth / self.cycles

    @property
    def traced_per_cycle(self) -> float | None:
        return None if self.traced_bytes is None else self.traced_bytes / self.cycles

    @property
    def build_ns(self) -> float:
        """The whole build, per ticket."""
        return self.build_s * 1e9 / self.tickets


@dataclass
class ReplayResult:
    """One end-to-end variant, or one stage of the production path, from the repeat whose time
    against its baseline was the best: ``json_seconds`` is JSON-parsing the same lines in the
    same process right before it."""

    # end to end: "no-op writer", "discarding backend", "chdb"; production path: PRODUCTION_STAGES
    variant: str
    records: int
    events: int  # domain events emitted (0 for the parse stage, which emits none)
    seconds: float
    json_seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def us_per_record(self) -> float:
        return self.seconds * 1e6 / self.records

    @property
    def vs_json(self) -> float:
        return self.seconds / self.json_seconds


CODEC_KINDS = ("domain events", "ticket snapshots", "cycle snapshots")


@dataclass
class CodecResult:
    """The desk's outputs of a week encoded both ways, per kind (``CODEC_KINDS``): how many,
    and the CPU seconds for all of them, the best of the repeats: ``fastavro_seconds`` by
    fastavro alone (the reference), ``flat_seconds`` by the compiled flat writer with fastavro
    as its fallback."""

    counts: dict[str, int]
    fastavro_seconds: dict[str, float]
    flat_seconds: dict[str, float]
    fallbacks: int  # outputs the flat writer handed to fastavro
    compiled: bool  # processors.avro ran compiled

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def fastavro_us(self, kind: str | None = None) -> float:
        """µs per message of ``kind`` (None: of all of them) with fastavro alone."""
        return _per_message_us(self.counts, self.fastavro_seconds, kind)

    def flat_us(self, kind: str | None = None) -> float:
        return _per_message_us(self.counts, self.flat_seconds, kind)

    def speedup(self, kind: str | None = None) -> float:
        return self.fastavro_us(kind) / self.flat_us(kind)


def _per_message_us(counts: dict[str, int], seconds: dict[str, float], kind: str | None) -> float:
    kinds = CODEC_KINDS if kind is None else (kind,)
    return sum(seconds[k] for k in kinds) * 1e6 / sum(counts[k] for k in kinds)


@dataclass
class MachineFacts:
    date: str
    python: str
    platform: str
    cpu: str
    cores: int
    memory_gib: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class Report:
    machine: MachineFacts
    book: list[BookResult]
    replay: list[ReplayResult]
    replay_tickets: int
    lines: int  # lines in the replayed week
    book_repeats: int = 1
    # The production path (PRODUCTION_STAGES, in that order) and its raw partitions.
    production: list[ReplayResult] = field(default_factory=list)
    raw_partitions: int = RAW_PARTITIONS
    codec: CodecResult | None = None  # the Avro encoding of the desk's outputs
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Measuring helpers
# ---------------------------------------------------------------------------------------------


def _rss() -> int:
    """Resident set size of this process in bytes (VmRSS; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _peak_rss()


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _ticket_id(i: int) -> str:
    # Shaped like a real id: a channel, a 20-hex-digit pseudonym and the ticket number.
    return f"telegram:{i * 0x9E3779B97F4A7C15 % (1 << 80):020x}#1"


def _opened_at(i: int) -> int:
    return T0 + i * _SPREAD % SPAN_MS


class _Timing:
    """Per-event times, each batch next to a fresh probe of the baseline unit."""

    def __init__(self) -> None:
        # The probe's keys exist before the book is built, so they are not in its RSS growth.
        self._keys = [_ticket_id(i) for i in range(_UNIT_COUNT)]
        self.units: list[float] = []

    def unit(self, repeats: int = 3) -> float:
        """The baseline unit, in ns: one dict insert plus one heappush into fresh structures
        of a few thousand entries (small, so its cost does not depend on the book's size; the
        median of ``repeats`` probes)."""
        probes: list[float] = []
        for _ in range(repeats):
            index: dict[str, tuple[int, int]] = {}
            heap: list[tuple[int, int, str]] = []
            started = time.process_time_ns()
            for seq, key in enumerate(self._keys):
                at = T0 + seq
                index[key] = (at, seq)
                heapq.heappush(heap, (at, seq, key))
            probes.append((time.process_time_ns() - started) / len(self._keys))
        value = statistics.median(probes)
        self.units.append(value)
        return value

    def measure(
        self, items: Sequence[Any], run: Callable[[Sequence[Any]], int]
    ) -> tuple[float, float]:
        """Split ``items`` into batches, time ``run`` on each (it returns how many events it
        did) and return the medians of the per-event averages, in ns and in units of a probe
        taken just before the batch: a burst of load elsewhere spoils a batch, not the
        figure, and the unit moves with the load the batch saw."""
        size = max(1, len(items) // _BATCHES)
        averages: list[float] = []
        ratios: list[float] = []
        for lo in range(0, len(items), size):
            batch = items[lo : lo + size]
            if len(batch) < size:
                break
            unit = self.unit()
            started = time.process_time_ns()
            done = run(batch)
            elapsed = time.process_time_ns() - started
            if done:
                averages.append(elapsed / done)
                ratios.append(elapsed / done / unit)
        if not averages:
            return float("nan"), float("nan")
        return statistics.median(averages), statistics.median(ratios)


def _neutral_build(tickets: int) -> tuple[float, dict[str, tuple[int, int]], list[Any]]:
    """The neutral baseline at size N: a dict insert and a heappush per ticket, N of them."""
    index: dict[str, tuple[int, int]] = {}
    heap: list[tuple[int, int, str]] = []
    started = time.process_time_ns()
    for i in range(tickets):
        at = _opened_at(i)
        key = _ticket_id(i)
        index[key] = (at, i)
        heapq.heappush(heap, (at, i, key))
    return (time.process_time_ns() - started) / max(1, tickets), index, heap


# ---------------------------------------------------------------------------------------------
# The SLA book at one size (runs inside the measuring subprocess)
# ---------------------------------------------------------------------------------------------


def _build_book() -> tuple[SlaBook, tuple[SlaPolicy, ...]]:
    rules = rules_from_mapping(BENCH_RULES, "<bench rules>")
    policies = rules.sla_policies
    book = SlaBook(rules)
    # Build the calendars' chunk caches for the week first: they are shared, not per cycle.
    for i in range(64):
        book.open(f"warm-{i}", policies[i % 2], T0 + i * SPAN_MS // 64)
    for i in range(64):
        book.status(f"warm-{i}", T0 + i * SPAN_MS // 64 + 1, "solved")
        del book.states[f"warm-{i}"]
    return book, policies


def _open_all(book: SlaBook, policies: Sequence[SlaPolicy], lo: int, hi: int) -> None:
    vip, standard = policies[0], policies[1]
    for i in range(lo, hi):
        book.open(_ticket_id(i), standard if i & 1 else vip, _opened_at(i))


def bench_book(tickets: int, *, ops: int = DEFAULT_OPS, seed: int = 1) -> BookResult:
    """Measure the book at ``tickets`` tickets in this process (call it in a fresh one: the RSS
    figures are this process's)."""
    rng = random.Random(seed)
    timing = _Timing()
    timing.unit()
    book, policies = _build_book()
    gc.collect()
    rss_before = _rss()
    started = time.process_time()
    _open_all(book, policies, 0, tickets)
    build_s = time.process_time() - started
    gc.collect()
    rss_after = _rss()
    cycles = sum(1 for state in book.states.values() for c in state.cycles if c.live)

    # next_timer: a peek at the top of the heap.
    peeks = list(range(max(ops, 1000)))

    def peek(batch: Sequence[int]) -> int:
        for _ in batch:
            book.next_timer()
        return len(batch)

    ns: dict[str, float] = {}
    units: dict[str, float] = {}
    ns["next_timer"], units["next_timer"] = timing.measure(peeks, peek)

    # Signals on distinct random tickets, at one minute (reply) and two minutes (inbound) after
    # they opened: before their warnings, so the cost is the signal's own.
    signalled = rng.sample(range(tickets), min(ops, tickets // 2))

    def reply(batch: Sequence[int]) -> int:
        for i in batch:
            book.public_reply(_ticket_id(i), _opened_at(i) + 60_000)
        return len(batch)

    def inbound(batch: Sequence[int]) -> int:
        for i in batch:
            book.inbound(_ticket_id(i), _opened_at(i) + 120_000)
        return len(batch)

    gc.collect()
    ns["reply"], units["reply"] = timing.measure(signalled, reply)
    ns["inbound"], units["inbound"] = timing.measure(signalled, inbound)

    # Marginal open: more tickets into the book of N (ids and instants continue the sequence).
    extra = min(ops, tickets // 2)
    new_ids = list(range(tickets, tickets + extra))

    def open_more(batch: Sequence[int]) -> int:
        _open_all(book, policies, batch[0], batch[-1] + 1)
        return len(batch)

    gc.collect()
    ns["open"], units["open"] = timing.measure(new_ids, open_more)

    # Firing: advance to the earliest pending instant, inclusive, which pops the due timer(s)
    # there, fires them and reschedules their tickets. Every pop yields one output (a warning
    # or a breach), so the outputs count the timers fired.
    fired_total = 0

    def fire(batch: Sequence[int]) -> int:
        nonlocal fired_total
        fired = 0
        for _ in batch:
            now = book.next_timer()
            if now is None:
                break
            for _ticket in book.advance(now, inclusive=True):
                fired += 1
        fired_total += fired
        return fired

    gc.collect()
    ns["fire"], units["fire"] = timing.measure(list(range(min(ops, tickets))), fire)

    peak_rss = _peak_rss()  # before the neutral build below adds its own
    neutral_ns, _index, _heap = _neutral_build(tickets)
    return BookResult(
        tickets=tickets,
        cycles=cycles,
        ops=min(ops, tickets // 2),
        build_s=build_s,
        rss_before=rss_before,
        rss_after=rss_after,
        peak_rss=peak_rss,
        traced_bytes=None,
        neutral_traced_bytes=None,
        unit_ns=statistics.median(timing.units),
        neutral_build_ns=neutral_ns,
        ns={name: ns[name] for name in OPERATIONS},
        units={name: units[name] for name in OPERATIONS},
        fired=fired_total,
    )


def traced_book_bytes(tickets: int) -> tuple[int, int]:
    """Bytes Python allocates for a book of ``tickets`` tickets, and for the neutral dict + heap
    of as many, by tracemalloc (run in its own process: tracing slows and inflates everything)."""
    book, policies = _build_book()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _open_all(book, policies, 0, tickets)
    gc.collect()
    book_bytes = tracemalloc.get_traced_memory()[0] - before
    del book
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    _ns, index, heap = _neutral_build(tickets)
    neutral_bytes = tracemalloc.get_traced_memory()[0] - before
    del index, heap
    tracemalloc.stop()
    return book_bytes, neutral_bytes


# ---------------------------------------------------------------------------------------------
# End to end (runs inside a subprocess)
# ---------------------------------------------------------------------------------------------


def _week_file(directory: Path, tickets: int, seed: int) -> Path:
    from loadtest.generator import generate_week

    start = dt.datetime.fromisoformat("2026-03-02T00:00:00+03:00")
    path = directory / f"week-{tickets}-{seed}.jsonl"
    if not path.exists():
        generate_week(start, seed, tickets).write_jsonl(path)
    return path


def _json_seconds(path: Path, repeats: int) -> float:
    lines = path.read_text(encoding="utf-8").split("\n")
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for line in lines:
            if line.strip():
                with contextlib.suppress(ValueError):  # a few lines are broken on purpose
                    json.loads(line)
        best = min(best, time.process_time() - started)
    return best


class _DiscardingBackend:
    """A ``sinks.backend.Backend`` that accepts everything and keeps nothing."""

    def execute(self, sql: str) -> None:
        pass

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        pass

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return []

    def query_formatted(self, sql: str, fmt: str) -> str:
        return ""

    def close(self) -> None:
        pass


def _noop_writer(backend: Backend) -> ProjectionWriter:
    """The writer replaced by a no-op: the runner's output goes nowhere."""
    from sinks.writer import ProjectionWriter

    class _NoopWriter(ProjectionWriter):
        def add_output(self, output: Output) -> None:
            pass

        def flush(self) -> int:
            return 0

    return _NoopWriter(backend)


def _replay_once(path: Path, variant: str, warehouse: Path | None) -> tuple[int, int, float]:
    from processors.ids import DEV_PII_KEY, Pseudonymizer
    from processors.rules import load_rules
    from sinks.writer import ProjectionWriter
    from streams.local import LocalRunner, replay_file

    rules = load_rules(DEMO_RULES)
    pseudo = Pseudonymizer.from_text(DEV_PII_KEY)
    backend: Backend
    if variant == "chdb":
        from sinks.chdb_backend import ChdbBackend
        from sinks.migrate import migrate

        assert warehouse is not None
        backend = ChdbBackend(warehouse)
        migrate(backend)
    else:
        backend = _DiscardingBackend()
    try:
        writer = _noop_writer(backend) if variant == "no-op writer" else ProjectionWriter(backend)
        runner = LocalRunner(rules, pseudo, writer)
        gc.collect()
        started = time.process_time()
        stats = replay_file(runner, path)  # ends with writer.flush(): every row is written
        seconds = time.process_time() - started
    finally:
        backend.close()
    return stats.records, sum(stats.events.values()), seconds


def bench_replay(
    path: Path, variant: str, *, repeats: int, warehouse: Path | None = None
) -> ReplayResult:
    """Replay ``path`` ``repeats`` times in this process (chdb: once, into ``warehouse``, as
    chdb serves one directory per process) and return the best time with its same-process
    JSON baseline."""
    runs: list[ReplayResult] = []
    with _quiet_logs():
        for _ in range(1 if variant == "chdb" else repeats):
            json_seconds = _json_seconds(path, 3)  # next to the replay: both see the same load
            records, events, seconds = _replay_once(path, variant, warehouse)
            runs.append(ReplayResult(variant, records, events, seconds, json_seconds))
    return min(runs, key=lambda run: run.vs_json)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """structlog filtering out everything below ERROR while measuring (the desk's info lines
    are not what is measured), and the caller's configuration back afterwards: the benchmark
    functions also run inside other processes' tests."""
    import structlog

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        yield
    finally:
        structlog.configure(**saved)


# ---------------------------------------------------------------------------------------------
# Production path: parse stage and desk (runs inside a subprocess)
# ---------------------------------------------------------------------------------------------

PARSE_STAGE = "parse stage"
DESK_STAGE = "desk"
LOCAL_BOTH = "LocalRunner parse + apply"
LOCAL_DESK = "LocalRunner desk alone"
PRODUCTION_STAGES = (PARSE_STAGE, DESK_STAGE, LOCAL_BOTH, LOCAL_DESK)
"""The rows of the production-path table: the two stages of the production path and the local
runner, which does both in one process, for reference."""

_MARK_UPTO = 2**62  # a closing mark's instant: after every record of the week


@dataclass(frozen=True)
class _RawMessage:
    """One message of ``raw-contacts``: the Avro value, where it sits, its Kafka timestamp."""

    data: bytes
    partition: int
    offset: int
    timestamp: int


def _raw_messages(
    records: Sequence[RawRecord], pseudo: Pseudonymizer, partitions: int
) -> list[_RawMessage]:
    """The week on ``raw-contacts`` as ``streams.faust_runner.publish_jsonl`` publishes it: in
    replay order, each record stamped with its place in that order (``sequence``) and keyed by
    its conversation; the partition is a stable hash of the key (crc32; Kafka's default
    partitioner uses murmur2, and only the spread matters here)."""
    from processors.model import DeadLetter, Ignored
    from streams.connectors.envelope import conversation_key
    from streams.faust_runner import encode_raw
    from streams.local import ParseStage

    parser = ParseStage(pseudo)
    offsets = [0] * partitions
    messages: list[_RawMessage] = []
    for sequence, record in enumerate(records):
        acted = [
            item for item in parser.parse(record) if not isinstance(item, Ignored | DeadLetter)
        ]
        key = conversation_key(acted[0], pseudo) if acted else f"{record.source}:unparsed"
        partition = zlib.crc32(key.encode()) % partitions
        data = encode_raw(record, connector="bench", sequence=sequence)
        messages.append(_RawMessage(data, partition, offsets[partition], record.at))
        offsets[partition] += 1
    return messages


def _parse_stage(pseudo: Pseudonymizer, raw: Sequence[_RawMessage], partitions: int) -> list[bytes]:
    """Stage parse, as the workers' intake agent runs it on every raw message: the Avro
    envelope and the channel's payload to an ``Entry`` (``Intake.entry``), and that to the
    ``desk-input`` JSON it forwards (``encode_input``)."""
    from streams.intake import Intake, encode_input
    from streams.local import ParseStage

    intake = Intake(ParseStage(pseudo))
    return [
        encode_input(
            intake.entry(
                m.data,
                partition=m.partition,
                offset=m.offset,
                partitions=partitions,
                timestamp=m.timestamp,
            )
        )
        for m in raw
    ]


def _closing_marks(raw: Sequence[_RawMessage], partitions: int) -> list[bytes]:
    """Each raw partition's owner saying its partition holds nothing more: a ``Mark`` at its
    end offset, after every record's instant, so the merge releases every entry."""
    from streams.intake import Mark, encode_input

    ends = [0] * partitions
    for m in raw:
        ends[m.partition] = m.offset + 1
    return [encode_input(Mark(p, ends[p], partitions, _MARK_UPTO)) for p in range(partitions)]


def _desk(
    rules: Rules,
    pseudo: Pseudonymizer,
    table: MutableMapping[str, Any],
    inputs: Sequence[bytes],
    end: int,
) -> int:
    """Stage desk, as the workers' desk agent runs it on the one ``desk-input`` partition:
    every message through ``PartitionDesk.apply_input`` (decoding, the merge, applying what it
    releases, the input's transaction in the table, the messages to publish), then a tick to
    the last record's instant (what ``replay`` fires at the end). Returns the domain events
    published."""
    from streams.faust_runner import PartitionDesk

    desk = PartitionDesk(rules, pseudo, table)
    events = 0
    for offset, data in enumerate(inputs):
        events += sum(1 for m in desk.apply_input(data, 0, offset) if m[0] == "domain-events")
    events += sum(1 for m in desk.tick(end, 0, 0) if m[0] == "domain-events")
    if desk.merge.pending:
        raise RuntimeError(f"the merge still holds {desk.merge.pending} entries")
    return events


def _local(
    rules: Rules,
    pseudo: Pseudonymizer,
    records: Sequence[RawRecord],
    parsed: Sequence[list[Parsed]] | None,
) -> int:
    """The local runner over the same records with a no-op writer: parse and apply each
    (``LocalRunner.feed``), or, given ``parsed``, apply the items parsed beforehand
    (``apply_parsed``, the desk alone); then ``finish`` as ``replay`` does. Returns the domain
    events emitted."""
    from streams.local import LocalRunner

    runner = LocalRunner(rules, pseudo, _noop_writer(_DiscardingBackend()))
    if parsed is None:
        for record in records:
            runner.feed(record)
    else:
        for record, items in zip(records, parsed, strict=True):
            runner.apply_parsed(record.at, items, functools.partial(runner.redact, record.text))
    runner.finish(None)
    return sum(runner.stats.events.values())


def bench_production(
    path: Path, *, repeats: int, partitions: int = RAW_PARTITIONS
) -> list[ReplayResult]:
    """The production path on the week in ``path``, measured in this process with the
    desk's info lines filtered out (:func:`_bench_production` says what is measured)."""
    with _quiet_logs():
        return _bench_production(path, repeats=repeats, partitions=partitions)


def _bench_production(
    path: Path, *, repeats: int, partitions: int = RAW_PARTITIONS
) -> list[ReplayResult]:
    """The production path on the week in ``path``, in this process, one row per
    ``PRODUCTION_STAGES`` entry, each the best of ``repeats`` against its JSON baseline.

    The records are those ``replay`` applies (the few lines that are not records at all go to
    the dead-letter topic when published, not through the stages). Encoding them as raw Avro
    messages over ``partitions`` raw partitions is done once, untimed. The desk gets the
    entries in the week's order (as if the parse workers kept pace with each other, so the
    merge holds a few entries at a time), then each partition's closing mark."""
    from processors.ids import DEV_PII_KEY, Pseudonymizer
    from processors.rules import load_rules
    from streams.local import ParseStage, read_records

    rules = load_rules(DEMO_RULES)
    pseudo = Pseudonymizer.from_text(DEV_PII_KEY)
    with path.open(encoding="utf-8", errors="replace") as handle:
        records, _letters = read_records(handle, path.name, ParseStage(pseudo).redact)
    raw = _raw_messages(records, pseudo, partitions)
    marks = _closing_marks(raw, partitions)
    parser = ParseStage(pseudo)
    parsed = [parser.parse(record) for record in records]
    end = records[-1].at
    inputs: list[bytes] = []

    def parse() -> int:
        nonlocal inputs
        inputs = _parse_stage(pseudo, raw, partitions) + marks
        return 0

    runs: dict[str, Callable[[], int]] = {
        PARSE_STAGE: parse,
        DESK_STAGE: lambda: _desk(rules, pseudo, {}, inputs, end),
        LOCAL_BOTH: lambda: _local(rules, pseudo, records, None),
        LOCAL_DESK: lambda: _local(rules, pseudo, records, parsed),
    }
    best: dict[str, ReplayResult] = {}
    for _ in range(max(1, repeats)):
        for stage in PRODUCTION_STAGES:
            json_seconds = _json_seconds(path, 3)  # next to the stage: both see the same load
            gc.collect()
            started = time.process_time()
            events = runs[stage]()
            seconds = time.process_time() - started
            run = ReplayResult(stage, len(records), events, seconds, json_seconds)
            if stage not in best or run.vs_json < best[stage].vs_json:
                best[stage] = run
    return [best[stage] for stage in PRODUCTION_STAGES]


def desk_outputs(path: Path) -> list[Output]:
    """Every output the desk emits replaying the week in ``path`` (demo rules, the generator's
    key), in order: what the workers encode and publish."""
    from processors.ids import DEV_PII_KEY, Pseudonymizer
    from processors.rules import load_rules
    from streams.local import LocalRunner, replay_file

    pseudo = Pseudonymizer.from_text(DEV_PII_KEY)
    outputs: list[Output] = []
    runner = LocalRunner(load_rules(DEMO_RULES), pseudo, None, on_output=outputs.append)
    with _quiet_logs():
        replay_file(runner, path)
    return outputs


def bench_codec(path: Path, *, repeats: int) -> CodecResult:
    """The domain events, ticket snapshots and cycle snapshots the desk emits over the week in
    ``path``, each kind encoded with ``CODEC`` (the flat writers) and with a codec that has
    none (fastavro), alternating, ``repeats`` times each; the best time of each is kept."""
    from processors import native
    from schemas.codec import CODEC, Codec

    outputs = desk_outputs(path)
    events = [e for o in outputs for e in o.events]
    tickets = [t for o in outputs for t in o.tickets]
    cycles = [c for o in outputs for c in o.cycles]
    reference = Codec(flat_writers=False)
    encoders: dict[str, Callable[[Codec], list[bytes]]] = {
        CODEC_KINDS[0]: lambda codec: [codec.encode_event(e) for e in events],
        CODEC_KINDS[1]: lambda codec: [codec.encode_ticket(t) for t in tickets],
        CODEC_KINDS[2]: lambda codec: [codec.encode_cycle(c) for c in cycles],
    }
    for kind, encode in encoders.items():
        if encode(CODEC) != encode(reference):
            raise RuntimeError(f"the flat writers and fastavro disagree on the week's {kind}")
    best = {name: {kind: float("inf") for kind in CODEC_KINDS} for name in ("fastavro", "flat")}
    for _ in range(max(1, repeats)):
        for kind, encode in encoders.items():
            for name, codec in (("fastavro", reference), ("flat", CODEC)):
                gc.collect()
                started = time.process_time()
                encode(codec)
                best[name][kind] = min(best[name][kind], time.process_time() - started)
    return CodecResult(
        counts=dict(zip(CODEC_KINDS, (len(events), len(tickets), len(cycles)), strict=True)),
        fastavro_seconds=best["fastavro"],
        flat_seconds=best["flat"],
        fallbacks=_flat_fallbacks(CODEC, events, tickets, cycles),
        compiled="processors.avro" in native.native_modules(),
    )


def _flat_fallbacks(
    codec: Any, events: Sequence[Any], tickets: Sequence[Any], cycles: Sequence[Any]
) -> int:
    """How many of the outputs the flat writers hand back to fastavro."""
    from schemas.codec import (
        CYCLE_STATE,
        TICKET_STATE,
        event_record,
        schema_name_for_event,
        state_record,
    )

    records = (
        [(schema_name_for_event(e.event_type), event_record(e)) for e in events]
        + [(TICKET_STATE, state_record(t)) for t in tickets]
        + [(CYCLE_STATE, state_record(c)) for c in cycles]
    )
    fallbacks = 0
    for name, record in records:
        writer = codec.flat_writer(name)
        fallbacks += writer is None or writer.write(record) is None
    return fallbacks


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


def _child(args: Sequence[str]) -> Any:
    """Run ``python -m loadtest.bench --child ...`` and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--child", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_facts() -> MachineFacts:
    cpu = platform.processor() or platform.machine()
    memory = 0.0
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        names = [
            line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return MachineFacts(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=platform.platform(terse=True),
        cpu=cpu,
        cores=os.cpu_count() or 1,
        memory_gib=round(memory, 1),
        load_before=os.getloadavg(),
    )


def run_benchmark(
    sizes: Iterable[int] = DEFAULT_SIZES,
    *,
    ops: int = DEFAULT_OPS,
    replay_tickets: int = DEFAULT_REPLAY_TICKETS,
    replay_repeats: int = 5,
    book_repeats: int = 3,
    seed: int = 1,
    with_sink: bool = True,
    traced: bool = True,
    with_production: bool = True,
    with_codec: bool = True,
    raw_partitions: int = RAW_PARTITIONS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """The whole benchmark, each measurement in a fresh subprocess. Each size of the book is
    measured in ``book_repeats`` processes and each cost is the median over them (the memory
    figures are the first process's). ``with_sink`` adds the chdb replay; ``traced`` the
    tracemalloc pass per size; ``with_production`` the production path (parse stage and desk)
    over ``raw_partitions`` raw partitions, ``replay_repeats`` repeats in one process;
    ``with_codec`` the Avro encoding of the week's desk outputs, fastavro against the flat
    writer, as many repeats in one process."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    machine = machine_facts()
    book: list[BookResult] = []
    for size in sorted(sizes):
        book_runs: list[BookResult] = []
        for k in range(max(1, book_repeats)):
            say(f"SLA book, {size} tickets, run {k + 1} of {max(1, book_repeats)}")
            book_runs.append(BookResult(**_child(["book", str(size), str(ops), str(seed)])))
        result = _merge_runs(book_runs)
        if traced:
            say(f"SLA book, {size} tickets, traced")
            result.traced_bytes, result.neutral_traced_bytes = _child(["traced", str(size)])
        book.append(result)
    replay: list[ReplayResult] = []
    scratch = Path(tempfile.mkdtemp(prefix="supportstream-bench-"))
    try:
        say(f"generating a week of {replay_tickets} tickets")
        path = _week_file(scratch, replay_tickets, seed)
        lines = sum(1 for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
        variants = ["no-op writer", "discarding backend"] + (["chdb"] if with_sink else [])
        for variant in variants:
            say(f"replay, {variant}")
            # chdb serves one warehouse per process: a child per repeat (at most three, each
            # opens the engine), the best kept.
            children = min(replay_repeats, 3) if variant == "chdb" else 1
            runs = [
                ReplayResult(
                    **_child(["replay", variant, str(path), str(replay_repeats), str(scratch)])
                )
                for _ in range(children)
            ]
            replay.append(min(runs, key=lambda run: run.vs_json))
        production: list[ReplayResult] = []
        if with_production:
            say(f"production path, {raw_partitions} raw partitions")
            production = [
                ReplayResult(**row)
                for row in _child(
                    ["production", str(path), str(replay_repeats), str(raw_partitions)]
                )
            ]
        codec: CodecResult | None = None
        if with_codec:
            say("Avro encoding of the desk's outputs, fastavro and the flat writer")
            codec = CodecResult(**_child(["codec", str(path), str(replay_repeats)]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    machine.load_after = os.getloadavg()
    return Report(
        machine=machine,
        book=book,
        replay=replay,
        replay_tickets=replay_tickets,
        lines=lines,
        book_repeats=max(1, book_repeats),
        production=production,
        raw_partitions=raw_partitions,
        codec=codec,
        wall_s=time.perf_counter() - started,
    )


def _merge_runs(runs: Sequence[BookResult]) -> BookResult:
    """The first run with every time replaced by the median over the runs: a burst of load
    that spoils one process's measurement of one operation does not reach the report."""
    first = runs[0]
    first.unit_ns = statistics.median(r.unit_ns for r in runs)
    first.neutral_build_ns = statistics.median(r.neutral_build_ns for r in runs)
    first.build_s = statistics.median(r.build_s for r in runs)
    first.ns = {name: statistics.median(r.ns[name] for r in runs) for name in OPERATIONS}
    first.units = {name: statistics.median(r.units[name] for r in runs) for name in OPERATIONS}
    return first


def _child_main(args: Sequence[str]) -> int:
    kind, *rest = args
    answer: Any
    if kind == "book":
        tickets, ops, seed = (int(x) for x in rest)
        answer = asdict(bench_book(tickets, ops=ops, seed=seed))
    elif kind == "traced":
        answer = list(traced_book_bytes(int(rest[0])))
    elif kind == "replay":
        variant, path, repeats, scratch = rest
        warehouse = Path(tempfile.mkdtemp(prefix="warehouse-", dir=scratch))
        answer = asdict(
            bench_replay(Path(path), variant, repeats=int(repeats), warehouse=warehouse)
        )
    elif kind == "production":
        path, repeats, partitions = rest
        answer = [
            asdict(row)
            for row in bench_production(
                Path(path), repeats=int(repeats), partitions=int(partitions)
            )
        ]
    elif kind == "codec":
        path, repeats = rest
        answer = asdict(bench_codec(Path(path), repeats=int(repeats)))
    else:
        raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(answer))
    return 0


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def render_markdown(report: Report, *, command: str = "python -m loadtest.bench") -> str:
    """``BENCHMARKS.md``: the tables, what they mean, how to rerun, on what machine."""
    m = report.machine
    out: list[str] = []
    add = out.append
    add("# Benchmarks")
    add("")
    add(
        "Generated by `loadtest/bench.py` (do not edit by hand). Rerun with `make bench`; this "
        f"file came from `{command}`. Measured {m.date} on {m.cpu}, {m.cores} cores, "
        f"{m.memory_gib} GiB RAM, {m.python}, {m.platform}; load average (1/5/15 min) "
        f"{_load(m.load_before)} at the start and {_load(m.load_after)} at the end; the run "
        f"took {report.wall_s:,.0f} s."
    )
    add("")
    add(
        "The machine is shared and busy, so absolute times move from run to run. Times are CPU "
        "time of the measuring process (`time.process_time`), so waiting for a core does not "
        "count; contention for caches and memory still does, and CPU speed differs between "
        "machines. Every time therefore also comes as a ratio against a baseline measured in "
        "the same process at the same moment; compare ratios, not microseconds, between runs "
        "and machines."
    )
    add("")
    if report.book:
        _render_headline(report, add)
        _render_book(report, add)
    if report.replay:
        _render_replay(report, add)
    if report.production:
        _render_production(report, add)
    if report.codec is not None:
        _render_codec(report.codec, report.replay_tickets, add)
    add("## How to rerun")
    add("")
    add("```sh")
    add("make bench                                    # all sizes, writes BENCHMARKS.md")
    add("python -m loadtest.bench --sizes 10000,100000 --no-sink --out -   # a quick look")
    add("python -m loadtest.bench --json bench.json    # also the raw figures")
    add("```")
    add("")
    add(
        "Options: `--sizes` (open tickets per measurement), `--ops` (events timed per "
        f"operation, default {DEFAULT_OPS:,}), `--replay-tickets` (tickets in the generated "
        f"week, default {DEFAULT_REPLAY_TICKETS}), `--book-repeats` (processes per size, "
        "default 3), `--no-sink` (skip chdb), `--no-traced` "
        "(skip the tracemalloc pass, which is the slowest part), `--no-production` (skip the "
        "production path), `--no-codec` (skip the Avro encoding), `--raw-partitions` (its raw "
        "partitions, default "
        f"{RAW_PARTITIONS}), `--out`, `--json`. The 1M "
        "size needs about 1.5 GiB of free memory and a few minutes."
    )
    for note in report.notes:
        add("")
        add(note)
    add("")
    return "\n".join(out)


def _render_headline(report: Report, add: Callable[[str], None]) -> None:
    base, top = report.book[0], report.book[-1]
    add("## Headline")
    add("")
    million = top.rss_before + 1_000_000 * top.rss_per_cycle
    add(
        f"- **Memory:** {top.cycles:,} open cycles ({top.tickets:,} tickets, two cycles each) "
        f"grow the process by {_mib(top.rss_growth)} MiB: **{top.rss_per_cycle:,.0f} bytes per "
        f"open cycle** (RSS), {_maybe(top.traced_per_cycle)} bytes as tracemalloc counts them. "
        f"The process then holds {top.rss_after / GIB:.2f} GiB (peak "
        f"{top.peak_rss / GIB:.2f} GiB, dict resizes included). **One million open cycles**: "
        f"about {million / GIB:.2f} GiB for the whole process "
        f"({top.rss_before / (1 << 20):,.0f} MiB before the book plus 1M x the bytes per cycle)."
    )
    growth = top.units["fire"] / base.units["fire"]
    add(
        f"- **Firing a timer** costs {_us(top.ns['fire'])} µs at {top.tickets:,} tickets and "
        f"{_us(base.ns['fire'])} µs at {base.tickets:,}: **{growth:.2f}x** load-normalised "
        f"(raw {top.ns['fire'] / base.ns['fire']:.2f}x) for {top.tickets / base.tickets:,.0f}x "
        "the open cycles. The timer queue is a heap (O(log n) per timer) and nothing scans the "
        "tickets; what growth there is comes from a deeper heap and cache misses in a larger "
        "working set."
    )
    if report.replay:
        first = report.replay[0]
        rest = "; ".join(
            f"{r.records_per_s:,.0f} records/s ({r.events_per_s:,.0f} events/s) with {r.variant}"
            for r in report.replay[1:]
        )
        add(
            f"- **End to end**, a generated week of {report.lines:,} records: "
            f"{first.records_per_s:,.0f} records/s ({first.events_per_s:,.0f} domain events/s) "
            f"through the processors alone ({first.variant})"
            + (f"; {rest}" if rest else "")
            + ". One process, one core."
        )
    if report.production:
        rows = _production_rows(report)
        parse, desk = rows[PARSE_STAGE], rows[DESK_STAGE]
        share = _split(rows, DESK_STAGE)[0]
        add(
            f"- **Production path:** the parallel parse stage costs {parse.us_per_record:,.0f} "
            f"µs per record, the single desk {desk.us_per_record:,.0f} µs: **the desk is "
            f"{share:.0%} of the per-record CPU**, load-normalised, so parse workers can speed "
            f"the path up by at most **{1 / share:.2f}x**; without Kafka the desk's ceiling is "
            f"{desk.records_per_s:,.0f} records/s per core (Kafka, Faust and the sink come on "
            "top: *Production path end to end*, `loadtest/bench_production.py`)."
        )
    add("")


def _render_book(report: Report, add: Callable[[str], None]) -> None:
    base = report.book[0]
    add("## SLA book: memory per open cycle")
    add("")
    add(
        "An `SlaBook` (`processors/slabook.py`) holding N open tickets, each opened with "
        "`SlaBook.open` and so running two cycles (first_response and resolution). Half the "
        "tickets are on a 24/7 policy, half on an office-hours policy (Europe/Moscow, lunch "
        "break), opened at instants spread over a week; the rules come from "
        "`processors.rules.rules_from_mapping`. Each size is built in a fresh process. *RSS "
        "growth* is VmRSS after the build minus before it, garbage collected, with tracemalloc "
        "off; *traced* is what `tracemalloc` counts for the same build in another process. Both "
        "include the ticket ids (the dict keys, about 90 bytes per ticket here), which a "
        "running desk shares with its own ticket records. The *neutral* baseline is the least "
        "any keyed timer queue holds: a dict entry plus a heap entry `(at, seq, key)` per "
        "ticket, traced the same way. RSS below 100k tickets is coarse: the allocator reuses "
        "memory freed while warming up."
    )
    add("")
    add(
        "| tickets | open cycles | RSS growth, MiB | process RSS, MiB | peak RSS, MiB "
        "| RSS bytes / cycle | traced bytes / cycle | neutral traced bytes / ticket "
        "| book / neutral (traced) |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in report.book:
        neutral = r.neutral_traced_bytes
        ratio = (
            f"{r.traced_bytes / neutral:.1f}x" if r.traced_bytes is not None and neutral else "n/a"
        )
        add(
            f"| {r.tickets:,} | {r.cycles:,} | {_mib(r.rss_growth)} | {_mib(r.rss_after)} "
            f"| {_mib(r.peak_rss)} | {r.rss_per_cycle:,.0f} | {_maybe(r.traced_per_cycle)} "
            f"| {_maybe(None if neutral is None else neutral / r.tickets)} | {ratio} |"
        )
    add("")
    add("## SLA book: cost per event")
    add("")
    add(
        "Each operation is timed over up to `ops` events in ten batches; a process's figure is "
        "the median of the batch averages, and the figure shown is the median over "
        f"{report.book_repeats} processes per size. *open*: one more ticket into the book of N "
        "(the marginal cost). "
        "*reply*: a public agent reply on a random ticket, fulfilling its first_response. "
        "*inbound*: a customer contact on one of those replied tickets, starting next_response. "
        "*fire*: `SlaBook.advance` to the earliest pending instant, which pops that timer, "
        "fires the warning or breach and reschedules the ticket (per timer fired). "
        "*next_timer*: the peek the runner does before every record. The *unit* is the "
        "same-process baseline: one dict insert plus one `heapq.heappush` into fresh structures "
        f"of {_UNIT_COUNT:,} entries, probed right before every batch. *neutral build*: a dict "
        "insert and a heappush per ticket while building N of them (the same count as the book)."
    )
    add("")
    add(
        "| tickets | ops | unit, µs | neutral build, µs | book build, µs | "
        + " | ".join(f"{name}, µs" for name in OPERATIONS)
        + " |"
    )
    add("|---:" * (5 + len(OPERATIONS)) + "|")
    for r in report.book:
        add(
            f"| {r.tickets:,} | {r.ops:,} | {_us(r.unit_ns)} | {_us(r.neutral_build_ns)} "
            f"| {_us(r.build_ns)} | " + " | ".join(_us(r.ns[name]) for name in OPERATIONS) + " |"
        )
    add("")
    add(
        "The same costs in units (each batch divided by the unit probed just before it), and "
        f"each size against the smallest ({base.tickets:,} tickets) in units. A ratio near 1 "
        "means the cost does not grow with the number of open cycles; a heap's O(log n) shows "
        "as a slow rise; a scan over the tickets would show as a ratio near the size ratio."
    )
    add("")
    add(
        "| tickets | "
        + " | ".join(f"{name}, units" for name in OPERATIONS)
        + " | "
        + " | ".join(f"{name} vs smallest" for name in OPERATIONS)
        + " |"
    )
    add("|---:" * (1 + 2 * len(OPERATIONS)) + "|")
    for r in report.book:
        add(
            f"| {r.tickets:,} | "
            + " | ".join(f"{r.units[name]:,.1f}" for name in OPERATIONS)
            + " | "
            + " | ".join(f"{r.units[name] / base.units[name]:.2f}x" for name in OPERATIONS)
            + " |"
        )
    add("")
    add(
        "Reading it for capacity: *bytes / cycle* is one running SLA cycle with its share of "
        "its ticket's SLA state, timer-queue entry and dict slots. Multiply by the open cycles "
        "you expect (two per open ticket with a policy, three while a next_response runs) and "
        "add the process's base. Per-event costs are the SLA's alone; the desk, parsing and the "
        "sink come on top (next section)."
    )
    add("")


def _render_replay(report: Report, add: Callable[[str], None]) -> None:
    add("## End to end: LocalRunner replaying a generated week")
    add("")
    add(
        f"`loadtest.generator.generate_week` with {report.replay_tickets} tickets (seed 1): "
        f"{report.lines:,} JSON Lines records of every channel, malformed ones included, "
        "replayed by `streams.local.replay_file` with `examples/rules.demo.yaml`, each variant "
        "in a fresh process: reading and ordering the file, parsing every channel, threading, "
        "identity, classification, tickets, SLA, and the sink. *no-op writer*: the "
        "`ProjectionWriter` replaced by one that drops what it is given (processing alone). "
        "*discarding backend*: the real writer (rows built and batched) over a backend that "
        "throws the batches away. *chdb*: the embedded warehouse in a temporary directory, "
        "migrated before the clock starts; the final flush is timed, `OPTIMIZE ... FINAL` is "
        "not. The baseline is `json.loads` of the same lines in the same process right before "
        "each repeat (best of three); *vs JSON* is how many times longer the replay takes than "
        "parsing the JSON alone. *seconds* are CPU seconds of the process (chdb's engine "
        "threads included), so *records/s* are per core. Each variant is repeated (the no-op "
        "and discarding ones five times in one process, chdb in three processes) and a row is "
        "the repeat with the lowest "
        "*vs JSON*: a replay lasts about a second, so one burst of load elsewhere would "
        "otherwise decide the figure. Compare variants by *vs JSON*, not by seconds."
    )
    add("")
    add(
        "| variant | records | domain events | seconds | records/s | events/s "
        "| JSON parse, ms | vs JSON |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in report.replay:
        add(
            f"| {r.variant} | {r.records:,} | {r.events:,} | {r.seconds:,.2f} "
            f"| {r.records_per_s:,.0f} | {r.events_per_s:,.0f} | {r.json_seconds * 1000:,.1f} "
            f"| {r.vs_json:,.0f}x |"
        )
    add("")
    if len(report.replay) > 1:
        first, last = report.replay[0], report.replay[-1]
        share = max(0.0, 1 - first.vs_json / last.vs_json)
        add(
            f"The sink's share of the {last.variant} run, from the *vs JSON* ratios, is about "
            f"{share:.0%}; the rest is processing. A local runner is one process on one core; "
            "the Faust workers spread the parse stage over the raw partitions, and the desk "
            "stays one process (next section)."
        )
        add("")


def _production_rows(report: Report) -> dict[str, ReplayResult]:
    return {r.variant: r for r in report.production}


def _split(rows: dict[str, ReplayResult], desk: str) -> tuple[float, float]:
    """(desk share of parse + desk, parse / desk), from the load-normalised *vs JSON* costs."""
    parse, applied = rows[PARSE_STAGE].vs_json, rows[desk].vs_json
    return applied / (parse + applied), parse / applied


def _render_production(report: Report, add: Callable[[str], None]) -> None:
    rows = _production_rows(report)
    parse, local_both, local_desk = rows[PARSE_STAGE], rows[LOCAL_BOTH], rows[LOCAL_DESK]
    not_records = report.lines - parse.records
    add("## Production path: parse stage and desk")
    add("")
    add(
        "What the Faust workers (`streams/faust_app.py`) do with the same week, without a "
        f"broker, all in one fresh process. The {parse.records:,} records `replay` applies "
        f"(the {not_records} lines that are not records at all go to the dead-letter topic "
        "when published) are published as `publish_jsonl` does it, before the clock starts: "
        "Avro `RawContact` messages (`streams.faust_runner.encode_raw`, with their `sequence`) "
        f"over {report.raw_partitions} raw partitions keyed by conversation. *parse stage*: "
        "what a worker does with every raw message of the partitions it owns, in parallel "
        "over the partitions: `Intake(ParseStage(pseudo)).entry` (`streams/intake.py`: the "
        "Avro envelope, the channel's payload, e-mail MIME, identities and their keyed "
        "hashes) and `encode_input`, the `desk-input` JSON. *desk*: what the one desk does "
        "with all of them: `PartitionDesk.apply_input` per `desk-input` message (decoding it, "
        "the merge of the raw partitions, `streams/sequencer.py`, applying the entries it "
        "releases, the input's transaction in the desk table, the Avro messages to publish, "
        "and its logging, with the lines filtered out), the entries in the week's order, then "
        "each partition's closing `Mark`, then a tick to the last record's instant as `replay` "
        "ends. The desk table is a plain dict holding what the desk writes, each value's JSON "
        "bytes (what a worker's Faust table keeps in memory, without its changelog): the desk "
        "encodes every value it writes and decodes a key when it first reads it, as in a "
        "worker. For reference, *LocalRunner parse + apply* is the local "
        "runner doing both on the same records with a no-op writer and no logger (the "
        "end-to-end no-op writer run without reading the file), and *LocalRunner desk alone* "
        "the same runner applying items parsed beforehand. Baseline and repeats as in the "
        "end-to-end part (`json.loads` of the week's lines right before each stage, the best "
        "*vs JSON* of the repeats); every desk and runner row emits the same "
        f"{local_both.events:,} domain events."
    )
    add("")
    add(
        "| stage | records | domain events | CPU seconds | records/s | µs / record "
        "| JSON parse, ms | vs JSON |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in report.production:
        events = f"{r.events:,}" if r.variant != PARSE_STAGE else "n/a"
        add(
            f"| {r.variant} | {r.records:,} | {events} | {r.seconds:,.2f} "
            f"| {r.records_per_s:,.0f} | {r.us_per_record:,.0f} "
            f"| {r.json_seconds * 1000:,.1f} | {r.vs_json:,.0f}x |"
        )
    add("")
    add(
        "How the production path's per-record CPU splits, from the *vs JSON* figures (each "
        "stage against its own baseline, so the ratios do not depend on the load of the "
        "moment):"
    )
    add("")
    add("| | desk |")
    add("|---|---:|")
    desk = rows[DESK_STAGE]
    share, ratio = _split(rows, DESK_STAGE)
    add(f"| desk's share of parse + desk | {share:.0%} |")
    add(f"| parse / desk | {ratio:.2f} |")
    add(
        "| parse + desk vs LocalRunner parse + apply | "
        f"{(parse.vs_json + desk.vs_json) / local_both.vs_json:.2f}x |"
    )
    add(f"| desk vs LocalRunner parse + apply | {desk.vs_json / local_both.vs_json:.2f}x |")
    add(f"| desk vs LocalRunner desk alone | {desk.vs_json / local_desk.vs_json:.2f}x |")
    add(f"| largest speed-up parse workers can give, (parse + desk) / desk | {1 / share:.2f}x |")
    add("")
    workers = math.floor(ratio) + 1  # the least P above the ratio
    limit = f"from P = {workers} on"
    if workers == 1:
        limit = "already with one parse worker on a core of its own beside the desk"
    add(
        "What this means for scaling: with P workers parsing, each record costs parse / P of "
        "parse-stage CPU per worker and the full desk cost on the desk's one core, so the desk "
        f"is the limit once parse / P < desk, that is P > parse / desk = {ratio:.2f}: {limit}. "
        "However many parse workers run, the path is then at most (parse + desk) / desk = "
        f"**{1 / share:.2f}x** faster than one core doing both stages, and its ceiling is the "
        f"desk's own throughput, {desk.records_per_s:,.0f} records/s per core here, without "
        "Kafka, Faust or the sink (those are measured end to end by "
        "`loadtest/bench_production.py`, next section). "
        + (
            "That is less than one local runner parsing and applying on one core "
            f"({local_both.records_per_s:,.0f} records/s): the desk alone costs "
            f"{desk.vs_json / local_both.vs_json:.2f}x what the local runner's "
            "parse and apply cost together, load-normalised. "
            if desk.vs_json > local_both.vs_json
            else f"The local runner does parse and apply at {local_both.records_per_s:,.0f}. "
        )
        + "Past that point more workers add availability, not throughput; a faster path "
        "needs a cheaper desk."
    )
    add("")


def _render_codec(codec: CodecResult, tickets: int, add: Callable[[str], None]) -> None:
    add("## Avro encoding of the desk's outputs")
    add("")
    how = "compiled with mypyc" if codec.compiled else "interpreted (not compiled)"
    add(
        f"Every message the desk publishes over the same week ({tickets} tickets), encoded as "
        "the workers encode them (`schemas.codec`: the record built from the event or "
        "snapshot, the single-object header, the Avro body), once with fastavro alone "
        "(`schemaless_writer`, the baseline) and once with the flat writer of "
        f"`processors/avro.py` ({how}), which hands back to fastavro what it is not sure to "
        f"write as fastavro does ({codec.fallbacks:,} of these messages). Both give the same "
        "bytes (checked before timing). The two alternate in one process, kind by kind; each "
        "figure is the best of the repeats, in CPU time."
    )
    add("")
    add("| messages | count | fastavro, µs / message | flat writer, µs / message | speed-up |")
    add("|---|---:|---:|---:|---:|")
    for kind in (*CODEC_KINDS, None):
        count = codec.messages if kind is None else codec.counts[kind]
        add(
            f"| {kind or 'all'} | {count:,} | {codec.fastavro_us(kind):,.2f} "
            f"| {codec.flat_us(kind):,.2f} | {codec.speedup(kind):.1f}x |"
        )
    add("")
    add(
        f"The flat writer encodes the desk's outputs **{codec.speedup():.1f}x** as fast as "
        "fastavro, building the records from the events and snapshots included."
    )
    add("")


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f}"


def _us(ns: float) -> str:
    return f"{ns / 1000:,.2f}"


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("sizes must be integers >= 100")
    return sizes


def _with_replay_section(path: Path, text: str) -> str:
    """``text`` with the replay section ``loadtest.replay_bench`` wrote into ``path`` kept."""
    from loadtest.replay_bench import MARK_END, MARK_START

    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARK_START not in old or MARK_END not in old:
        return text
    section = MARK_START + old.split(MARK_START, 1)[1].split(MARK_END, 1)[0] + MARK_END
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="SLA book memory and per-event cost at scale, end-to-end replay "
        "throughput, the production path's split between parse stage and desk, and the Avro "
        "encoding of the desk's outputs; writes BENCHMARKS.md.",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="open tickets per measurement, comma-separated (default 10000,100000,1000000)",
    )
    parser.add_argument("--ops", type=int, default=DEFAULT_OPS, help="events timed per operation")
    parser.add_argument("--replay-tickets", type=int, default=DEFAULT_REPLAY_TICKETS)
    parser.add_argument(
        "--book-repeats", type=int, default=3, help="processes per size; costs are the median"
    )
    parser.add_argument("--no-sink", action="store_true", help="skip the chdb replay")
    parser.add_argument("--no-traced", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument(
        "--no-production", action="store_true", help="skip the production path (parse and desk)"
    )
    parser.add_argument(
        "--no-codec",
        action="store_true",
        help="skip the Avro encoding of the desk's outputs (fastavro and the flat writer)",
    )
    parser.add_argument(
        "--raw-partitions",
        type=int,
        default=RAW_PARTITIONS,
        help=f"raw partitions of the production path (default {RAW_PARTITIONS})",
    )
    parser.add_argument("--out", default="BENCHMARKS.md", help="markdown report ('-': stdout)")
    parser.add_argument("--json", default=None, help="also write the raw results as JSON here")
    args = parser.parse_args(argv)
    report = run_benchmark(
        args.sizes,
        ops=args.ops,
        replay_tickets=args.replay_tickets,
        book_repeats=args.book_repeats,
        with_sink=not args.no_sink,
        traced=not args.no_traced,
        with_production=not args.no_production,
        with_codec=not args.no_codec,
        raw_partitions=max(1, args.raw_partitions),
        progress=lambda message: print(f"bench: {message}", file=sys.stderr, flush=True),
    )
    shown = ["python -m loadtest.bench"]
    if args.sizes != list(DEFAULT_SIZES):
        shown.append("--sizes " + ",".join(str(s) for s in args.sizes))
    if args.raw_partitions != RAW_PARTITIONS:
        shown.append(f"--raw-partitions {args.raw_partitions}")
    text = render_markdown(report, command=" ".join(shown))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        previous = out.read_text(encoding="utf-8") if out.exists() else ""
        if BEGIN in previous and END in previous:
            # The end-to-end production section is bench_production's (a broker and real
            # processes, minutes of its own): kept as it was measured.
            kept = previous[previous.index(BEGIN) : previous.index(END) + len(END)]
            text = text.rstrip("\n") + "\n\n" + kept + "\n"
        out.write_text(_with_replay_section(out, text), encoding="utf-8")
        print(f"bench: wrote {args.out}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replay's benchmark: ``supportstream replay`` over a generated week, against its own limits.

``python -m loadtest.replay_bench [--tickets 3000] [--days 7] [--seed 5] [--scale 10]
[--write BENCHMARKS.md]`` (``make bench-replay``) measures, in one run on one machine:

- **replay**: the real command (``python -m streams.cli replay``, a fresh process with its
  parse worker) over the week with ``examples/rules.demo.yaml``: wall time, CPU time (user +
  sys of the command and every process it started, from ``RUSAGE_CHILDREN``), records/s wall and
  per CPU-second, and its peak RSS. It runs three times into fresh warehouses (the best wall is
  reported: a replay lasts seconds, so one burst of load elsewhere would otherwise decide the
  figure) and once more into the same warehouse, whose tables must not change (CONTRACT §5).
- **baselines**, in the same run: ``json.loads`` of the same lines (the least any replay can
  cost per record) and a raw columnar insert of the same rows (every row the replay wrote, read
  back and inserted into a fresh embedded warehouse through ``Backend.insert``): the sink's
  floor. Replay is reported as a multiple of each.
- **parse cost per source**: ``processors.parsing.parse_line`` over the week's lines of each
  source, µs per record (best of five passes), and e-mail against chat and Telegram.
- **memory**: peak RSS of the replay at 1x and ``--scale``x the week (the same days with
  ``--scale`` times the tickets), and what that says per record.

The machine may be shared: the load average at the start and the end is printed with the
figures, and ratios measured in the same run are the figures to compare between machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.model_cache import load_model

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / ".supportstream" / "cache"
"""The language model's cache (``streams.model_cache``) of the processes the benchmarks here
measure, filled before the first (``use_model_cache``): each maps the model from it, as any
process after the first on a machine does (the first decompresses it;
``loadtest.bench_language`` measures both)."""
RULES = REPO / "examples" / "rules.demo.yaml"
START = "2026-03-02T00:00:00+03:00"
PII_KEY = "replay-bench-key"
TABLES = ("events", "sla_metrics", "tickets", "dead_letters", "contact_reasons_daily")
MARK_START = "<!-- replay-bench:start -->"
MARK_END = "<!-- replay-bench:end -->"


@dataclass
class ReplayRun:
    wall: float
    cpu: float
    peak_rss_mib: float
    records: int
    worker_peak_rss_mib: float = 0.0
    domain: str = ""  # how the replay ran the domain: processors.native.describe()

    @property
    def per_wall(self) -> float:
        return self.records / self.wall

    @property
    def per_cpu(self) -> float:
        return self.records / self.cpu


@dataclass
class Report:
    tickets: int
    days: int
    seed: int
    scale: int
    records: int = 0
    emails: int = 0
    file_mib: float = 0.0
    replays: list[ReplayRun] = field(default_factory=list)
    rerun_identical: bool = False
    json_seconds: float = 0.0
    insert_rows: int = 0
    insert_seconds: float = 0.0
    parse_us: dict[str, tuple[int, float]] = field(default_factory=dict)
    scaled: ReplayRun | None = None
    scaled_records: int = 0
    load_start: tuple[float, ...] = ()
    load_end: tuple[float, ...] = ()
    started: str = ""
    took: float = 0.0

    def best(self) -> ReplayRun:
        return min(self.replays, key=lambda run: run.wall)

    @property
    def domain(self) -> str:
        """How the replays ran the domain (compiled or interpreted), as they reported it."""
        return "; ".join(sorted({run.domain for run in self.replays})) or "unknown"


def generate(path: Path, tickets: int, days: int, seed: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "loadtest.generator", "--start", START, "--days", str(days),
         "--tickets", str(tickets), "--seed", str(seed), "--pii-key", PII_KEY, "--out", str(path)],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "SUPPORTSTREAM_PII_KEY": PII_KEY, "SUPPORTSTREAM_METRICS_PORT": "0"}


def replay(path: Path, warehouse: Path, records: int) -> ReplayRun:
    """One ``supportstream replay`` in a fresh process: wall, CPU of it and its children, and
    its peak RSS (the command reports it on stderr through ``_child``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.replay_bench", "--child", str(path), str(warehouse)],
        cwd=REPO, env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"replay failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_kib = max(int(line.split()[1]) for line in done.stderr.splitlines()
                   if line.startswith("peak-rss-kib "))  # fmt: skip
    worker_kib = max([int(line.split()[1]) for line in done.stderr.splitlines()
                      if line.startswith("worker-peak-rss-kib ")] or [0])  # fmt: skip
    domain = next((line.split(" ", 1)[1] for line in done.stderr.splitlines()
                   if line.startswith("domain ")), "")  # fmt: skip
    return ReplayRun(wall, cpu, peak_kib / 1024, records, worker_kib / 1024, domain)


def _child(path: str, warehouse: str) -> int:
    """Inside the measured process: the command line's replay, then its peak RSS."""
    import threading

    from processors.native import describe
    from streams.cli import main

    # The parse worker's peak, from its own /proc/PID/status (VmHWM): the rusage of a child
    # counts what the parent had resident when it forked it, before its exec.
    peaks: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            for pid in _children():
                peaks[pid] = max(peaks.get(pid, 0), _peak_kib(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = main(["replay", "--rules", str(RULES), "--input", path, "--warehouse", warehouse])
    done.set()
    watcher.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak-rss-kib {own}", file=sys.stderr)
    print(f"worker-peak-rss-kib {max(peaks.values(), default=0)}", file=sys.stderr)
    print(f"domain {describe()}", file=sys.stderr)  # the modules this replay imported
    return code


def _children() -> list[int]:
    pids: list[int] = []
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.extend(int(pid) for pid in children.read_text().split())
    return pids


def _peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def checksums(warehouse: Path) -> dict[str, Any]:
    """Row count and an order-independent hash of every table (FINAL)."""
    query = " UNION ALL ".join(
        f"SELECT '{t}' AS t, count() AS n, sum(cityHash64(*)) AS h FROM supportstream.{t} FINAL"
        for t in TABLES
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sql", "--warehouse", str(warehouse), "--format",
         "JSONEachRow", query], cwd=REPO, env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {row["t"]: (row["n"], row["h"]) for row in rows}


def use_model_cache() -> None:
    """Fill :data:`CACHE_DIR` and point the processes started from here at it (they inherit
    ``SUPPORTSTREAM_CACHE_DIR``)."""
    os.environ["SUPPORTSTREAM_CACHE_DIR"] = str(CACHE_DIR)
    load_model(CACHE_DIR)


def json_baseline(lines: list[str]) -> float:
    """CPU seconds of ``json.loads`` over the lines (best of five)."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for line in lines:
            with contextlib.suppress(ValueError):
                json.loads(line)
        best = min(best, time.process_time() - started)
    return best


def insert_baseline(warehouse: Path, scratch: Path) -> tuple[int, float]:
    """Every row the replay wrote, inserted raw (columnar, one ``Backend.insert`` per table)
    into a fresh warehouse: rows and CPU seconds (best of three, in a fresh process)."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.replay_bench", "--insert-child", str(warehouse),
         str(scratch)], cwd=REPO, env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"insert baseline failed: {done.stderr[-2000:]}")
    rows, seconds = done.stdout.split()
    return int(rows), float(seconds)


def _insert_child(source: str, scratch: str) -> int:
    """Rows read in one process (chdb serves one directory per process), inserted in another
    (``_insert_grandchild``) so that both warehouses are never open in one process."""
    from sinks.chdb_backend import ChdbBackend
    from sinks.writer import _CYCLES, _DEAD_LETTERS, _EVENTS, _TICKETS

    backend = ChdbBackend(source)
    batches: dict[str, tuple[tuple[str, ...], list[list[Any]]]] = {}
    for spec in (_EVENTS, _CYCLES, _TICKETS, _DEAD_LETTERS):
        columns = ", ".join(spec.columns)
        rows = backend.query(f"SELECT {columns} FROM supportstream.{spec.name} FINAL")
        batches[spec.name] = (spec.columns, [[row[c] for c in spec.columns] for row in rows])
    backend.close()
    import pickle

    data = pickle.dumps(batches)
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.replay_bench", "--insert-grandchild", scratch],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    sys.stdout.write(done.stdout.decode())
    sys.stderr.write(done.stderr.decode())
    return done.returncode


def _insert_grandchild(scratch: str) -> int:
    import pickle

    from processors.rules import load_rules
    from sinks.chdb_backend import ChdbBackend
    from sinks.migrate import migrate

    batches = pickle.loads(sys.stdin.buffer.read())
    best = float("inf")
    total = sum(len(rows) for _, rows in batches.values())
    for attempt in range(3):
        path = Path(scratch) / f"insert-{attempt}"
        backend = ChdbBackend(path)
        migrate(backend, reporting_timezone=load_rules(RULES).reporting_timezone)
        started = time.process_time()
        for name, (columns, rows) in batches.items():
            for start in range(0, len(rows), 5000):  # the writer's batch size
                backend.insert(f"supportstream.{name}", columns, rows[start : start + 5000])
        best = min(best, time.process_time() - started)
        backend.close()
    print(total, best)
    return 0


def parse_costs(lines: list[str]) -> dict[str, tuple[int, float]]:
    """µs per record of ``parse_line`` for each source (best of five passes over them all)."""
    from processors.ids import Pseudonymizer
    from processors.parsing import parse_line
    from processors.pii import Masker

    pseudo = Pseudonymizer.from_text(PII_KEY)
    masker = Masker()

    def redact(text: str) -> str:
        return masker.redact_json_text(text, pseudo.h)

    by_source: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        try:
            source = json.loads(line).get("source")
        except (ValueError, AttributeError):
            continue
        if isinstance(source, str):
            by_source[source].append(line)
    groups = {source: group for source, group in sorted(by_source.items()) if len(group) >= 5}
    # Every pass times every source, so that the sources compared are measured minutes apart
    # at most, never one before and the other after a change of the machine's speed.
    best = dict.fromkeys(groups, float("inf"))
    for _ in range(5):
        for source, group in groups.items():
            started = time.process_time()
            for number, line in enumerate(group):
                parse_line(line, f"bench:{number}", pseudo, redact)
            best[source] = min(best[source], time.process_time() - started)
    return {
        source: (len(group), best[source] / len(group) * 1e6) for source, group in groups.items()
    }


def run(tickets: int, days: int, seed: int, scale: int, repeats: int = 3) -> Report:
    report = Report(tickets, days, seed, scale)
    report.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    from processors.native import describe

    print(f"replay_bench: {describe()}", file=sys.stderr)
    report.load_start = os.getloadavg()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        scratch = Path(tmp)
        week = scratch / "week.jsonl"
        generate(week, tickets, days, seed)
        use_model_cache()
        lines = week.read_text(encoding="utf-8").splitlines()
        report.records = sum(1 for line in lines if line.strip())
        report.emails = sum(1 for line in lines if '"source": "email"' in line)
        report.file_mib = week.stat().st_size / 2**20
        report.json_seconds = json_baseline(lines)
        report.parse_us = parse_costs(lines)
        for attempt in range(repeats):
            warehouse = scratch / f"wh-{attempt}"
            report.replays.append(replay(week, warehouse, report.records))
        first = scratch / "wh-0"
        before = checksums(first)
        replay(week, first, report.records)
        report.rerun_identical = checksums(first) == before
        report.insert_rows, report.insert_seconds = insert_baseline(first, scratch)
        for attempt in range(repeats):
            shutil.rmtree(scratch / f"wh-{attempt}", ignore_errors=True)
        if scale > 1:
            big = scratch / "scaled.jsonl"
            generate(big, tickets * scale, days, seed)
            with big.open(encoding="utf-8") as handle:
                report.scaled_records = sum(1 for line in handle if line.strip())
            report.scaled = replay(big, scratch / "wh-scaled", report.scaled_records)
    report.load_end = os.getloadavg()
    report.took = time.perf_counter() - began
    return report


def render(report: Report) -> str:
    best = report.best()
    json_per_record = report.json_seconds / report.records
    insert_per_row = report.insert_seconds / max(report.insert_rows, 1)
    out: list[str] = [MARK_START, "## Replay: records/s on two cores, against its limits", ""]
    add = out.append
    add(f"**Domain: {report.domain}** (`processors/native.py`, docs/REPLAY.md).")
    add("")
    cores = os.cpu_count() or 1
    add(
        f"Generated by `loadtest/replay_bench.py` (`make bench-replay`, or `python -m "
        f"loadtest.replay_bench --write BENCHMARKS.md`); measured {report.started} on "
        f"{_cpu_name()}, {cores} cores, CPython "
        f"{platform.python_version()}; load average (1/5/15 min) "
        f"{' / '.join(f'{x:.2f}' for x in report.load_start)} at the start and "
        f"{' / '.join(f'{x:.2f}' for x in report.load_end)} at the end; the run took "
        f"{report.took:.0f} s. A load average above the number of cores means the replay shared "
        "them with other work: its wall figures are then pessimistic, its CPU figures less so."
    )
    add("")
    add(
        f"The week: `python -m loadtest.generator --start {START} --days {report.days} "
        f"--tickets {report.tickets} --seed {report.seed}` ({report.records:,} records, "
        f"{report.emails:,} e-mails, {report.file_mib:.1f} MiB), replayed by `supportstream "
        "replay --rules examples/rules.demo.yaml` in a fresh process (the command as a user runs "
        "it: reading and ordering the file, a parse worker process beside the desk, the "
        "embedded warehouse opened, migrated, written and compacted; the language model mapped "
        "from its cache, `SUPPORTSTREAM_CACHE_DIR`, written before the first run). *CPU* is "
        "user + sys of the command and every process it started. Best wall of "
        f"{len(report.replays)} runs into fresh warehouses; a further replay into the same "
        "warehouse left every table "
        + (
            "**identical** (row counts and content hashes under FINAL)."
            if report.rerun_identical
            else "**changed**: replaying twice is not idempotent, a bug."
        )
    )
    add("")
    add(
        "| | records | wall, s | CPU, s | records/s wall | records/s per CPU-second "
        "| peak RSS, MiB | parse worker's peak RSS, MiB |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for number, run_ in enumerate(report.replays, start=1):
        mark = " (best)" if run_ is best else ""
        add(
            f"| replay, run {number}{mark} | {run_.records:,} | {run_.wall:.2f} | {run_.cpu:.2f} | "
            f"{run_.per_wall:,.0f} | {run_.per_cpu:,.0f} | {run_.peak_rss_mib:.0f} | "
            f"{run_.worker_peak_rss_mib:.0f} |"
        )
    add("")
    add("Against the limits measured in the same run:")
    add("")
    add("| | per record, µs CPU | records/s per CPU-second | replay's CPU as a multiple |")
    add("|---|---:|---:|---:|")
    replay_us = best.cpu / best.records * 1e6
    add(f"| replay (best run) | {replay_us:.0f} | {best.per_cpu:,.0f} | 1x |")
    add(
        f"| `json.loads` of the same lines | {json_per_record * 1e6:.1f} | "
        f"{1 / json_per_record:,.0f} | {best.cpu / report.json_seconds:.0f}x |"
    )
    add(
        f"| raw columnar insert of the same rows ({report.insert_rows:,} rows, "
        f"{report.insert_rows / report.records:.1f} a record) | "
        f"{report.insert_seconds / report.records * 1e6:.0f} | "
        f"{report.records / report.insert_seconds:,.0f} | "
        f"{best.cpu / report.insert_seconds:.1f}x |"
    )
    add("")
    add(
        f"The raw insert alone runs at {1 / insert_per_row:,.0f} rows/s per CPU-second "
        "(`Backend.insert` on chdb, JSONCompactColumns, batches of 5,000 rows as the writer "
        "sends them)."
    )
    add("")
    add("### Parse cost per source")
    add("")
    add(
        "`processors.parsing.parse_line` (envelope, payload, identities and their keyed "
        "hashes, e-mail MIME) over the week's lines of each source, in this process, best of "
        "five passes, each pass timing every source in turn (so that a change of the "
        "machine's speed falls on every source alike); malformed lines of a source are "
        "included."
    )
    add("")
    chat = report.parse_us.get("chat", (0, 0.0))[1]
    telegram = report.parse_us.get("telegram", (0, 0.0))[1]
    add("| source | records | µs / record | vs chat | vs telegram |")
    add("|---|---:|---:|---:|---:|")
    for source, (count, micros) in sorted(report.parse_us.items(), key=lambda kv: -kv[1][1]):
        vs_chat = f"{micros / chat:.1f}x" if chat else "n/a"
        vs_tg = f"{micros / telegram:.1f}x" if telegram else "n/a"
        add(f"| {source} | {count:,} | {micros:.1f} | {vs_chat} | {vs_tg} |")
    add("")
    add("### Memory")
    add("")
    if report.scaled is not None:
        scaled = report.scaled
        per_record = (
            (scaled.peak_rss_mib - best.peak_rss_mib)
            * 2**20
            / max(report.scaled_records - report.records, 1)
        )
        add(
            f"Peak RSS of the replay process: **{best.peak_rss_mib:.0f} MiB** for the week "
            f"({report.records:,} records) and **{scaled.peak_rss_mib:.0f} MiB** for "
            f"{report.scale}x the week ({report.scaled_records:,} records, the same days with "
            f"{report.scale}x the tickets): {per_record:,.0f} bytes per extra record. Its parse "
            f"worker (the parsers and the language model) peaked at "
            f"**{best.worker_peak_rss_mib:.0f} MiB** and **{scaled.worker_peak_rss_mib:.0f} MiB**: "
            "it keeps only a conversation's last contact time and the customers' mail ids. The "
            "file is read through an index of 32 bytes a record and never held as text; what "
            "grows is the desk's state (tickets, conversations, customers, open SLA cycles) and "
            f"the index. The {report.scale}x replay ran at {scaled.per_wall:,.0f} records/s "
            f"wall, {scaled.per_cpu:,.0f} per CPU-second ({scaled.wall:.1f} s wall)."
        )
    add("")
    add(MARK_END)
    return "\n".join(out) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_section(path: Path, section: str) -> None:
    """Put the section into ``path``, replacing an earlier one, else at the end."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--child"]:
        return _child(args_list[1], args_list[2])
    if args_list[:1] == ["--insert-child"]:
        return _insert_child(args_list[1], args_list[2])
    if args_list[:1] == ["--insert-grandchild"]:
        return _insert_grandchild(args_list[1])
    parser = argparse.ArgumentParser(prog="python -m loadtest.replay_bench", description=__doc__)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10, help="memory run: N x the tickets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="put the section into this markdown file")
    args = parser.parse_args(args_list)
    report = run(args.tickets, args.days, args.seed, args.scale, args.repeats)
    section = render(report)
    if args.write is not None:
        write_section(args.write, section)
    sys.stdout.write(section)
    return 0 if report.rerun_identical else 1


if __name__ == "__main__":
    sys.exit(main())

"""The production path end to end, on a real broker, with real worker and sink processes.

``python -m loadtest.bench_production [--out BENCHMARKS.md]`` generates the week of issue 12
(``--start 2026-03-02T00:00:00+03:00 --days 7 --tickets 3000 --seed 5``), starts its own
noida-db broker on loopback and measures, in one run, side by side:

* **replay**: ``supportstream replay`` of the file into a fresh embedded warehouse (one
  process: read, order, parse, desk, sink, compaction), the fastest of five runs, three
  before the production paths and two after them;
* **raw aiokafka copy**: a plain aiokafka consumer reads every message of ``raw-contacts`` and
  a plain aiokafka producer writes the same bytes to another topic (no decoding, no state):
  the ceiling of any Kafka path over this broker;
* **production path**: the published week (publishing excluded) through ``supportstream
  worker`` (one, then two with the default standby copy of the desk's table, then two
  without: ``SUPPORTSTREAM_STANDBY_REPLICAS=0``) and one ``supportstream sink`` into chdb,
  from the workers' start to the last row in the warehouse; each the fastest of ``--runs``
  runs (default 2), each run on a broker holding only its published week, as replay's figure
  is the fastest of five;
* **sink alone**: a second sink, in a new consumer group and a fresh warehouse, over the
  output topics the production run left, against **raw insert**: the same rows, read back from
  that warehouse, inserted by the backend's own ``insert`` in batches of the sink's size.

Every figure comes as a ratio against a baseline measured in the same run, since the machine
may be shared. CPU seconds are those of the processes measured (``wait4`` rusage: every thread,
chdb's included). The broker's CPU is reported apart. The run cleans up its broker, its
processes and its temporary directory (``--keep`` keeps the directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtest.broker import Broker, free_port
from loadtest.replay_bench import json_baseline, use_model_cache

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "rules.demo.yaml"
SUPPORTSTREAM = Path(sys.executable).with_name("supportstream")
KEY = "bench-production-key"
START = "2026-03-02T00:00:00+03:00"
BEGIN = "<!-- bench_production: begin -->"
END = "<!-- bench_production: end -->"
SINK_TABLES = ("events", "tickets", "sla_metrics", "dead_letters")
OUTPUT_TOPICS = ("domain-events", "ticket-state", "sla-state", "dead-letters")


@dataclass
class Figure:
    """One measured path."""

    name: str
    includes: str
    records: int
    wall_s: float
    cpu_s: float
    broker_cpu_s: float = 0.0
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.cpu_s / self.records if self.records else 0.0


SPEED_LINES: list[str] = []
"""The week's lines, for :func:`machine_speed` (set once the week is generated)."""


def machine_speed() -> float:
    """CPU seconds ``json.loads`` takes over the week's lines (replay's benchmark's baseline),
    measured just before each run: this virtual machine's speed drifts by half or more
    within minutes, so each path's figures are also given in units of this baseline, taken
    next to them (``normalized``)."""
    return json_baseline(SPEED_LINES)


def normalized(figure: Figure) -> float:
    """The figure's wall time in units of the baseline measured just before it."""
    return figure.wall_s / figure.extra["baseline_s"]


@dataclass
class Report:
    started: str
    machine: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    duration_s: float = 0.0
    records: int = 0
    lines: int = 0
    command: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The broker's CPU seconds for TRICKLE_WRITES one-message writes a second apart, holding
    # what the one-worker run left (MB of its store) and holding nothing.
    trickle_loaded_s: float | None = None
    trickle_empty_s: float | None = None
    store_mb: float = 0.0


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


@dataclass
class Child:
    """A measured process: started, then reaped with ``wait4`` for its CPU seconds."""

    process: subprocess.Popen[bytes]
    log: Path
    cpu_s: float = 0.0
    code: int | None = None

    def reap(self, block: bool) -> bool:
        if self.code is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.code = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.code
        self.cpu_s = usage.ru_utime + usage.ru_stime
        return True


class Deployment:
    """One deployment on the broker: topic prefix, consumer group, chdb warehouse."""

    def __init__(self, root: Path, bootstrap: str, partitions: int, prefix: str = "") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        run = uuid.uuid4().hex[:8]
        self.warehouse = root / "warehouse"
        self.env = dict(
            os.environ,
            SUPPORTSTREAM_KAFKA_BOOTSTRAP=bootstrap,
            SUPPORTSTREAM_TOPIC_PREFIX=prefix or f"b{run}.",
            SUPPORTSTREAM_PARTITIONS=str(partitions),
            SUPPORTSTREAM_CONSUMER_GROUP=f"bench-{run}",
            SUPPORTSTREAM_PII_KEY=KEY,
            SUPPORTSTREAM_CLICKHOUSE_URL=f"chdb://{self.warehouse}",
            SUPPORTSTREAM_STATE_DIR=str(root / "state"),
            SUPPORTSTREAM_REBALANCE_TIMEOUT="6",
        )
        self.children: list[Child] = []
        self._logs = 0

    @property
    def prefix(self) -> str:
        return self.env["SUPPORTSTREAM_TOPIC_PREFIX"]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(SUPPORTSTREAM), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"supportstream {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start(self, *args: str) -> Child:
        self._logs += 1
        path = self.root / f"{args[0]}-{self._logs}.log"
        process = subprocess.Popen(
            [str(SUPPORTSTREAM), *args],
            env={**self.env, "SUPPORTSTREAM_METRICS_PORT": str(free_port())},
            stdout=path.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        child = Child(process, path)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            if child.code is None and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        for child in self.children:
            with contextlib.suppress(ChildProcessError):
                deadline = time.monotonic() + 30
                while not child.reap(block=False) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if child.code is None:
                    child.process.kill()
                    child.reap(block=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("*.log"))
        )


Ends = dict[Any, int]


def _caught_up(
    deployment: Deployment, group: str, names: Sequence[str], since: Ends | None = None
) -> tuple[bool, Ends]:
    """Whether consumer group ``group`` has committed every partition of the deployment's
    topics ``names`` up to ``since`` (the ends an earlier check saw; their current ends when
    None), and their current ends. Live workers keep writing marks and ticks a few times a
    second, so "up to the ends a second ago" is what "caught up" can mean for them."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=deployment.env["SUPPORTSTREAM_KAFKA_BOOTSTRAP"],
        group_id=group,
        enable_auto_commit=False,
    )
    try:
        tps = [
            TopicPartition(f"{deployment.prefix}{name}", partition)
            for name in names
            for partition in consumer.partitions_for_topic(f"{deployment.prefix}{name}") or ()
        ]
        ends: Ends = consumer.end_offsets(tps)
        floor = ends if since is None else since
        done = bool(tps) and all((consumer.committed(tp) or 0) >= floor.get(tp, 0) for tp in tps)
        return done, ends
    finally:
        consumer.close(autocommit=False)


def _sink_caught_up(deployment: Deployment, since: Ends | None = None) -> tuple[bool, Ends]:
    """Whether the sink's consumer group has committed every output topic (to ``since``)."""
    group = f"{deployment.env['SUPPORTSTREAM_CONSUMER_GROUP']}-sink"
    return _caught_up(deployment, group, OUTPUT_TOPICS, since)


def _flushes(log: Path) -> tuple[float, int]:
    """The wall-clock instant of the sink's last flush and the rows of all its flushes, from
    its log (one ``sink flushed`` line per insert batch)."""
    last, rows = 0.0, 0
    for line in log.read_text(errors="replace").splitlines():
        if '"sink flushed"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            record = json.loads(line)
            stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            last = max(last, stamp.timestamp())
            rows += sum(record["rows"].values())
    return last, rows


def _workers_caught_up(deployment: Deployment, since: Ends | None = None) -> tuple[bool, Ends]:
    """Whether the workers' group has committed ``raw-contacts`` and ``desk-input`` (to
    ``since``): every raw message parsed and forwarded, every desk input applied."""
    group = deployment.env["SUPPORTSTREAM_CONSUMER_GROUP"]
    return _caught_up(deployment, group, ("raw-contacts", "desk-input"), since)


def _drain(
    deployment: Deployment, workers: list[Child], sink: Child, timeout_s: float, started: float
) -> tuple[float, int]:
    """Wait until the workers have applied everything (their group's offsets are at the ends
    of raw-contacts and desk-input, as the check a second earlier saw them: the workers keep
    writing marks) and the sink has committed every output message, three checks in a row, a
    second apart, with no flush in between; then stop them all (SIGTERM).
    The workers are not asked to exit by themselves: when one of two leaves, the test broker
    can leave the other rejoining for ever. Returns the seconds from ``started`` (wall clock)
    to the sink's last flush, and the rows it wrote."""
    deadline = time.monotonic() + timeout_s
    settled = 0
    workers_seen: Ends | None = None
    sink_seen: Ends | None = None
    while settled < 3:
        time.sleep(1.0)
        if sink.reap(block=False):
            raise RuntimeError(f"the sink exited early ({sink.code})\n{deployment.logs()}")
        if any(child.reap(block=False) for child in workers):
            raise RuntimeError(f"a worker exited early\n{deployment.logs()}")
        last, _ = _flushes(sink.log)
        workers_done = True
        if workers:
            workers_done, workers_seen = _workers_caught_up(deployment, workers_seen)
        sink_done, sink_seen = _sink_caught_up(deployment, sink_seen)
        done = bool(last) and time.time() - last > 1.5 and workers_done and sink_done
        settled = settled + 1 if done else 0
        if time.monotonic() > deadline:
            raise RuntimeError(f"not finished within {timeout_s} s\n{deployment.logs()}")
    deployment.stop_all()
    bad = [c.code for c in deployment.children if c.code != 0]
    if bad:
        raise RuntimeError(f"a process exited with {bad}\n{deployment.logs()}")
    last, rows = _flushes(sink.log)
    return last - started, rows


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------


REPLAY_RUNS = (3, 2)
"""Replays of the week, each into a fresh warehouse: so many before the production paths and
so many after them; the fastest is the baseline. One run on this shared machine varied by a
third from one minute to the next: a slow baseline flatters every ratio against it, and runs
on both sides of the production paths see the machine as they did."""


def measure_replays(
    week: Path, root: Path, records: int, runs: int, first: int = 0
) -> list[Figure]:
    """``runs`` replays of the week, each into a fresh warehouse (numbered from ``first``)."""
    figures = []
    for run in range(first, first + runs):
        baseline = machine_speed()
        started = time.monotonic()
        process = subprocess.Popen(
            [
                str(SUPPORTSTREAM),
                "replay",
                "--rules",
                str(RULES),
                "--input",
                str(week),
                "--warehouse",
                str(root / f"replay-warehouse-{run}"),
            ],
            env=dict(os.environ, SUPPORTSTREAM_PII_KEY=KEY),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        child = Child(process, root / "replay.log")
        child.reap(block=True)
        wall = time.monotonic() - started
        if child.code != 0:
            raise RuntimeError(f"replay failed: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        figures.append(Figure("replay", "", records, wall, child.cpu_s))
        figures[-1].extra["baseline_s"] = baseline
    return figures


def fastest_replay(before: list[Figure], after: list[Figure], records: int) -> Figure:
    """The fastest of the replays measured before and after the production paths."""
    runs = before + after
    best = min(runs, key=lambda figure: figure.wall_s)
    walls = ", ".join(f"{figure.wall_s:.1f}" for figure in runs)
    best.includes = (
        f"one process (the fastest of {len(runs)} runs, {len(before)} before the production "
        f"paths and {len(after)} after them, each into a fresh warehouse; wall s: {walls}): "
        "reading and ordering the file, parsing, the desk, the chdb sink, the warehouse's "
        "start and migration, the final OPTIMIZE"
    )
    best.records = records
    best.extra["runs_wall_s"] = [round(figure.wall_s, 2) for figure in runs]
    return best


def measure_production(
    broker: Broker,
    deployment: Deployment,
    records: int,
    workers: int,
    timeout_s: float,
    standby: int | None = None,
) -> Figure:
    """Workers and one sink over the published week: from the workers' start to the last row.
    ``standby``: the workers' ``SUPPORTSTREAM_STANDBY_REPLICAS`` (None: the default, 1)."""
    if standby is not None:
        deployment.env["SUPPORTSTREAM_STANDBY_REPLICAS"] = str(standby)
    baseline = machine_speed()
    broker_before = broker.cpu()
    started = time.time()
    worker_children = [deployment.start("worker", "--rules", str(RULES)) for _ in range(workers)]
    sink = deployment.start("sink")
    wall, rows = _drain(deployment, worker_children, sink, timeout_s, started)
    label = "one worker" if workers == 1 else f"{workers} workers"
    if standby is not None:
        label += f", standby replicas {standby}"
    return Figure(
        f"production path, {label}",
        f"{label} (`supportstream worker`: intake, merge, desk, outputs) and one "
        "`supportstream sink` into chdb, from the workers' start to the end of the sink's "
        "last insert; publishing not included; the processes are stopped (SIGTERM) once "
        "everything is applied and stored, and their CPU seconds include the wait for that",
        records,
        wall,
        sum(c.cpu_s for c in worker_children) + sink.cpu_s,
        broker.cpu() - broker_before,
        rows,
        {
            "worker_cpu_s": [c.cpu_s for c in worker_children],
            "sink_cpu_s": sink.cpu_s,
            "baseline_s": baseline,
        },
    )


def measure_sink_alone(
    broker: Broker, root: Path, prefix: str, partitions: int, records: int, timeout_s: float
) -> Figure:
    deployment = Deployment(root, broker.bootstrap, partitions, prefix=prefix)
    broker_before = broker.cpu()
    started = time.time()
    sink = deployment.start("sink")
    try:
        wall, rows = _drain(deployment, [], sink, timeout_s, started)
    finally:
        deployment.stop_all()
    figure = Figure(
        "sink alone",
        "one `supportstream sink` (new consumer group, fresh chdb warehouse) over the output "
        "topics the one-worker run left: consuming, Avro decoding, rows, batched inserts, "
        "commits; the warehouse's start and migration included",
        records,
        wall,
        sink.cpu_s,
        broker.cpu() - broker_before,
        rows,
    )
    figure.extra["warehouse"] = str(deployment.warehouse)
    return figure


_RAW_INSERT = """
import json, sys, time
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
source, target, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
tables = json.loads(sys.argv[4])
backend = ChdbBackend(source)
data = {}
for table in tables:
    rows = backend.query(f"SELECT * FROM supportstream.{table}")
    columns = list(rows[0]) if rows else []
    data[table] = (columns, [tuple(r[c] for c in columns) for r in rows])
backend.close()
backend = ChdbBackend(target)
migrate(backend)
cpu, wall = time.process_time(), time.monotonic()
rows = 0
for table, (columns, values) in data.items():
    for i in range(0, len(values), batch):
        backend.insert(f"supportstream.{table}", columns, values[i:i + batch])
    rows += len(values)
print(json.dumps({"rows": rows, "cpu_s": time.process_time() - cpu,
                  "wall_s": time.monotonic() - wall}))
backend.close()
"""


def measure_raw_insert(source_warehouse: Path, root: Path, records: int) -> Figure:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _RAW_INSERT,
            str(source_warehouse),
            str(root / "raw-insert"),
            "5000",
            json.dumps(SINK_TABLES),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"raw insert failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Figure(
        "raw insert",
        "the rows the sink-alone run stored, read back beforehand, inserted by the backend's "
        "own `insert` in batches of 5,000 rows per table into a fresh migrated chdb warehouse "
        "(the warehouse's start not included)",
        records,
        result["wall_s"],
        result["cpu_s"],
        rows=result["rows"],
    )


async def _copy(bootstrap: str, source: str, target: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    cpu, wall = time.process_time(), time.monotonic()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        await consumer.topics()  # metadata, so that the topic's partitions are known
        partitions = consumer.partitions_for_topic(source) or set()
        tps = [TopicPartition(source, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        copied = 0
        remaining = set(tps)
        while remaining:
            batches = await consumer.getmany(timeout_ms=500)
            for _tp, messages in batches.items():
                for message in messages:
                    await producer.send(target, message.value, key=message.key)
                    copied += 1
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "messages": copied,
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.monotonic() - wall,
    }


TRICKLE_WRITES = 5


def measure_trickle(broker: Broker, topic: str) -> float:
    """The broker's CPU seconds for ``TRICKLE_WRITES`` one-message writes a second apart (and
    the second after the last): what it costs to be written to, whatever it holds."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        producer.send(topic, b"warm-up").get(timeout=30)
        time.sleep(1.0)
        before = broker.cpu()
        for _ in range(TRICKLE_WRITES):
            producer.send(topic, b"x").get(timeout=30)
            time.sleep(1.0)
        return broker.cpu() - before
    finally:
        producer.close()


def _store_mb(data_dir: Path) -> float:
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file()) / 1e6


def measure_raw_copy(broker: Broker, deployment: Deployment, records: int) -> Figure:
    source = f"{deployment.prefix}raw-contacts"
    target = f"{deployment.prefix}bench-copy"
    broker_before = broker.cpu()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench_production",
            "--copy",
            broker.bootstrap,
            source,
            target,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"raw copy failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Figure(
        "raw aiokafka copy",
        "one process: an aiokafka consumer reads `raw-contacts` from its start and an aiokafka "
        "producer (acks=all, linger 5 ms) writes the same bytes to another topic, one send per "
        "message; no decoding, no state, no commits",
        records,
        result["wall_s"],
        result["cpu_s"],
        broker.cpu() - broker_before,
        result["messages"],
    )


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, CPython {platform.python_version()}, {platform.platform()}"
    )


def run(args: argparse.Namespace, progress: Any) -> Report:
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=_machine(),
        load_before=_load(),
    )
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-production-"))
    broker = Broker(root / "broker")
    try:
        from loadtest.generator import generate_week

        week = root / "week.jsonl"
        start = datetime.fromisoformat(args.start)
        traffic = generate_week(start, args.seed, args.tickets, pii_key=KEY, days=args.days)
        report.lines = traffic.write_jsonl(week)
        SPEED_LINES[:] = week.read_text(encoding="utf-8").splitlines()
        progress(f"generated {report.lines} lines")
        use_model_cache()

        progress("replay (before the production paths)")
        replays = measure_replays(week, root, 0, REPLAY_RUNS[0])
        broker.start(timeout=30.0)
        one = Deployment(root / "one", broker.bootstrap, args.partitions)
        one.run("migrate")
        published = int(one.run("publish", "--input", str(week)).split()[1])
        report.records = published
        # Each production run on a broker holding nothing but its published week: the test
        # broker's cost per write grows with everything it stores (see the section's notes).
        progress("production path, one worker (run 1)")
        try:
            first = measure_production(broker, one, published, 1, args.timeout)
        finally:
            one.stop_all()
        report.figures["one"] = first
        progress("the broker's cost per write, holding the one-worker run")
        report.store_mb = _store_mb(root / "broker")
        report.trickle_loaded_s = measure_trickle(broker, f"{one.prefix}bench-trickle")
        progress("raw aiokafka copy")
        report.figures["copy"] = measure_raw_copy(broker, one, published)
        progress("sink alone")
        sink = measure_sink_alone(
            broker, root / "sink", one.prefix, args.partitions, published, args.timeout
        )
        report.figures["sink"] = sink
        progress("raw insert")
        report.figures["insert"] = measure_raw_insert(
            Path(sink.extra.pop("warehouse")), root, published
        )
        broker.stop()
        ones = [first]
        for number in range(2, args.runs + 1):
            progress(f"production path, one worker (run {number}, a fresh broker)")
            ones.append(measure_on_fresh_broker(root / f"one-{number}", week, published, args))
        report.figures["one"] = fastest(ones)
        if args.two_workers:
            # The default (a standby copy of the desk's table on the other worker), then
            # without a standby, what docs/PRODUCTION.md advises for workers sharing a machine.
            for key, standby in (("two", None), ("two-no-standby", 0)):
                twos = []
                for number in range(1, args.runs + 1):
                    two = measure_two_workers(
                        root / f"{key}-{number}",
                        week,
                        published,
                        args,
                        report,
                        progress,
                        number,
                        standby,
                    )
                    if two is not None:
                        twos.append(two)
                if twos:
                    report.figures[key] = fastest(twos)
        progress("replay (after the production paths)")
        later = measure_replays(week, root, 0, REPLAY_RUNS[1], first=REPLAY_RUNS[0])
        report.figures["replay"] = fastest_replay(replays, later, published)
    finally:
        broker.stop()
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report.load_after = _load()
    report.duration_s = time.monotonic() - began
    return report


def measure_on_fresh_broker(
    root: Path,
    week: Path,
    published: int,
    args: argparse.Namespace,
    workers: int = 1,
    on_empty: Callable[[Broker], None] | None = None,
    standby: int | None = None,
) -> Figure:
    """``workers`` workers and one sink on a fresh broker holding only the published week;
    ``on_empty`` measures the broker before anything is written to it."""
    broker = Broker(root / "broker")
    broker.start(timeout=30.0)
    deployment = Deployment(root / "deployment", broker.bootstrap, args.partitions)
    try:
        if on_empty is not None:
            on_empty(broker)
        deployment.run("migrate")
        deployment.run("publish", "--input", str(week))
        return measure_production(broker, deployment, published, workers, args.timeout, standby)
    finally:
        deployment.stop_all()
        broker.stop()


def fastest(runs: list[Figure]) -> Figure:
    """The run with the shortest wall time, saying it was the fastest of how many: a burst of
    load elsewhere on this 2-core machine slows one run by a third (replay's baseline is the
    fastest of its runs too)."""
    best = min(runs, key=lambda figure: figure.wall_s)
    if len(runs) > 1:
        walls = ", ".join(f"{figure.wall_s:.1f}" for figure in runs)
        best.includes += (
            f"; the fastest of {len(runs)} runs, each on a broker holding only its published "
            f"week (wall s: {walls})"
        )
    best.extra["runs_wall_s"] = [round(figure.wall_s, 2) for figure in runs]
    return best


def measure_two_workers(
    root: Path,
    week: Path,
    published: int,
    args: argparse.Namespace,
    report: Report,
    progress: Any,
    number: int = 1,
    standby: int | None = None,
) -> Figure | None:
    """Two workers and one sink on a fresh broker holding only the published week. Two workers
    first rebalance, and on noida-db a rebalance can stall for good (a member it dropped never
    rejoins; Kafka expires such a member, the test broker never does). A stalled attempt is
    said in the notes and measured again once on another fresh broker, with a fresh group;
    the figure is always that of a run that applied and stored the whole week (None, and a
    note, when both attempts stalled)."""

    def trickle_on_empty(broker: Broker) -> None:
        report.trickle_empty_s = measure_trickle(broker, "bench-trickle")

    label = "two workers" if standby is None else f"two workers, standby replicas {standby}"
    for attempt in (1, 2):
        progress(f"production path, {label} (run {number}, a fresh broker, attempt {attempt})")
        try:
            return measure_on_fresh_broker(
                root / f"attempt-{attempt}",
                week,
                published,
                args,
                workers=2,
                on_empty=trickle_on_empty
                if attempt == 1 and number == 1 and standby is None
                else None,
                standby=standby,
            )
        except RuntimeError as exc:
            report.notes.append(
                f"{label}, run {number}, attempt {attempt}: not measured "
                f"({str(exc).splitlines()[0]})"
            )
            progress(f"{report.notes[-1]}\n{str(exc)[-4000:]}")
    return None


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _broker_note(report: Report) -> list[str]:
    if report.trickle_loaded_s is None:
        return []
    empty = (
        f", {report.trickle_empty_s:.2f} CPU-s holding nothing"
        if report.trickle_empty_s is not None
        else ""
    )
    return [
        "**The test broker is not Kafka.** noida-db keeps what it stores in one JSON file and "
        f"writes that file again as it is written to: {TRICKLE_WRITES} one-message writes a "
        f"second apart cost it {report.trickle_loaded_s:.2f} CPU-s once it held the one-worker "
        f"run ({report.store_mb:.0f} MB on disk){empty} (measured in this run). While the "
        "workers and the sink run it takes up to a core of this 2-core machine from them, "
        "which `replay` never pays and an Apache Kafka broker, appending to segment files, "
        "would not charge. Each production run therefore starts with a broker holding only "
        "its published week (the two-worker run on a fresh one); *broker CPU s* shows what "
        "it took.",
        "",
    ]


def _speed_lines(report: Report) -> list[str]:
    """The ratios again, each figure taken in units of the ``json.loads`` baseline measured
    just before its run (``machine_speed``), so that a change of the machine's speed between
    the runs does not count as a difference between the paths."""
    f = report.figures
    measured = [key for key in ("replay", "one", "two", "two-no-standby") if key in f]
    if any("baseline_s" not in f[key].extra for key in measured):
        return []
    one, replay = f["one"], f["replay"]

    def cpu(figure: Figure) -> float:
        return figure.cpu_s / figure.extra["baseline_s"]

    rows = [
        (
            "production path (one worker) records/s vs replay's",
            normalized(replay) / normalized(one),
        ),
        ("production path (one worker) CPU per record vs replay's", cpu(one) / cpu(replay)),
    ]
    if "two" in f:
        rows.append(
            ("two workers records/s vs one worker's", normalized(one) / normalized(f["two"]))
        )
    if "two-no-standby" in f:
        rows.append(
            (
                "two workers without a standby records/s vs one worker's",
                normalized(one) / normalized(f["two-no-standby"]),
            )
        )
    baselines = ", ".join(
        f"{f[key].name} {1000 * f[key].extra['baseline_s']:.0f} ms" for key in measured
    )
    return [
        "",
        "The machine's speed moves within a run (on this virtual machine, by half or more within "
        "minutes). Before each run the benchmark times `json.loads` over the week's lines (CPU, "
        f"the best of five passes); before the runs above it took: {baselines}. The same ratios "
        "with each run's wall and CPU seconds taken in units of its own baseline:",
        "",
        "| ratio, each run against the baseline measured just before it | value |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in rows),
    ]


PATHS = ("replay", "copy", "one", "two", "two-no-standby", "sink", "insert")
"""The figures of the section's table, in its order (``Report.figures`` keys)."""


def render(report: Report) -> str:
    f = report.figures
    lines: list[str] = [
        BEGIN,
        "## Production path end to end (Kafka)",
        "",
        f"Generated by `loadtest/bench_production.py` (`{report.command}`), "
        f"measured {report.started} on {report.machine}; load average (1/5/15 min) "
        f"{' / '.join(map(str, report.load_before))} at the start and "
        f"{' / '.join(map(str, report.load_after))} at the end; the run took "
        f"{report.duration_s:.0f} s.",
        "",
        f"The week of issue 12 (`python -m loadtest.generator --start {START} --days 7 "
        f"--tickets 3000 --seed 5`, {report.lines:,} lines, {report.records:,} records; the "
        "other lines are not records and go straight to the dead letters), rules "
        "`examples/rules.demo.yaml`, a noida-db broker on loopback, `raw-contacts` with "
        f"{report.figures['one'].extra.get('partitions', 3)} partitions. Everything below ran "
        "in this one run, so compare the ratios, not the seconds, between runs and machines. "
        "*wall s* is elapsed time; *CPU s* the CPU seconds of the measured processes (every "
        "thread, chdb's included; the broker apart). Every process maps the language model "
        "from its cache (`SUPPORTSTREAM_CACHE_DIR`), written before the first measured run; "
        "the first process on a machine decompresses it (`python -m loadtest.bench_language` "
        "measures both), which no run here includes.",
        "",
        *_broker_note(report),
        "| path | records | wall s | records/s | CPU s | CPU µs / record | broker CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in PATHS:
        if key not in f:
            continue
        g = f[key]
        lines.append(
            f"| {g.name} | {g.records:,} | {g.wall_s:.1f} | {_n(g.records_per_s)} | "
            f"{g.cpu_s:.1f} | {_n(g.cpu_us_per_record)} | "
            f"{g.broker_cpu_s:.1f} |"
            if key not in ("replay", "insert")
            else f"| {g.name} | {g.records:,} | {g.wall_s:.1f} | {_n(g.records_per_s)} | "
            f"{g.cpu_s:.1f} | {_n(g.cpu_us_per_record)} | - |"
        )
    lines += ["", "What each includes:", ""]
    for key in PATHS:
        if key in f:
            lines.append(f"- *{f[key].name}*: {f[key].includes}.")
    one, replay = f["one"], f["replay"]
    ratios = [
        (
            "production path (one worker) records/s vs replay's",
            one.records_per_s / replay.records_per_s,
            "at least 0.5",
        ),
        (
            "production path (one worker) CPU per record vs replay's (worker + sink)",
            one.cpu_s / replay.cpu_s,
            "at most 3",
        ),
        (
            "production path (one worker) records/s vs the raw aiokafka copy's",
            one.records_per_s / f["copy"].records_per_s,
            "",
        ),
        ("sink alone: wall time vs raw insert", f["sink"].wall_s / f["insert"].wall_s, ""),
        ("sink alone: CPU vs raw insert", f["sink"].cpu_s / f["insert"].cpu_s, ""),
    ]
    if "two" in f:
        ratios.append(
            (
                "two workers records/s vs one worker's",
                f["two"].records_per_s / one.records_per_s,
                "at least 1",
            )
        )
    if "two-no-standby" in f:
        ratios.append(
            (
                "two workers without a standby (`SUPPORTSTREAM_STANDBY_REPLICAS=0`) records/s "
                "vs one worker's",
                f["two-no-standby"].records_per_s / one.records_per_s,
                "",
            )
        )
    lines += ["", "| ratio, same run | value | issue 12 asks |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2f} | {asked} |" for name, value, asked in ratios]
    lines += _speed_lines(report)
    worker_cpu = one.extra.get("worker_cpu_s", [])
    lines += ["", *(f"Note: {note}." for note in report.notes)] if report.notes else []
    lines += [
        "",
        f"The one-worker run counted: worker CPU {', '.join(f'{c:.1f}' for c in worker_cpu)} s, "
        f"sink CPU {one.extra.get('sink_cpu_s', 0.0):.1f} s, {one.rows:,} rows. "
        "Rerun: `python -m loadtest.bench_production` (prints this section; "
        "`--out BENCHMARKS.md` replaces it there), a few minutes.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the section between the markers in ``path`` (or append it)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench_production",
        description="The production path end to end on a real broker, with its baselines.",
    )
    parser.add_argument("--start", default=START)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=3, help="raw-contacts partitions")
    parser.add_argument("--no-two-workers", dest="two_workers", action="store_false")
    parser.add_argument(
        "--runs", type=int, default=2, help="runs of each production path (the fastest counts)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per measured path, s")
    parser.add_argument("--out", default="-", help="'-' prints the section; a file gets it")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--copy", nargs=3, help=argparse.SUPPRESS)  # the raw-copy child
    args = parser.parse_args(argv)
    if args.copy:
        print(json.dumps(asyncio.run(_copy(*args.copy))))
        return 0
    shown = ["python -m loadtest.bench_production"]
    if (args.tickets, args.days, args.seed) != (3000, 7, 5):
        shown.append(f"--tickets {args.tickets} --days {args.days} --seed {args.seed}")
    if not args.two_workers:
        shown.append("--no-two-workers")
    if args.runs != 2:
        shown.append(f"--runs {args.runs}")
    report = run(args, lambda m: print(f"bench_production: {m}", file=sys.stderr, flush=True))
    report.command = " ".join(shown)
    report.figures["one"].extra["partitions"] = args.partitions
    section = render(report)
    if args.out == "-":
        sys.stdout.write(section)
    else:
        write_section(Path(args.out), section)
        print(f"bench_production: wrote {args.out}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(
            json.dumps({k: asdict(v) for k, v in report.figures.items()}, indent=2),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The production path as processes, for integration tests: ``supportstream migrate``,
``publish``, ``worker`` and ``sink`` as subprocesses configured by environment, against the
``kafka_broker`` fixture and a chdb warehouse that only the sink process opens (chdb serves
one data directory per process). Tables are read afterwards by a short-lived process too, so
the test process itself never holds a warehouse.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtest.generator import generate_week
from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "rules.demo.yaml"
SUPPORTSTREAM = Path(sys.executable).with_name("supportstream")
KEY = "production-path-test-key"
WEEK_START = datetime(2026, 9, 7, tzinfo=UTC)
UNTIL = "2026-11-06T00:00:00Z"
"""Replay's clock at the end: after every timer of the week. The workers' wall clock is later
still, so both fire every timer the scenario has (the tests compare complete histories)."""

QUERIES = {
    "tickets": "SELECT * FROM supportstream.tickets FINAL ORDER BY ticket_id",
    "sla_metrics": "SELECT * FROM supportstream.sla_metrics FINAL "
    "ORDER BY ticket_id, metric, cycle",
    "contact_reasons_daily": "SELECT day, category, channel, tier, sum(tickets) AS tickets "
    "FROM supportstream.contact_reasons_daily GROUP BY day, category, channel, tier "
    "ORDER BY day, category, channel, tier",
    "events": "SELECT event_id, event_type, at, ticket_id, conversation_id, customer_id, data "
    "FROM supportstream.events FINAL ORDER BY event_id",
    "dead_letters": "SELECT at, source, reason FROM supportstream.dead_letters FINAL "
    "ORDER BY at, source, reason",
    # CONTRACT §7: the reviews as the view keeps them (no reporting time zone involved).
    "qa_reviews": "SELECT * FROM supportstream.qa_reviews ORDER BY ticket_id, reviewer_id",
}

VIEWS = {
    # CONTRACT §4 and §7: the analysts' views and the incidents table, every column, in a
    # total order (their days and weeks in the rules' reporting time zone).
    name: f"SELECT * FROM supportstream.{name}{final} ORDER BY ALL"
    for name, final in (
        ("sla_achievement", ""),
        ("csat_daily", ""),
        ("nps_daily", ""),
        ("csi_quarterly", ""),
        ("promises_daily", ""),
        ("incidents", " FINAL"),
        ("agent_daily", ""),
        ("qa_sample", ""),
        ("qa_agent_weekly", ""),
    )
}

DUPLICATES = {
    "events": "SELECT count() - uniqExact(event_id) AS n FROM supportstream.events",
    "tickets": "SELECT count() - uniqExact(ticket_id) AS n FROM supportstream.tickets",
    "sla_metrics": "SELECT count() - uniqExact(ticket_id, metric, cycle) AS n "
    "FROM supportstream.sla_metrics",
}

_DUMP = """
import json, sys
from sinks.chdb_backend import ChdbBackend
backend = ChdbBackend(sys.argv[1])
queries = json.loads(sys.argv[2])
print(json.dumps({name: backend.query(sql) for name, sql in queries.items()}, default=str))
backend.close()
"""


def write_week(path: Path, tickets: int = 50, seed: int = 11) -> Path:
    generate_week(WEEK_START, seed=seed, tickets=tickets, pii_key=KEY).write_jsonl(path)
    return path


def dump(warehouse: Path, queries: dict[str, str] = QUERIES) -> dict[str, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, "-c", _DUMP, str(warehouse), json.dumps(queries)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return result


def replay(path: Path, warehouse: Path) -> None:
    done = subprocess.run(
        [
            str(SUPPORTSTREAM),
            "replay",
            "--rules",
            str(RULES),
            "--input",
            str(path),
            "--until",
            UNTIL,
            "--warehouse",
            str(warehouse),
        ],
        env=dict(os.environ, SUPPORTSTREAM_PII_KEY=KEY),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]


class Pipeline:
    """One deployment on the test broker: its own topic prefix, consumer group, warehouse."""

    def __init__(self, root: Path, bootstrap: str, partitions: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        run = uuid.uuid4().hex[:8]
        self.warehouse = root / "warehouse"
        self.group = f"ss-{run}"
        self.env = dict(
            os.environ,
            SUPPORTSTREAM_KAFKA_BOOTSTRAP=bootstrap,
            SUPPORTSTREAM_TOPIC_PREFIX=f"t{run}.",
            SUPPORTSTREAM_PARTITIONS=str(partitions),
            SUPPORTSTREAM_CONSUMER_GROUP=self.group,
            SUPPORTSTREAM_PII_KEY=KEY,
            SUPPORTSTREAM_CLICKHOUSE_URL=f"chdb://{self.warehouse}",
            SUPPORTSTREAM_STATE_DIR=str(root / "state"),
            # noida-db completes a rebalance only when the rebalance timeout runs out.
            SUPPORTSTREAM_REBALANCE_TIMEOUT="6",
        )
        self.processes: list[subprocess.Popen[bytes]] = []
        self.metrics_ports: dict[int, int] = {}  # pid -> the port its /metrics is served on
        self.log_paths: dict[int, Path] = {}  # pid -> its log file
        self._logs = 0

    @property
    def bootstrap(self) -> str:
        return self.env["SUPPORTSTREAM_KAFKA_BOOTSTRAP"]

    def topic(self, name: str) -> str:
        return f"{self.env['SUPPORTSTREAM_TOPIC_PREFIX']}{name}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(SUPPORTSTREAM), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self._logs += 1
        log = (self.root / f"{args[0]}-{self._logs}.log").open("wb")
        port = free_port()  # every long-running process serves its own /metrics
        process = subprocess.Popen(
            [str(SUPPORTSTREAM), *args],
            env={**self.env, "SUPPORTSTREAM_METRICS_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        self.processes.append(process)
        self.metrics_ports[process.pid] = port
        self.log_paths[process.pid] = Path(log.name)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """What the process has written to its log so far."""
        return self.log_paths[process.pid].read_text(errors="replace")

    def scrape(self, process: subprocess.Popen[bytes]) -> str:
        """The process's /metrics page ("" while it does not answer)."""
        url = f"http://127.0.0.1:{self.metrics_ports[process.pid]}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    def worker(self, store: str = "memory://", *args: str) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "--rules", str(RULES), "--loglevel", "info", "--store", store, *args
        )

    def sink(self, idle_s: float = 12.0) -> subprocess.Popen[bytes]:
        return self.start("sink", "--exit-when-idle", str(idle_s), "--compact-on-exit")

    def committed(self, topic: str) -> int:
        """The workers' group's committed offsets on ``topic``, summed over its partitions
        (the records of the topic consumed for good)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            return sum(
                int(consumer.committed(TopicPartition(topic, partition)) or 0)
                for partition in partitions
            )
        finally:
            consumer.close(autocommit=False)

    def wait(self, process: subprocess.Popen[bytes], timeout: float) -> int:
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dump_logs()
            raise

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            self.stop(process)

    def dump_logs(self) -> None:
        for log in sorted(self.root.glob("*.log")):
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}\n")


def wait_until(condition: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False

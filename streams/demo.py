"""``supportstream demo``: a realistic multi-channel week through the whole pipeline.

The demo generates a week of traffic (``loadtest.generator``: every channel, ru and en texts,
planted personal data, a few malformed records), replays it through the local runner into its
own embedded warehouse, and prints a closing report from ClickHouse, the same tables analysts
query. The demo's warehouse is its own directory and is recreated on every run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path
from typing import Any

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.rules import load_rules
from sinks.backend import Backend
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner, replay_file

REPO = Path(__file__).resolve().parent.parent
DEMO_RULES = REPO / "examples" / "rules.demo.yaml"


def last_monday(today: dt.date) -> dt.date:
    """The Monday of the week before ``today``'s: the demo shows last week."""
    return today - dt.timedelta(days=today.weekday() + 7)


def run_demo(
    *, warehouse: Path, seed: int, tickets: int, pseudo: Pseudonymizer, pii_key: str
) -> int:
    rules = load_rules(DEMO_RULES)
    monday = last_monday(dt.datetime.now(dt.UTC).date())
    start = dt.datetime.combine(monday, dt.time(0, 0), tzinfo=dt.timezone(dt.timedelta(hours=3)))
    print(f"supportstream demo: generating a week of traffic from {monday} ({tickets} tickets)")
    traffic = generate_week(start, seed, tickets, pii_key=pii_key)
    if warehouse.exists():
        shutil.rmtree(warehouse)
    warehouse.mkdir(parents=True)
    input_path = warehouse.parent / f"{warehouse.name}-week.jsonl"
    traffic.write_jsonl(input_path)

    backend = ChdbBackend(warehouse)
    try:
        migrate(backend)
        writer = ProjectionWriter(backend)
        progress = _Progress()
        runner = LocalRunner(rules, pseudo, writer, on_output=progress)
        stats = replay_file(runner, input_path, until=None)
        writer.compact()
        progress.done()
        print(
            f"replayed {stats.records} records: {sum(stats.contacts.values())} contacts, "
            f"{stats.tickets_opened} tickets, {sum(stats.events.values())} events, "
            f"{sum(stats.ignored.values())} ignored, "
            f"{sum(stats.dead_letters.values())} dead letters"
        )
        print(report(backend))
    finally:
        backend.close()
    print(
        f"Explore it yourself: supportstream sql --warehouse {warehouse} "
        '"SELECT queue, count() FROM tickets FINAL GROUP BY queue"'
    )
    return 0


class _Progress:
    """Live progress on stderr: a line every thousand events."""

    def __init__(self) -> None:
        self.events = 0
        self._next = 1000

    def __call__(self, output: Any) -> None:
        self.events += len(output.events)
        if self.events >= self._next:
            self._next += 1000
            print(f"\r  {self.events} events processed", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        print(f"\r  {self.events} events processed", file=sys.stderr)


REPORT_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Top contact reasons",
        "SELECT category, sum(tickets) AS tickets FROM contact_reasons_daily "
        "GROUP BY category ORDER BY tickets DESC, category",
    ),
    (
        "Tickets per channel",
        "SELECT channel, count() AS tickets, countIf(status = 'solved') AS solved "
        "FROM tickets FINAL GROUP BY channel ORDER BY tickets DESC, channel",
    ),
    (
        "Tickets per queue and priority",
        "SELECT queue, priority, count() AS tickets FROM tickets FINAL "
        "GROUP BY queue, priority ORDER BY queue, priority",
    ),
    (
        "SLA achievement by policy",
        "SELECT policy, metric, sum(met) AS met_cycles, sum(breached) AS breached_cycles, "
        "round(100 * met_cycles / nullIf(met_cycles + breached_cycles, 0), 1) AS achieved_pct "
        "FROM sla_achievement GROUP BY policy, metric ORDER BY policy, metric",
    ),
    (
        "CSAT and NPS",
        "SELECT (SELECT sum(responses) FROM csat_daily) AS csat_responses, "
        "(SELECT round(100 * sum(positive) / nullIf(sum(responses), 0), 1) FROM csat_daily) "
        "AS csat_pct, (SELECT round(100 * (sum(promoters) - sum(detractors)) / "
        "nullIf(sum(promoters) + sum(passives) + sum(detractors), 0), 1) FROM nps_daily) AS nps",
    ),
    (
        "Dead letters",
        "SELECT source, reason, count() AS records FROM dead_letters FINAL "
        "GROUP BY source, reason ORDER BY records DESC, source, reason",
    ),
)


def report(backend: Backend) -> str:
    sections = []
    for title, query in REPORT_QUERIES:
        table = backend.query_formatted(query, "PrettyCompactMonoBlock")
        sections.append(f"\n== {title} ==\n{table.rstrip()}")
    return "\n".join(sections)

"""``supportstream demo``: realistic multi-channel traffic through the whole pipeline.

Without ``--duration`` the demo generates a week of traffic (``loadtest.generator``: every
channel, ru and en texts, planted personal data, a few malformed records), replays it through
the local runner into its own embedded warehouse, and prints a closing report from ClickHouse,
the same tables analysts query. With ``--duration D`` it runs live for D of wall time: traffic
is generated as it happens, stamped with the wall clock, and the wall clock drives the SLA
timers. The demo's warehouse is its own directory and is recreated on every run.

The console is for the person watching (``streams.console``): on a terminal, progress stays on
one line and warnings are summarised after the run; elsewhere the logs stay JSON lines. The run
ends with the closing report in text, the summary of warnings, and the HTML report
(``streams.report``) written next to the warehouse, whose path is printed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from loadtest.generator import STREAM_LEAD, generate_stream, generate_week
from processors.ids import Pseudonymizer
from processors.language import LanguageDetector
from processors.rules import Rules, load_rules
from sinks.backend import Backend
from streams.console import Console, demo_console
from streams.live import LiveProgress, run_live
from streams.local import (
    LIVE_MAX_AHEAD_MS,
    LocalRunner,
    embedded_warehouse,
    replay_file,
    wall_clock_ms,
)
from streams.metrics import (
    MetricsServer,
    PipelineMetrics,
    process_registry,
    start_pipeline_metrics,
)
from streams.report import build_report, write_report

REPO = Path(__file__).resolve().parent.parent
DEMO_RULES = REPO / "examples" / "rules.demo.yaml"


def last_monday(today: dt.date) -> dt.date:
    """The Monday of the week before ``today``'s: the demo shows last week."""
    return today - dt.timedelta(days=today.weekday() + 7)


def run_demo(
    *,
    warehouse: Path,
    seed: int,
    tickets: int,
    pseudo: Pseudonymizer,
    pii_key: str,
    rules_path: Path | None = None,
    duration_ms: int | None = None,
    tickets_per_hour: float = 1200.0,
    metrics_port: int = 9108,
    log_format: str = "auto",
) -> int:
    rules = load_rules(rules_path or DEMO_RULES)
    # Loaded once per process: before the traffic starts, not in the middle of it.
    LanguageDetector(rules.languages).warm_up()
    # Like every long-running process, the demo serves the metrics of CONTRACT §6.
    server: MetricsServer | None = None
    try:
        metrics, server = start_pipeline_metrics(metrics_port)
    except OSError as error:
        metrics = PipelineMetrics(process_registry())
        print(
            f"supportstream demo: metrics not served, port {metrics_port} is taken ({error}); "
            "set SUPPORTSTREAM_METRICS_PORT",
            file=sys.stderr,
        )
    else:
        print(f"metrics at http://localhost:{server.port}/metrics", file=sys.stderr)
    try:
        with demo_console(log_format) as console:
            observe = _Observe(metrics, structlog.get_logger("supportstream.demo"), console)
            if duration_ms is not None:
                return _run_live_demo(
                    rules, warehouse, seed, pseudo, pii_key, duration_ms, tickets_per_hour, observe
                )
            return _replay_week(rules, warehouse, seed, tickets, pseudo, pii_key, observe)
    finally:
        if server is not None:
            server.stop()


@dataclass(frozen=True)
class _Observe:
    metrics: PipelineMetrics
    logger: Any
    console: Console


def report_path(warehouse: Path) -> Path:
    """Where the demo writes its HTML report: next to its warehouse."""
    return warehouse.parent / f"{warehouse.name}-report.html"


def _close(backend: Backend, warehouse: Path, observe: _Observe) -> None:
    """The end of a run, for a person: the text report, the warnings, the HTML report."""
    print(report(backend))
    print()
    print(observe.console.summary())
    path = write_report(build_report(backend), report_path(warehouse))
    print(f"\nHTML report: {path.resolve()} (open it in a browser; it needs no network)")


def _replay_week(
    rules: Rules,
    warehouse: Path,
    seed: int,
    tickets: int,
    pseudo: Pseudonymizer,
    pii_key: str,
    observe: _Observe,
) -> int:
    monday = last_monday(dt.datetime.now(dt.UTC).date())
    start = dt.datetime.combine(monday, dt.time(0, 0), tzinfo=dt.timezone(dt.timedelta(hours=3)))
    print(f"supportstream demo: generating a week of traffic from {monday} ({tickets} tickets)")
    traffic = generate_week(start, seed, tickets, pii_key=pii_key)
    _fresh(warehouse)
    input_path = warehouse.parent / f"{warehouse.name}-week.jsonl"
    traffic.write_jsonl(input_path)

    with embedded_warehouse(warehouse, rules) as writer:
        progress = _Progress(observe.console.interactive)
        runner = LocalRunner(
            rules,
            pseudo,
            writer,
            on_output=progress,
            metrics=observe.metrics,
            logger=observe.logger,
        )
        stats = replay_file(runner, input_path, until=None)
        writer.compact()
        progress.done()
        print(f"replayed {stats.summary()}")
        _close(writer.backend, warehouse, observe)
    print(
        f"Explore it yourself: supportstream sql --warehouse {warehouse} "
        '"SELECT queue, count() FROM tickets FINAL GROUP BY queue"'
    )
    return 0


def _fresh(warehouse: Path) -> None:
    if warehouse.exists():
        shutil.rmtree(warehouse)
    warehouse.mkdir(parents=True)


def _run_live_demo(
    rules: Rules,
    warehouse: Path,
    seed: int,
    pseudo: Pseudonymizer,
    pii_key: str,
    duration_ms: int,
    tickets_per_hour: float,
    observe: _Observe,
) -> int:
    _fresh(warehouse)
    start = dt.datetime.now(dt.UTC)
    print(
        f"supportstream demo: live for {duration_ms / 1000:g}s, about {tickets_per_hour:g} "
        "tickets an hour; the wall clock drives the SLA timers"
    )
    # The stream opens with the CRM's snapshot of every customer, then stories follow
    # STREAM_LEAD later. Starting it that much in the past loads the snapshot at once (records
    # whose instant has passed are applied on arrival) and contacts flow from the first second.
    traffic = generate_stream(
        start - STREAM_LEAD, seed, tickets_per_hour=tickets_per_hour, pii_key=pii_key
    )
    with embedded_warehouse(warehouse, rules) as writer:
        runner = LocalRunner(
            rules,
            pseudo,
            writer,
            metrics=observe.metrics,
            logger=observe.logger,
            max_ahead_ms=LIVE_MAX_AHEAD_MS,
        )
        last_report = [0]

        # On a terminal the progress line is rewritten every second; in a log, a line every 5 s.
        interactive = observe.console.interactive
        every_ms = 1000 if interactive else 5000

        def on_tick(progress: LiveProgress) -> None:
            elapsed = wall_clock_ms() - progress.started_at
            if elapsed - last_report[0] >= every_ms:
                last_report[0] = elapsed
                stats = runner.stats
                line = (
                    f"  t+{elapsed // 1000}s: {sum(stats.contacts.values())} contacts, "
                    f"{stats.tickets_opened} tickets, "
                    f"{stats.events['sla.cycle_breached']} breaches, "
                    f"{sum(stats.dead_letters.values())} dead letters"
                )
                if interactive:
                    print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
                else:
                    print(line, file=sys.stderr)

        run_live(runner, traffic, duration_ms=duration_ms, on_tick=on_tick)
        if interactive:
            print(file=sys.stderr)
        writer.compact()
        print(f"live run: {runner.stats.summary()}")
        _close(writer.backend, warehouse, observe)
    return 0


class _Progress:
    """Progress on stderr: on a terminal one line, rewritten every thousand events; otherwise
    only the total at the end (a log is no place for carriage returns)."""

    def __init__(self, interactive: bool) -> None:
        self.events = 0
        self._next = 1000
        self._interactive = interactive

    def __call__(self, output: Any) -> None:
        self.events += len(output.events)
        if self.events >= self._next:
            self._next += 1000
            if self._interactive:
                print(f"\r  {self.events} events processed", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        start = "\r" if self._interactive else ""
        print(f"{start}  {self.events} events processed", file=sys.stderr)


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
        "Promises kept per channel",
        "SELECT channel, sum(promises) AS promised, sum(kept) AS kept_n, sum(broken) AS broken_n, "
        "sum(pending) AS pending_n, "
        "round(100 * kept_n / nullIf(kept_n + broken_n, 0), 1) AS kept_pct "
        "FROM promises_daily GROUP BY channel ORDER BY channel",
    ),
    (
        "Incidents",
        "SELECT incident_id, category, opened_at, closed_at, tickets, customers, "
        "round(baseline, 2) AS baseline FROM incidents FINAL ORDER BY opened_at, incident_id",
    ),
    (
        # CONTRACT §7: each fact counts for the agent who acted; QA from the reviews' view.
        "Agents",
        "SELECT a.agent_id AS agent, a.replies AS replies, a.first_replies AS first_replies, "
        "a.solves AS solves, a.reopens AS reopens, a.csat_pct AS csat_pct, "
        "q.reviews AS qa_reviews, q.quality AS qa_quality FROM "
        "(SELECT agent_id, sum(public_replies) AS replies, sum(first_responses) AS first_replies, "
        "sum(solved) AS solves, sum(reopened) AS reopens, "
        "round(100 * sum(csat_positive) / nullIf(sum(csat_responses), 0), 1) AS csat_pct "
        "FROM agent_daily GROUP BY agent_id) AS a "
        "LEFT JOIN (SELECT agent_id, count() AS reviews, round(avg(quality), 1) AS quality "
        "FROM qa_reviews GROUP BY agent_id) AS q ON q.agent_id = a.agent_id "
        "ORDER BY replies DESC, agent",
    ),
    (
        "Tickets per language",
        "SELECT language, count() AS tickets FROM tickets FINAL "
        "GROUP BY language ORDER BY tickets DESC, language",
    ),
    (
        # CONTRACT §7: tickets that found no online agent with room and the skills they need
        # waited in their queue; logins and solves served them, P1 first (docs/ANALYTICS.md).
        "Waiting for an agent, by priority",
        "SELECT priority, countIf(event_type = 'ticket.waiting_started') AS waits, "
        "countIf(event_type = 'ticket.waiting_stopped' AND reason = 'assigned') AS served, "
        "waits - countIf(event_type = 'ticket.waiting_stopped') AS still_waiting, "
        "round(avgIf(waited, event_type = 'ticket.waiting_stopped' AND reason = 'assigned') "
        "/ 60, 1) AS avg_wait_min, "
        "round(maxIf(waited, event_type = 'ticket.waiting_stopped') / 60, 1) AS max_wait_min "
        "FROM (SELECT event_type, JSONExtractString(data, 'priority') AS priority, "
        "JSONExtractString(data, 'reason') AS reason, "
        "JSONExtractFloat(data, 'waited_seconds') AS waited FROM events FINAL "
        "WHERE event_type IN ('ticket.waiting_started', 'ticket.waiting_stopped')) "
        "GROUP BY priority ORDER BY priority",
    ),
    (
        "Time to assign per queue",
        "SELECT t.queue AS queue, count() AS assigned, "
        "countIf(a.first_assigned_at = t.opened_at) AS at_once, "
        "round(avg(dateDiff('millisecond', t.opened_at, a.first_assigned_at)) / 60000, 1) "
        "AS avg_min, "
        "round(quantileExact(0.9)(dateDiff('millisecond', t.opened_at, a.first_assigned_at)) "
        "/ 60000, 1) AS p90_min "
        "FROM tickets AS t FINAL INNER JOIN (SELECT ticket_id, min(at) AS first_assigned_at "
        "FROM events FINAL WHERE event_type = 'ticket.assigned' "
        "AND JSONExtractString(data, 'agent_id') != '' GROUP BY ticket_id) AS a "
        "USING (ticket_id) GROUP BY queue ORDER BY queue",
    ),
    (
        "Dead letters",
        "SELECT if(source = '', '(unknown)', source) AS source, reason, count() AS records "
        "FROM dead_letters FINAL GROUP BY source, reason ORDER BY records DESC, source, reason",
    ),
)


def report(backend: Backend) -> str:
    """The closing report in text; a section without rows says "none"."""
    sections = []
    for title, query in REPORT_QUERIES:
        table = backend.query_formatted(query, "PrettyCompactMonoBlock").rstrip()
        sections.append(f"\n== {title} ==\n{table or 'none'}")
    return "\n".join(sections)

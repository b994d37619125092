"""Prometheus metrics of a running pipeline (CONTRACT §6), derived from what the processors emit.

:class:`PipelineMetrics` owns the metric objects and is fed by the runners: ``observe_output``
with every :class:`processors.model.Output` (the local runner's ``on_output`` hook, the Faust
agents after each step), ``observe_sink`` / ``observe_sink_failure`` around every flush of the
projection writer, ``observe_lag`` per stage. The registry is a parameter (STYLE lesson 6): tests
pass a fresh :class:`CollectorRegistry`; a process passes :func:`process_registry`. :func:`serve`
exposes a registry at ``/metrics``.

The §6 names, types and labels are fixed (alert rules and dashboards rely on them). Decisions:

* ``supportstream_contacts_total{channel}`` counts ``contact.received`` events that are not a
  redelivery (``duplicate`` false): a contact is counted once however often a channel resends it.
* ``supportstream_sla_breaches_total`` / ``supportstream_sla_warnings_total`` take ``queue`` and
  ``priority`` from the ticket. Cycle events do not carry them, so a bounded LRU cache
  ``ticket_id -> (queue, priority)`` is fed by ``ticket.opened`` events and ``TicketState``
  snapshots; a ticket that fell out of it (or was opened before this process started and has not
  changed since) is labelled ``unknown``. When a cycle starts, its breach and warning series are
  created at 0, so the first breach of a queue moves the series from 0 to 1 and ``increase()``
  in an alert sees it (a series born at 1 has no increase).
* ``supportstream_sla_active_cycles{metric,policy}`` counts cycles whose latest snapshot says
  ``active``. Paused cycles (a pending or solved ticket's resolution) are not counted: their
  clock is stopped and nobody has to act on them; breached cycles are not counted either (their
  status stays ``breached``, CONTRACT §3). It counts the cycles whose snapshots this process saw;
  several workers each count their own partitions, so dashboards ``sum`` over instances.
* ``supportstream_sla_fulfilment_business_seconds{metric,policy}`` observes ``business_seconds``
  of every ``sla.cycle_fulfilled`` (late ones included), buckets from a minute to a week.
* ``supportstream_dead_letters_total{source,reason}``: ``reason`` is a short class
  (:data:`DEAD_LETTER_CLASSES`, see :func:`dead_letter_class`), never the free text, so the label
  has a fixed, small cardinality; the full reason is in the ``dead_letters`` table and the logs.
  An unknown source is labelled ``unknown``.
* ``supportstream_event_lag_seconds{stage}`` is set when a stage handles a record: wall-clock now
  minus that record's event time, never below 0 (a producer's clock running ahead is not lag).
  It is not updated while nothing arrives.

* CONTRACT §7 (docs/PROMISES.md, docs/INCIDENTS.md):
  ``supportstream_first_response_estimate_seconds{channel,policy}`` is the estimate the next
  promise of that channel and policy would use: set by each ``ticket.acknowledged`` and, as
  soon as a fulfilled first response changes it, by the desk's ``Output.estimates``;
  ``supportstream_promises_total{channel,outcome}`` counts ``promise.kept`` /
  ``promise.broken`` (series created at 0 for every channel and outcome);
  ``supportstream_incidents_open{category}`` is 1 while the category has an incident open
  (set by ``incident.opened`` and ``incident.joined``, cleared by ``incident.closed``);
  ``supportstream_incidents_opened_total{category}`` counts ``incident.opened``.
* ``supportstream_queue_waiting_tickets{queue}`` counts the tickets waiting for an agent
  (CONTRACT §7): up on ``ticket.waiting_started``, down on ``ticket.waiting_stopped``. With it,
  ``supportstream_queue_oldest_waiting_since_seconds{queue}`` is the event time (Unix seconds)
  at which the longest-waiting ticket of the queue started waiting; the series is removed when
  nobody waits, so ``time() - min by (queue) (...)`` is how long the oldest has waited (the
  "waiting too long" alert). A runner given a desk built from stored state (a restarted or
  rebalanced worker) starts both, and ``supportstream_incidents_open``, from what that desk
  holds (``observe_desk_state``).

Beyond §6 (labels may be added, names too): ``supportstream_sink_failures_total{table}`` and
``supportstream_sink_last_success_timestamp_seconds`` for the "sink failing" alerts.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from processors.model import CHANNELS, SOURCES, CycleState, DomainEvent, Millis, Output
from sinks.writer import TABLES

if TYPE_CHECKING:
    from processors.desk import Desk

__all__ = [
    "CONTRACT_METRICS",
    "DEAD_LETTER_CLASSES",
    "FULFILMENT_BUCKETS",
    "STAGES",
    "MetricsServer",
    "PipelineMetrics",
    "dead_letter_class",
    "process_registry",
    "serve",
]

CONTRACT_METRICS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "supportstream_contacts_total": ("counter", ("channel",)),
    "supportstream_tickets_opened_total": ("counter", ("channel", "queue", "priority")),
    "supportstream_sla_breaches_total": ("counter", ("metric", "policy", "queue", "priority")),
    "supportstream_sla_warnings_total": ("counter", ("metric", "policy", "queue", "priority")),
    "supportstream_sla_active_cycles": ("gauge", ("metric", "policy")),
    "supportstream_sla_fulfilment_business_seconds": ("histogram", ("metric", "policy")),
    "supportstream_dead_letters_total": ("counter", ("source", "reason")),
    "supportstream_sink_rows_total": ("counter", ("table",)),
    "supportstream_event_lag_seconds": ("gauge", ("stage",)),
    "supportstream_queue_waiting_tickets": ("gauge", ("queue",)),
}
"""CONTRACT §6: name -> (type, labels). Alert rules and dashboards are checked against it."""

STAGES: Final[tuple[str, ...]] = ("connect", "parse", "desk", "sink")
"""Values of the ``stage`` label of ``supportstream_event_lag_seconds``."""

FULFILMENT_BUCKETS: Final[tuple[float, ...]] = (
    60.0,  # 1 min
    300.0,  # 5 min
    900.0,  # 15 min
    1800.0,  # 30 min
    3600.0,  # 1 h
    7200.0,  # 2 h
    14400.0,  # 4 h
    28800.0,  # 8 h
    57600.0,  # 16 h
    86400.0,  # 1 day
    172800.0,  # 2 days
    259200.0,  # 3 days
    604800.0,  # 1 week
)
"""Business seconds from a minute to a week: the usual targets (15m .. 16h) fall on bounds."""

UNKNOWN: Final = "unknown"

DEAD_LETTER_CLASSES: Final[tuple[str, ...]] = (
    "invalid_json",
    "unknown_source",
    "bad_timestamp",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "unknown_value",
    "no_ticket",
    "broken_mime",
    "parser_error",
    "other",
)

# First match wins; the patterns follow the reasons the parsers and the desk write
# (processors/parsing/*, processors/desk.py). Order matters: an e-mail reason is checked before
# the generic "must be" / "empty" shapes, a missing timestamp is a missing field.
_DEAD_LETTER_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("invalid_json", re.compile(r"^invalid json|nested too deeply|must be a json object")),
    ("unknown_source", re.compile(r"^unknown source")),
    ("no_ticket", re.compile(r"has no ticket|^unknown ticket")),
    ("broken_mime", re.compile(r"e-mail|mime|base64|content header|multipart", re.I)),
    ("missing_field", re.compile(r"^missing field|must not be empty|is empty|holds no |without ")),
    ("bad_timestamp", re.compile(r"^field at\b|timestamp|rfc ?3339", re.I)),
    ("out_of_range", re.compile(r"out of range|must not be negative")),
    ("unknown_value", re.compile(r"^unknown |must be '")),
    ("wrong_type", re.compile(r"must be (a|an) |, got ")),
    ("parser_error", re.compile(r"could not be parsed")),
)


def dead_letter_class(reason: str) -> str:
    """The short class of a dead letter's free-text reason (one of :data:`DEAD_LETTER_CLASSES`)."""
    for name, pattern in _DEAD_LETTER_PATTERNS:
        if pattern.search(reason):
            return name
    return "other"


def process_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors a long-running process
    should expose (what the global default registry would have had)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


_BREACHED, _WARNED, _FULFILLED, _STARTED = (
    "sla.cycle_breached",
    "sla.cycle_warned",
    "sla.cycle_fulfilled",
    "sla.cycle_started",
)
_WAITING_EVENTS: Final = ("ticket.waiting_started", "ticket.waiting_stopped")


class PipelineMetrics:
    """The §6 metrics in one registry, and the bookkeeping that derives them from the output.

    Not thread-safe by itself beyond what prometheus_client guarantees per metric: feed it from
    the one thread that runs the processors (the HTTP server thread only reads).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        ticket_cache_size: int = 100_000,
        sources: tuple[str, ...] = SOURCES,
    ) -> None:
        if ticket_cache_size <= 0:
            raise ValueError("ticket_cache_size must be positive")
        self.registry = registry
        self._ticket_cache_size = ticket_cache_size
        self._tickets: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # (ticket_id, metric, cycle) -> (policy, latest version, counted as active)
        self._cycles: dict[tuple[str, str, int], tuple[str, int, bool]] = {}
        self._rows_seen: dict[str, int] = {}
        # queue -> {ticket_id: instant it started waiting}, in the order they started (events
        # come in event-time order), so the first entry is the longest-waiting ticket.
        self._waiting: dict[str, dict[str, Millis]] = {}
        # Each labelled series, looked up once: ``labels()`` validates its values and takes
        # the metric's lock on every call, and the desk updates a few series per event.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

        self.contacts = Counter(
            "supportstream_contacts_total",
            "Customer contacts received (redeliveries excluded), by channel.",
            ["channel"],
            registry=registry,
        )
        self.tickets_opened = Counter(
            "supportstream_tickets_opened_total",
            "Tickets opened, by channel, queue and priority.",
            ["channel", "queue", "priority"],
            registry=registry,
        )
        self.breaches = Counter(
            "supportstream_sla_breaches_total",
            "SLA cycles that breached, by metric, policy and the ticket's queue and priority.",
            ["metric", "policy", "queue", "priority"],
            registry=registry,
        )
        self.warnings = Counter(
            "supportstream_sla_warnings_total",
            "SLA cycles that reached warn_at of their target, by metric, policy, queue, priority.",
            ["metric", "policy", "queue", "priority"],
            registry=registry,
        )
        self.active_cycles = Gauge(
            "supportstream_sla_active_cycles",
            "SLA cycles whose latest status is active (paused and breached ones excluded).",
            ["metric", "policy"],
            registry=registry,
        )
        self.fulfilment = Histogram(
            "supportstream_sla_fulfilment_business_seconds",
            "Business time at fulfilment of SLA cycles, in seconds.",
            ["metric", "policy"],
            buckets=FULFILMENT_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "supportstream_dead_letters_total",
            "Records that could not be understood, by source and reason class.",
            ["source", "reason"],
            registry=registry,
        )
        self.sink_rows = Counter(
            "supportstream_sink_rows_total",
            "Rows written to the warehouse, by table.",
            ["table"],
            registry=registry,
        )
        self.event_lag = Gauge(
            "supportstream_event_lag_seconds",
            "Wall-clock now minus the event time of the last record a stage handled.",
            ["stage"],
            registry=registry,
        )
        self.queue_waiting = Gauge(
            "supportstream_queue_waiting_tickets",
            "Tickets waiting in their queue for an agent (CONTRACT §7).",
            ["queue"],
            registry=registry,
        )
        self.queue_oldest_waiting = Gauge(
            "supportstream_queue_oldest_waiting_since_seconds",
            "Event time (Unix seconds) at which the queue's longest-waiting ticket started "
            "waiting; absent while nobody waits.",
            ["queue"],
            registry=registry,
        )
        self.intake_records = Counter(
            "supportstream_intake_records_total",
            "Raw messages this worker parsed and forwarded to the desk, by raw partition.",
            ["partition"],
            registry=registry,
        )
        self.desk_waiting = Gauge(
            "supportstream_desk_waiting_entries",
            "Parsed records the desk holds back until every raw partition has reached their "
            "instant (streams/sequencer.py); stays above 0 while a partition is unowned or stuck.",
            registry=registry,
        )
        self.sink_failures = Counter(
            "supportstream_sink_failures_total",
            "Failed warehouse writes (the batch is kept and retried), by table.",
            ["table"],
            registry=registry,
        )
        self.sink_last_success = Gauge(
            "supportstream_sink_last_success_timestamp_seconds",
            "Unix time of the last successful flush of the projection writer.",
            registry=registry,
        )
        self.first_response_estimate = Gauge(
            "supportstream_first_response_estimate_seconds",
            "The first-response estimate the next promise would use, by channel and policy.",
            ["channel", "policy"],
            registry=registry,
        )
        self.promises = Counter(
            "supportstream_promises_total",
            "First-response promises kept or broken, by channel and outcome.",
            ["channel", "outcome"],
            registry=registry,
        )
        self.incidents_open = Gauge(
            "supportstream_incidents_open",
            "Incidents open (0 or 1), by category.",
            ["category"],
            registry=registry,
        )
        self.incidents_opened = Counter(
            "supportstream_incidents_opened_total",
            "Incidents opened, by category.",
            ["category"],
            registry=registry,
        )
        # Series that alerts take increase() of exist from the start at 0, so that their first
        # increment is an increase (see the module docstring).
        for channel in CHANNELS:
            self._child(self.contacts, channel)
            for outcome in ("kept", "broken"):
                self._child(self.promises, channel, outcome)
        for table in TABLES:
            self._child(self.sink_rows, table)
            self._child(self.sink_failures, table)
        for source in (*sources, UNKNOWN):
            for reason in DEAD_LETTER_CLASSES:
                self._child(self.dead_letters, source, reason)

    # -- processors' output ---------------------------------------------------------------

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, the same series every time (until :meth:`_remove`)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def _remove(self, metric: MetricWrapperBase, *values: str) -> None:
        """Drop the series ``values`` of ``metric``, if it has one."""
        self._children.pop((id(metric), values), None)
        with contextlib.suppress(KeyError):
            metric.remove(*values)

    def observe_output(self, output: Output, now_ms: Millis | None = None) -> None:
        """Update the metrics from one step's output. With ``now_ms``, also the ``desk`` lag
        (now minus the latest instant in the output)."""
        latest: Millis | None = None
        for event in output.events:
            self._observe_event(event)
            if latest is None or event.at > latest:
                latest = event.at
            if event.event_type in _WAITING_EVENTS:
                self._observe_waiting(event)
        for ticket in output.tickets:
            self._remember_ticket(ticket.ticket_id, ticket.queue, ticket.priority)
        for cycle in output.cycles:
            self._observe_cycle(cycle)
        for channel, policy, seconds in output.estimates:
            self._child(self.first_response_estimate, channel, policy).set(seconds)
        for letter in output.dead_letters:
            source = letter.source or UNKNOWN
            self._child(self.dead_letters, source, dead_letter_class(letter.reason)).inc()
            if latest is None or letter.at > latest:
                latest = letter.at
        if now_ms is not None and latest is not None:
            self.observe_lag("desk", latest, now_ms)

    def _observe_event(self, event: DomainEvent) -> None:
        kind = event.event_type
        data = event.data
        if kind == "contact.received":
            if not data.get("duplicate", False):
                self._child(self.contacts, str(data.get("channel", UNKNOWN))).inc()
        elif kind == "ticket.opened":
            queue, priority = str(data.get("queue", UNKNOWN)), str(data.get("priority", UNKNOWN))
            self._remember_ticket(event.ticket_id, queue, priority)
            self._child(
                self.tickets_opened, str(data.get("channel", UNKNOWN)), queue, priority
            ).inc()
        elif kind in (_STARTED, _WARNED, _BREACHED, _FULFILLED):
            metric, policy = str(data.get("metric", UNKNOWN)), str(data.get("policy", UNKNOWN))
            queue, priority = self._ticket(event.ticket_id)
            if kind == _STARTED:
                self._child(self.breaches, metric, policy, queue, priority)
                self._child(self.warnings, metric, policy, queue, priority)
            elif kind == _BREACHED:
                self._child(self.breaches, metric, policy, queue, priority).inc()
            elif kind == _WARNED:
                self._child(self.warnings, metric, policy, queue, priority).inc()
            else:
                seconds = data.get("business_seconds")
                if isinstance(seconds, int | float):
                    self._child(self.fulfilment, metric, policy).observe(float(seconds))
        elif kind.startswith(("ticket.acknowledged", "promise.", "incident.")):
            self._observe_service_event(event)

    def _observe_service_event(self, event: DomainEvent) -> None:
        """Promises and incidents (CONTRACT §7)."""
        kind, data = event.event_type, event.data
        if kind == "ticket.acknowledged":
            channel, policy = str(data.get("channel", UNKNOWN)), str(data.get("policy", UNKNOWN))
            seconds = data.get("estimate_seconds")
            if isinstance(seconds, int | float):
                self._child(self.first_response_estimate, channel, policy).set(float(seconds))
        elif kind in ("promise.kept", "promise.broken"):
            outcome = kind.removeprefix("promise.")
            self._child(self.promises, str(data.get("channel", UNKNOWN)), outcome).inc()
        elif kind in ("incident.opened", "incident.joined", "incident.closed"):
            category = str(data.get("category", UNKNOWN))
            self._child(self.incidents_open, category).set(0 if kind == "incident.closed" else 1)
            if kind == "incident.opened":
                self._child(self.incidents_opened, category).inc()

    def observe_desk_state(self, desk: Desk) -> None:
        """Start the gauges of waiting tickets and open incidents from what a desk built from
        stored state holds (a restarted or rebalanced worker): tickets still waiting and
        incidents still open are shown at once, not only after their next event (CONTRACT §6,
        §7). A queue this process counted before and where nobody waits now goes to 0.

        The series the rules make possible are created from the start, so that ``/metrics``
        shows every §6 name and ``increase()`` sees a first change from 0: the waiting tickets
        of every queue that waits (an agent is listed for it, ``assignment`` is not ``none``),
        the open and opened incidents of every category (with ``incidents``), and the estimate
        the next promise of every channel and policy with a first-response target would use."""
        self._prepare_series(desk)
        tickets = desk.stores.tickets
        waiting = sorted(
            (int(since), ticket_id, tickets[ticket_id].queue)
            for ticket_id, since in desk.stores.waiting.items()
        )
        by_queue: dict[str, dict[str, Millis]] = {queue: {} for queue in self._waiting}
        for since, ticket_id, queue in waiting:
            by_queue.setdefault(queue, {})[ticket_id] = since
        for queue, entries in by_queue.items():
            self._waiting[queue] = entries
            self._child(self.queue_waiting, queue).set(len(entries))
            if entries:
                self._child(self.queue_oldest_waiting, queue).set(
                    next(iter(entries.values())) / 1000
                )
            else:
                self._remove(self.queue_oldest_waiting, queue)
        for category, state in desk.stores.incidents.items():
            self._child(self.incidents_open, category).set(0 if state.get("open") is None else 1)

    def _prepare_series(self, desk: Desk) -> None:
        rules = desk.rules
        if rules.assignment != "none":
            for queue in dict.fromkeys(q for agent in rules.agents for q in agent.queues):
                if queue not in self._waiting:
                    self._child(self.queue_waiting, queue).set(0)
        if rules.incidents is not None:
            for category in rules.categories:
                self._child(self.incidents_open, category.name)
                self._child(self.incidents_opened, category.name)
        for policy in rules.sla_policies:
            for channel in CHANNELS:
                estimate = desk.promises.next_estimate(channel, policy.name)
                if estimate is not None:
                    self._child(self.first_response_estimate, channel, policy.name).set(
                        estimate / 1000
                    )

    def _observe_waiting(self, event: DomainEvent) -> None:
        queue = str(event.data.get("queue", UNKNOWN))
        waiting = self._waiting.setdefault(queue, {})
        if event.event_type == "ticket.waiting_started":
            if event.ticket_id in waiting:
                return
            waiting[event.ticket_id] = event.at
        elif waiting.pop(event.ticket_id, None) is None:
            return  # started before this process did: it was never counted here
        self._child(self.queue_waiting, queue).set(len(waiting))
        if waiting:
            self._child(self.queue_oldest_waiting, queue).set(next(iter(waiting.values())) / 1000)
        else:
            self._remove(self.queue_oldest_waiting, queue)  # if set: somebody waited here

    def _observe_cycle(self, cycle: CycleState) -> None:
        key = (cycle.ticket_id, cycle.metric, cycle.cycle)
        held = self._cycles.get(key)
        if held is not None and cycle.version < held[1]:
            return  # an older snapshot delivered late changes nothing
        was_active = held is not None and held[2]
        is_active = cycle.status == "active"
        if was_active and not is_active:
            self._child(self.active_cycles, cycle.metric, cycle.policy).dec()
        elif is_active and not was_active:
            self._child(self.active_cycles, cycle.metric, cycle.policy).inc()
        if cycle.status in ("active", "paused"):
            self._cycles[key] = (cycle.policy, cycle.version, is_active)
        else:
            # met / breached / cancelled: nothing to count any more. A met resolution that a
            # reopen makes active again comes back as a new entry. Dropping finished cycles keeps
            # the map as large as the running cycles, not as the history.
            self._cycles.pop(key, None)
            self._child(self.active_cycles, cycle.metric, cycle.policy)

    def _remember_ticket(self, ticket_id: str, queue: str, priority: str) -> None:
        self._tickets[ticket_id] = (queue, priority)
        self._tickets.move_to_end(ticket_id)
        while len(self._tickets) > self._ticket_cache_size:
            self._tickets.popitem(last=False)

    def _ticket(self, ticket_id: str) -> tuple[str, str]:
        held = self._tickets.get(ticket_id)
        if held is None:
            return UNKNOWN, UNKNOWN
        self._tickets.move_to_end(ticket_id)
        return held

    # -- sink -----------------------------------------------------------------------------

    def observe_sink(self, rows_written: Mapping[str, int], now_ms: Millis | None = None) -> None:
        """After a successful flush: ``rows_written`` is the writer's running count per table
        (``ProjectionWriter.rows_written``); the counters move by the difference since the last
        call. A count that went down means a new writer: its whole count is new rows."""
        for table, total in rows_written.items():
            seen = self._rows_seen.get(table, 0)
            delta = total - seen if total >= seen else total
            if delta > 0:
                self._child(self.sink_rows, table).inc(delta)
            self._rows_seen[table] = total
        now = time.time() if now_ms is None else now_ms / 1000
        self.sink_last_success.set(now)

    def observe_sink_failure(self, table: str = UNKNOWN) -> None:
        """A write to ``table`` failed (``SinkError``); the writer keeps the batch for a retry."""
        self._child(self.sink_failures, table).inc()

    # -- the production path's parse stage and merge --------------------------------------

    def observe_intake(self, partition: int, count: int = 1) -> None:
        """``count`` raw messages of ``partition`` parsed and forwarded to the desk."""
        self._child(self.intake_records, str(partition)).inc(count)

    def observe_merge(self, waiting: int) -> None:
        """The desk's merge holds ``waiting`` entries for the other partitions."""
        self.desk_waiting.set(waiting)

    # -- lag ------------------------------------------------------------------------------

    def observe_lag(self, stage: str, event_time_ms: Millis, now_ms: Millis | None = None) -> None:
        """``stage`` handled a record of event time ``event_time_ms`` at ``now_ms`` (default:
        the wall clock)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        self._child(self.event_lag, stage).set(max(0.0, (now - event_time_ms) / 1000))


# -- HTTP endpoint ------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`stop` shuts it down."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_pipeline_metrics(port: int) -> tuple[PipelineMetrics, MetricsServer]:
    """What a long-running process (demo, worker, sink) does at start: the §6 metrics on a
    fresh registry with the process collectors, served on ``port`` (OSError if it is taken)."""
    registry = process_registry()
    metrics = PipelineMetrics(registry)
    return metrics, serve(port, registry)


def serve(port: int, registry: CollectorRegistry, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` from a daemon thread (port 0: any
    free port, see :attr:`MetricsServer.port`)."""
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)

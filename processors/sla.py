"""SLA cycles of one ticket as a pure state machine (CONTRACT §3).

The ticket processor owns the ticket; this module owns its SLA clocks. Every input is a function
``f(state, ..., at) -> (new_state, SlaOutput)``: the new frozen ``SlaTicket`` and what happened,
in order (``SlaEffect`` events and ``CycleState`` snapshots of the cycles that changed). Time
arrives as values; ``next_timer`` says when the ticket next needs ``fire``.

Driver protocol, for a record at instant ``t`` (records at one instant before timers of it)::

    fire every timer with instant < t, all tickets, in instant order   (TimerQueue.pop_next(t - 1))
    apply the record: open_ticket / reopen / status_change / inbound / public_reply
    reschedule the ticket: next_timer(state) -> TimerQueue.schedule / cancel
    ... when event time moves past t (next record, --until T, or the wall clock in live mode),
    timers at t fire.

Every signal function also fires the ticket's own timers before ``at`` first, so a breach that is
due before a late record is never lost, whatever the driver did.

Clock arithmetic: a cycle's business time is kept exactly, as integer milliseconds: ``spent``
accumulated up to ``since`` (the instant its clock last started), plus the calendar's business time
from ``since`` to now while the clock runs. ``due_at`` and the warning instant are computed when the
clock starts (at the start, a resume or a reactivation) from what is left:
``calendar.due(since, target - spent)``; a pause keeps the ``due_at`` from before the pause. So a
pause shifts both timers by exactly the business time it covered.

State is compact for the sake of a million open cycles: a ticket keeps only the cycles that may
still change (the running responses and the resolution, which a reopen can revive); a finished
response cycle is dropped after its final snapshot was emitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from typing import Any, Final, NamedTuple, Protocol

from processors.model import CycleState, Millis

__all__ = [
    "FIRST_RESPONSE",
    "METRICS",
    "NEXT_RESPONSE",
    "RESOLUTION",
    "BusinessClock",
    "Cycle",
    "SlaEffect",
    "SlaOutput",
    "SlaPolicyLike",
    "SlaTerms",
    "SlaTicket",
    "fire",
    "inbound",
    "next_timer",
    "open_ticket",
    "public_reply",
    "reopen",
    "status_change",
]

FIRST_RESPONSE: Final = "first_response"
NEXT_RESPONSE: Final = "next_response"
RESOLUTION: Final = "resolution"
METRICS: Final[tuple[str, str, str]] = (FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION)
_METRIC_ORDER: Final = {metric: i for i, metric in enumerate(METRICS)}

ACTIVE: Final = "active"
PAUSED: Final = "paused"
MET: Final = "met"
BREACHED: Final = "breached"
CANCELLED: Final = "cancelled"

_OPEN: Final = "open"
_PENDING: Final = "pending"
_SOLVED: Final = "solved"


class BusinessClock(Protocol):
    """The calendar functions of CONTRACT §3 (``processors.calendar.BusinessCalendar``)."""

    def business_time(self, t0: Millis, t1: Millis) -> int: ...
    def due(self, t0: Millis, d: int) -> Millis: ...


class SlaPolicyLike(Protocol):
    """What the SLA reads from a policy of the rules file (``rules.SlaPolicy`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def targets(self) -> Mapping[str, int]: ...
    @property
    def warn_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SlaTerms:
    """A policy bound to its calendar: built once per policy, shared by all its tickets."""

    policy: str
    calendar: BusinessClock
    targets: dict[str, int]  # metric -> target, ms; only metrics the policy has
    warn_targets: dict[str, int]  # metric -> floor(warn_at * target), ms

    @classmethod
    def of(cls, policy: SlaPolicyLike, calendar: BusinessClock) -> SlaTerms:
        warn_at = policy.warn_at
        if not 0 < warn_at < 1:
            raise ValueError(f"policy {policy.name}: warn_at must lie strictly between 0 and 1")
        # warn_at is read as the decimal it was written as (0.29, not 0.28999999999999998) so
        # that "rounded down" rounds the intended product, not a binary approximation of it.
        fraction = Fraction(repr(float(warn_at)))
        targets: dict[str, int] = {}
        warn_targets: dict[str, int] = {}
        for metric in METRICS:
            target = policy.targets.get(metric)
            if target is None:
                continue
            if target < 0:
                raise ValueError(f"policy {policy.name}: negative {metric} target")
            targets[metric] = target
            warn_targets[metric] = floor(fraction * target)
        unknown = set(policy.targets) - set(METRICS)
        if unknown:
            raise ValueError(f"policy {policy.name}: unknown metrics {sorted(unknown)!r}")
        return cls(policy.name, calendar, targets, warn_targets)


class Cycle(NamedTuple):
    """One run of one metric.

    ``status`` is what the table shows; ``live`` is CONTRACT §3's "running" (started, not yet
    fulfilled or cancelled; a breached cycle stays live until fulfilled or cancelled). The clock
    runs while ``since`` is set; ``spent`` is the business time accumulated before ``since``.
    ``warn_due`` is the pending warning instant, set only while the clock runs and no warning
    happened. Pending breach instant: ``due_at`` while the clock runs and not breached.
    """

    metric: str
    number: int
    status: str
    live: bool
    started_at: Millis
    spent: int
    since: Millis | None
    due_at: Millis
    warn_due: Millis | None
    warned_at: Millis | None
    breached_at: Millis | None
    fulfilled_at: Millis | None
    business_ms: int | None  # business time at the latest fulfilment
    version: int

    @property
    def timing(self) -> bool:
        """Whether the cycle has a pending timer (its clock runs and it has not breached)."""
        return self.since is not None and self.status != BREACHED


@dataclass(frozen=True, slots=True)
class SlaTicket:
    """The SLA state of one ticket. ``status`` is the ticket's status as the SLA sees it:
    ``open`` (also for ``new``), ``pending`` or ``solved``."""

    ticket_id: str
    terms: SlaTerms
    status: str
    replied: bool  # the ticket has had a public agent reply
    next_response_count: int  # next_response cycles started so far
    cycles: tuple[Cycle, ...]  # cycles that may still change, in METRICS order

    # Written out, not generated by @dataclass: compiled, a direct store per field (as
    # processors.desk.Ticket's; tests/processors/test_native_inits.py holds it to the fields).
    def __init__(
        self,
        ticket_id: str,
        terms: SlaTerms,
        status: str,
        replied: bool,
        next_response_count: int,
        cycles: tuple[Cycle, ...],
    ) -> None:
        object.__setattr__(self, "ticket_id", ticket_id)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "replied", replied)
        object.__setattr__(self, "next_response_count", next_response_count)
        object.__setattr__(self, "cycles", cycles)

    def evolve(
        self,
        *,
        cycles: tuple[Cycle, ...],
        status: str | None = None,
        replied: bool | None = None,
        next_response_count: int | None = None,
    ) -> SlaTicket:
        """A copy with new cycles and, optionally, other fields (cheaper than ``replace``)."""
        return SlaTicket(
            self.ticket_id,
            self.terms,
            self.status if status is None else status,
            self.replied if replied is None else replied,
            self.next_response_count if next_response_count is None else next_response_count,
            cycles,
        )

    def cycle(self, metric: str) -> Cycle | None:
        """The kept cycle of ``metric`` (the latest next_response), or None."""
        for cycle in self.cycles:
            if cycle.metric == metric:
                return cycle
        return None


@dataclass(frozen=True, slots=True)
class SlaEffect:
    """One SLA event: ``event_type`` is an ``sla.cycle_*`` type of ``processors.events`` and
    ``data`` its fields. ``cycle_version`` is the cycle's version after this change: with
    ticket, metric and cycle it names the event uniquely (for a deterministic event id)."""

    event_type: str
    at: Millis
    data: dict[str, Any]
    cycle_version: int

    # Written out, not generated by @dataclass: compiled, a direct store per field (as
    # processors.desk.Ticket's; tests/processors/test_native_inits.py holds it to the fields).
    def __init__(
        self, event_type: str, at: Millis, data: dict[str, Any], cycle_version: int
    ) -> None:
        object.__setattr__(self, "event_type", event_type)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "cycle_version", cycle_version)


@dataclass(frozen=True, slots=True)
class SlaOutput:
    """What one step did: the events in order, and the latest snapshot of each changed cycle."""

    events: tuple[SlaEffect, ...] = ()
    cycles: tuple[CycleState, ...] = ()

    # Written out, not generated by @dataclass: compiled, a direct store per field (as
    # processors.desk.Ticket's; tests/processors/test_native_inits.py holds it to the fields).
    def __init__(
        self, events: tuple[SlaEffect, ...] = (), cycles: tuple[CycleState, ...] = ()
    ) -> None:
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "cycles", cycles)


SlaStep = tuple[SlaTicket, SlaOutput]


# ---------------------------------------------------------------------------------------------
# Signals from the ticket processor
# ---------------------------------------------------------------------------------------------


def open_ticket(ticket_id: str, terms: SlaTerms, at: Millis) -> SlaStep:
    """A ticket opened at ``at``: start first_response and resolution cycle 1 (those the policy
    has a target for)."""
    step = _Step(ticket_id, terms)
    cycles = tuple(
        step.start(metric, 1, at)
        for metric in (FIRST_RESPONSE, RESOLUTION)
        if metric in terms.targets
    )
    return SlaTicket(ticket_id, terms, _OPEN, False, 0, cycles), step.output()


def inbound(state: SlaTicket, at: Millis) -> SlaStep:
    """A customer contact on the (not solved) ticket: start the next next_response cycle if the
    ticket has had a public agent reply and no next_response cycle is running."""
    state, step = _begin(state, at)
    if (
        state.status == _SOLVED  # the ticket processor reopens first; a stray call changes nothing
        or not state.replied
        or NEXT_RESPONSE not in state.terms.targets
        or any(c.metric == NEXT_RESPONSE and c.live for c in state.cycles)
    ):
        return state, step.output()
    number = state.next_response_count + 1
    started = step.start(NEXT_RESPONSE, number, at)
    kept = [c for c in state.cycles if c.metric != NEXT_RESPONSE]
    kept.append(started)
    kept.sort(key=lambda c: _METRIC_ORDER[c.metric])
    state = state.evolve(next_response_count=number, cycles=tuple(kept))
    return state, step.output()


def public_reply(state: SlaTicket, at: Millis) -> SlaStep:
    """A public agent reply: fulfils the running first_response or next_response cycle."""
    state, step = _begin(state, at)
    cycles = tuple(
        step.fulfil(c, at) if c.live and c.metric != RESOLUTION else c for c in state.cycles
    )
    state = state.evolve(replied=True, cycles=_drop_finished_responses(cycles))
    return state, step.output()


def status_change(state: SlaTicket, at: Millis, new_status: str) -> SlaStep:
    """The ticket's status became ``new_status`` (``open``, ``pending`` or ``solved``).

    To ``pending``: resolution pauses. From ``pending`` to ``open``: it resumes. To ``solved``:
    resolution is fulfilled and running response cycles are cancelled. From ``solved`` to
    ``open`` or ``pending``: a reopen (see ``reopen``). Setting the current status does nothing.
    """
    if new_status == "new":
        new_status = _OPEN
    if new_status not in (_OPEN, _PENDING, _SOLVED):
        raise ValueError(f"unknown ticket status {new_status!r}")
    if state.status == _SOLVED and new_status != _SOLVED:
        return reopen(state, at, new_status)
    state, step = _begin(state, at)
    if new_status == state.status:
        return state, step.output()
    cycles = state.cycles
    if new_status == _SOLVED:
        cycles = tuple(
            (step.fulfil(c, at) if c.metric == RESOLUTION else step.cancel(c, at)) if c.live else c
            for c in cycles
        )
        cycles = _drop_finished_responses(cycles)
    elif new_status == _PENDING:
        cycles = tuple(
            step.pause(c, at) if c.metric == RESOLUTION and c.live and c.since is not None else c
            for c in cycles
        )
    else:  # pending -> open
        cycles = tuple(
            step.resume(c, at) if c.metric == RESOLUTION and c.live and c.since is None else c
            for c in cycles
        )
    return state.evolve(status=new_status, cycles=cycles), step.output()


def reopen(state: SlaTicket, at: Millis, to_status: str) -> SlaStep:
    """A solved ticket reopened to ``to_status`` (``open`` or ``pending``).

    Resolution becomes running again: a met one turns ``active`` (``paused`` when reopened to
    pending), a breached one stays ``breached``; its business time goes on from where it
    stopped, and ``fulfilled_at`` / ``business_seconds`` keep describing the latest fulfilment
    until the next solve. No response cycle starts here: an inbound contact that reopens is
    followed by ``inbound``, which starts a next_response only if the ticket had a public reply.
    """
    if to_status == "new":
        to_status = _OPEN
    if to_status not in (_OPEN, _PENDING):
        raise ValueError(f"a ticket reopens to open or pending, not {to_status!r}")
    if state.status != _SOLVED:
        return status_change(state, at, to_status)
    state, step = _begin(state, at)
    cycles = tuple(
        step.reactivate(c, at, running=to_status == _OPEN) if c.metric == RESOLUTION else c
        for c in state.cycles
    )
    return state.evolve(status=to_status, cycles=cycles), step.output()


# ---------------------------------------------------------------------------------------------
# Timers
# ---------------------------------------------------------------------------------------------


def next_timer(state: SlaTicket) -> Millis | None:
    """The earliest pending timer (warning or breach) of the ticket's running cycles, or None."""
    earliest: Millis | None = None
    for c in state.cycles:
        if c.timing:
            at = c.warn_due if c.warn_due is not None else c.due_at
            if earliest is None or at < earliest:
                earliest = at
    return earliest


def fire(state: SlaTicket, now: Millis) -> SlaStep:
    """Fire every timer of the ticket with instant ``<= now``, in instant order.

    Events carry the timer's own instant, not ``now``. At one instant warnings come before
    breaches, then metrics in the order first_response, next_response, resolution; a cycle whose
    warning and breach fall on the same instant (resumed with nothing left) gets both, warning
    first.
    """
    step = _Step(state.ticket_id, state.terms)
    state = _fire_until(state, now, step)
    return state, step.output()


def _fire_until(state: SlaTicket, now: Millis, step: _Step) -> SlaTicket:
    cycles = list(state.cycles)
    while True:
        best: tuple[Millis, int, int, int] | None = None
        for i, c in enumerate(cycles):
            if not c.timing:
                continue
            if c.warn_due is not None:
                key = (c.warn_due, 0, _METRIC_ORDER[c.metric], i)
            else:
                key = (c.due_at, 1, _METRIC_ORDER[c.metric], i)
            if key[0] <= now and (best is None or key < best):
                best = key
        if best is None:
            break
        at, kind, _, i = best
        cycles[i] = step.warn(cycles[i], at) if kind == 0 else step.breach(cycles[i], at)
    if step.changed:
        return state.evolve(cycles=tuple(cycles))
    return state


def _begin(state: SlaTicket, at: Millis) -> tuple[SlaTicket, _Step]:
    """Start a step for a signal at ``at``: timers strictly before ``at`` happen first."""
    step = _Step(state.ticket_id, state.terms)
    return _fire_until(state, at - 1, step), step


def _drop_finished_responses(cycles: tuple[Cycle, ...]) -> tuple[Cycle, ...]:
    """Response cycles never change after fulfilment or cancellation; their final snapshot has
    been emitted, so the state forgets them. Resolution is kept: a reopen revives it."""
    return tuple(c for c in cycles if c.live or c.metric == RESOLUTION)


# ---------------------------------------------------------------------------------------------
# Cycle transitions, collecting events and snapshots
# ---------------------------------------------------------------------------------------------


class _Step:
    """Accumulates one step's events and snapshots; every transition goes through here so that
    each change bumps the cycle's version and is reported exactly once."""

    __slots__ = ("_events", "_snapshots", "terms", "ticket_id")

    def __init__(self, ticket_id: str, terms: SlaTerms) -> None:
        self.ticket_id = ticket_id
        self.terms = terms
        self._events: list[SlaEffect] = []
        self._snapshots: dict[tuple[str, int], CycleState] = {}

    @property
    def changed(self) -> bool:
        return bool(self._events)

    def output(self) -> SlaOutput:
        return SlaOutput(tuple(self._events), tuple(self._snapshots.values()))

    def _record(self, event_type: str, c: Cycle, at: Millis, **fields: Any) -> Cycle:
        data: dict[str, Any] = {
            "metric": c.metric,
            "cycle": c.number,
            "policy": self.terms.policy,
            "due_at": c.due_at,
        }
        data.update(fields)
        self._events.append(SlaEffect(event_type, at, data, c.version))
        self._snapshots[(c.metric, c.number)] = CycleState(
            ticket_id=self.ticket_id,
            metric=c.metric,
            cycle=c.number,
            policy=self.terms.policy,
            status=c.status,
            started_at=c.started_at,
            due_at=c.due_at,
            warned_at=c.warned_at,
            breached_at=c.breached_at,
            fulfilled_at=c.fulfilled_at,
            business_seconds=None if c.business_ms is None else c.business_ms / 1000,
            target_seconds=self.terms.targets[c.metric] / 1000,
            updated_at=at,
            version=c.version,
        )
        return c

    def _elapsed(self, c: Cycle, at: Millis) -> int:
        """Business time of the cycle up to ``at``."""
        if c.since is None:
            return c.spent
        return c.spent + self.terms.calendar.business_time(c.since, at)

    def _timers_from(self, c: Cycle, at: Millis) -> tuple[Millis, Millis | None]:
        """``(due_at, warn_due)`` for a clock (re)starting at ``at`` with ``c.spent`` used.

        With nothing left the instant is ``at`` itself (``due(at, 0) == at``): a cycle resumed
        with its target (or warning) used up fires at the resume instant."""
        calendar = self.terms.calendar
        due_at = calendar.due(at, max(0, self.terms.targets[c.metric] - c.spent))
        warn_due = None
        if c.warned_at is None:
            warn_due = calendar.due(at, max(0, self.terms.warn_targets[c.metric] - c.spent))
        return due_at, warn_due

    def start(self, metric: str, number: int, at: Millis) -> Cycle:
        calendar = self.terms.calendar
        due_at = calendar.due(at, self.terms.targets[metric])
        warn_due = calendar.due(at, self.terms.warn_targets[metric])
        c = Cycle(
            metric, number, ACTIVE, True, at, 0, at, due_at, warn_due, None, None, None, None, 1
        )
        return self._record(
            "sla.cycle_started", c, at, target_seconds=self.terms.targets[metric] / 1000
        )

    def warn(self, c: Cycle, at: Millis) -> Cycle:
        c = c._replace(warn_due=None, warned_at=at, version=c.version + 1)
        return self._record("sla.cycle_warned", c, at, business_seconds=self._elapsed(c, at) / 1000)

    def breach(self, c: Cycle, at: Millis) -> Cycle:
        # The clock keeps running after a breach: business_seconds at a later fulfilment counts
        # the whole time, and due_at stays the breach instant from now on.
        c = c._replace(status=BREACHED, breached_at=at, warn_due=None, version=c.version + 1)
        return self._record(
            "sla.cycle_breached", c, at, target_seconds=self.terms.targets[c.metric] / 1000
        )

    def pause(self, c: Cycle, at: Millis) -> Cycle:
        # Bank the business time so far; due_at keeps the value from before the pause.
        spent = self._elapsed(c, at)
        status = PAUSED if c.status == ACTIVE else c.status
        c = c._replace(status=status, spent=spent, since=None, warn_due=None, version=c.version + 1)
        return self._record("sla.cycle_paused", c, at, business_seconds=spent / 1000)

    def resume(self, c: Cycle, at: Millis) -> Cycle:
        # Restart the clock: what is left of the target (and of the warning) counts from `at`,
        # so the pause shifts both instants by exactly the business time it covered.
        c = c._replace(since=at, version=c.version + 1)
        if c.status != BREACHED:
            due_at, warn_due = self._timers_from(c, at)
            c = c._replace(status=ACTIVE, due_at=due_at, warn_due=warn_due)
        return self._record("sla.cycle_resumed", c, at, business_seconds=c.spent / 1000)

    def fulfil(self, c: Cycle, at: Millis) -> Cycle:
        c = self._stop(c, at, MET)
        c = c._replace(fulfilled_at=at, business_ms=c.spent)
        return self._record(
            "sla.cycle_fulfilled",
            c,
            at,
            business_seconds=c.spent / 1000,
            breached=c.status == BREACHED,
        )

    def cancel(self, c: Cycle, at: Millis) -> Cycle:
        c = self._stop(c, at, CANCELLED)
        return self._record("sla.cycle_cancelled", c, at, business_seconds=c.spent / 1000)

    def _stop(self, c: Cycle, at: Millis, status: str) -> Cycle:
        """The cycle stops running for good with ``status``; a breached cycle keeps its status
        (a breach stands) but stops like any other. Its business time is kept exactly."""
        return c._replace(
            status=BREACHED if c.status == BREACHED else status,
            live=False,
            spent=self._elapsed(c, at),
            since=None,
            warn_due=None,
            version=c.version + 1,
        )

    def reactivate(self, c: Cycle, at: Millis, *, running: bool) -> Cycle:
        """Revive a fulfilled resolution; fulfilled_at and business_ms stay until the next solve."""
        if c.live:  # not fulfilled (cannot happen for a solved ticket); leave it as it is
            return c
        if running:
            return self.resume(c._replace(live=True), at)
        c = c._replace(live=True, version=c.version + 1)
        if c.status != BREACHED:
            c = c._replace(status=PAUSED)
        return self._record("sla.cycle_paused", c, at, business_seconds=c.spent / 1000)

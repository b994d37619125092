"""The SLA clocks of every ticket, and the timer queue that says which fires next.

``processors.sla`` is the state machine of one ticket's cycles; this module keeps those states
(by ticket id, in a mapping a runner may provide) and one ``TimerQueue`` ordered by due instant,
so firing a timer costs O(log n) whatever the number of open cycles: nothing scans all tickets.

The desk calls one method per signal; each returns the ``SlaOutput`` of that ticket and
reschedules its next timer. ``advance`` fires the timers event time has passed, in strict
instant order across tickets (``TimerQueue.pop_next``), rescheduling each ticket as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from processors import sla
from processors.calendar import BusinessCalendar
from processors.model import Millis
from processors.rules import Rules, SlaPolicy
from processors.timers import TimerQueue

_NOTHING = sla.SlaOutput()


class SlaBook:
    def __init__(
        self, rules: Rules, states: MutableMapping[str, sla.SlaTicket] | None = None
    ) -> None:
        calendars = {
            name: BusinessCalendar.from_spec(spec) for name, spec in rules.calendars.items()
        }
        # Terms are built once per policy and shared by all its tickets.
        self._terms = {
            policy.name: sla.SlaTerms.of(policy, calendars[policy.calendar])
            for policy in rules.sla_policies
        }
        self.states: MutableMapping[str, sla.SlaTicket] = {} if states is None else states
        self.timers = TimerQueue()
        for ticket_id, state in self.states.items():
            self._schedule(ticket_id, state)

    # -- signals --------------------------------------------------------------------------

    def open(self, ticket_id: str, policy: SlaPolicy, at: Millis) -> sla.SlaOutput:
        state, output = sla.open_ticket(ticket_id, self._terms[policy.name], at)
        return self._keep(ticket_id, state, output)

    def inbound(self, ticket_id: str, at: Millis) -> sla.SlaOutput:
        state = self.states.get(ticket_id)
        if state is None:
            return _NOTHING
        return self._keep(ticket_id, *sla.inbound(state, at))

    def public_reply(self, ticket_id: str, at: Millis) -> sla.SlaOutput:
        state = self.states.get(ticket_id)
        if state is None:
            return _NOTHING
        return self._keep(ticket_id, *sla.public_reply(state, at))

    def status(self, ticket_id: str, at: Millis, new_status: str) -> sla.SlaOutput:
        state = self.states.get(ticket_id)
        if state is None:
            return _NOTHING
        return self._keep(ticket_id, *sla.status_change(state, at, new_status))

    def reopen(self, ticket_id: str, at: Millis, to_status: str) -> sla.SlaOutput:
        state = self.states.get(ticket_id)
        if state is None:
            return _NOTHING
        return self._keep(ticket_id, *sla.reopen(state, at, to_status))

    # -- time -----------------------------------------------------------------------------

    def advance(self, now: Millis, *, inclusive: bool) -> Iterator[tuple[str, sla.SlaOutput]]:
        """Fire, in instant order, every timer before ``now`` (or at it when ``inclusive``)."""
        limit = now if inclusive else now - 1
        while (due := self.timers.pop_next(limit)) is not None:
            at, ticket_id = due
            state, output = sla.fire(self.states[ticket_id], at)
            output = self._keep(ticket_id, state, output)
            if output.events or output.cycles:
                yield ticket_id, output

    def next_timer(self) -> Millis | None:
        return self.timers.peek()

    def _keep(self, ticket_id: str, state: sla.SlaTicket, output: sla.SlaOutput) -> sla.SlaOutput:
        self.states[ticket_id] = state
        self._schedule(ticket_id, state)
        return output

    def _schedule(self, ticket_id: str, state: sla.SlaTicket) -> None:
        due = sla.next_timer(state)
        if due is None:
            self.timers.cancel(ticket_id)
        else:
            self.timers.schedule(ticket_id, due)

"""Contact-reason spikes as incidents (CONTRACT §7 "Incidents", docs/INCIDENTS.md).

At each opening of a ticket of category c (not ``other``) at instant t:

* n = distinct customers among the tickets of c opened in (t - window, t];
* b = tickets of c opened in (t - window - baseline, t - window], times window / baseline;
* with no incident of c open, n >= min_customers and n >= factor x b open incident
  ``{c}#{k}`` (k counts c's incidents from 1) at t. The tickets of c opened in
  (t - window, t], and every ticket of c opened while it is open, carry its id;
* it closes at the instant ``window`` after the latest of its tickets opened: a timer, fired
  like the SLA timers (records of an instant are applied before the timers of that instant,
  so a ticket opened exactly ``window`` after the latest one still joins).

The comparison is exact (``n x baseline >= factor x count x window`` in rationals), so a
threshold reached exactly opens the incident.

Pure: ``IncidentBook`` works on two mappings a runner hands in (``incidents``: per category
its counter and open incident; ``openings``: the recent openings of each category, in
buckets) and keeps the close instants of the open incidents in memory, rebuilt from the
mapping when the book is built. Openings are stored in time buckets of
``bucket_ms(spec)`` so that an opening rewrites one small bucket, and counting the baseline
reads whole buckets by their length: only the buckets at the two boundaries are scanned.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Final

from processors.model import Millis
from processors.rules import OTHER_CATEGORY, IncidentsSpec

__all__ = ["Incident", "IncidentBook", "Opened", "bucket_ms"]

_BUCKETS: Final = 64
"""About how many buckets cover window + baseline."""


def bucket_ms(spec: IncidentsSpec) -> int:
    return max(60_000, (spec.window_ms + spec.baseline_ms) // _BUCKETS)


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as the ``incidents`` table shows it; ``version`` grows with each change,
    ``seq`` numbers its own events (``incident.opened``, ``incident.closed``)."""

    incident_id: str
    category: str
    opened_at: Millis
    latest_at: Millis  # the latest opening of one of its tickets
    tickets: int
    customers: tuple[str, ...]  # sorted, distinct
    baseline: float
    closed_at: Millis | None = None
    version: int = 1
    seq: int = 0

    def data(self) -> dict[str, Any]:
        """The fields every incident event carries: the incident after the change."""
        return {
            "incident_id": self.incident_id,
            "category": self.category,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "tickets": self.tickets,
            "customers": len(self.customers),
            "baseline": self.baseline,
            "version": self.version,
        }

    def encode(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "category": self.category,
            "opened_at": self.opened_at,
            "latest_at": self.latest_at,
            "tickets": self.tickets,
            "customers": list(self.customers),
            "baseline": self.baseline,
            "version": self.version,
            "seq": self.seq,
        }

    @classmethod
    def decode(cls, value: dict[str, Any]) -> Incident:
        return cls(
            incident_id=value["incident_id"],
            category=value["category"],
            opened_at=int(value["opened_at"]),
            latest_at=int(value["latest_at"]),
            tickets=int(value["tickets"]),
            customers=tuple(value["customers"]),
            baseline=float(value["baseline"]),
            version=int(value["version"]),
            seq=int(value["seq"]),
        )


@dataclass(frozen=True, slots=True)
class Opened:
    """What an opening did: the incident it opened (``earlier`` are the ticket ids of the
    window that join with it, the opening ticket not included) or joined, or None."""

    incident: Incident | None
    opened: bool = False
    earlier: tuple[str, ...] = ()


class IncidentBook:
    def __init__(
        self,
        spec: IncidentsSpec | None,
        incidents: MutableMapping[str, dict[str, Any]],
        openings: MutableMapping[str, list[list[Any]]],
    ) -> None:
        self.spec = spec
        self.incidents = incidents  # category -> {"k": int, "open": Incident.encode() | None}
        self.openings = openings  # "{category}\x1f{bucket}" -> [[at, customer_id, ticket_id]]
        self._bucket = bucket_ms(spec) if spec is not None else 1
        # The spike factor as the decimal it was written as (1.5, not a binary approximation),
        # read once: the test below compares integers, exactly.
        self._factor = Fraction(repr(spec.factor)) if spec is not None else Fraction(0)
        # Close instants of the open incidents, by category (a handful: one per category).
        self._closing: dict[str, Millis] = {}
        if spec is not None:
            for category, state in list(self.incidents.items()):
                if state.get("open") is not None:
                    self._closing[category] = self._close_at(Incident.decode(state["open"]))

    def _close_at(self, incident: Incident) -> Millis:
        assert self.spec is not None
        return incident.latest_at + self.spec.window_ms

    # -- openings ---------------------------------------------------------------------------

    def opening(self, category: str, at: Millis, customer_id: str, ticket_id: str) -> Opened:
        """A ticket of ``category`` opened at ``at``: record it, join the open incident or
        open one if the spike is there."""
        spec = self.spec
        if spec is None or category == OTHER_CATEGORY:
            return Opened(None)
        self._record(category, at, customer_id, ticket_id)
        state = self.incidents.get(category, {"k": 0, "open": None, "low": None})
        if state.get("open") is not None:
            incident = Incident.decode(state["open"])
            customers = incident.customers
            if customer_id not in customers:
                customers = tuple(sorted((*customers, customer_id)))
            incident = replace(
                incident,
                latest_at=at,
                tickets=incident.tickets + 1,
                customers=customers,
                version=incident.version + 1,
            )
            self.incidents[category] = {**state, "open": incident.encode()}
            self._closing[category] = self._close_at(incident)
            return Opened(incident)

        recent = self._between(category, at - spec.window_ms, at)
        customers = tuple(sorted({customer for _, customer, _ in recent}))
        n = len(customers)
        count = self._count(category, at - spec.window_ms - spec.baseline_ms, at - spec.window_ms)
        factor = self._factor
        if n < spec.min_customers or (
            n * spec.baseline_ms * factor.denominator < factor.numerator * count * spec.window_ms
        ):
            return Opened(None)
        k = int(state.get("k", 0)) + 1
        incident = Incident(
            incident_id=f"{category}#{k}",
            category=category,
            opened_at=at,
            latest_at=at,
            tickets=len(recent),
            customers=customers,
            baseline=count * spec.window_ms / spec.baseline_ms,
        )
        self.incidents[category] = {**state, "k": k, "open": incident.encode()}
        self._closing[category] = self._close_at(incident)
        earlier = tuple(t for _, _, t in recent if t != ticket_id)
        return Opened(incident, opened=True, earlier=earlier)

    def bump_seq(self, incident: Incident) -> Incident:
        """Number one more incident-level event and store it."""
        incident = replace(incident, seq=incident.seq + 1)
        state = self.incidents[incident.category]
        if state.get("open") is not None:
            self.incidents[incident.category] = {**state, "open": incident.encode()}
        return incident

    # -- time -------------------------------------------------------------------------------

    def next_timer(self) -> Millis | None:
        return min(self._closing.values()) if self._closing else None

    def due(self, limit: Millis) -> list[Incident]:
        """Close every incident whose instant is at or before ``limit``, in instant order
        (then category). Returned with ``closed_at`` set and one more version and seq."""
        fired = sorted((at, c) for c, at in self._closing.items() if at <= limit)
        closed: list[Incident] = []
        for at, category in fired:
            del self._closing[category]
            state = self.incidents[category]
            incident = Incident.decode(state["open"])
            incident = replace(
                incident, closed_at=at, version=incident.version + 1, seq=incident.seq + 1
            )
            self.incidents[category] = {**state, "open": None}
            closed.append(incident)
        return closed

    # -- the openings log -------------------------------------------------------------------

    def _key(self, category: str, bucket: int) -> str:
        return f"{category}\x1f{bucket}"

    def _record(self, category: str, at: Millis, customer_id: str, ticket_id: str) -> None:
        assert self.spec is not None
        size = self._bucket
        bucket = at // size
        key = self._key(category, bucket)
        self.openings[key] = [*self.openings.get(key, []), [at, customer_id, ticket_id]]
        # Forget the buckets no later opening can look at (before t - window - baseline).
        state = self.incidents.get(category, {"k": 0, "open": None, "low": None})
        low = state.get("low")
        oldest = (at - self.spec.window_ms - self.spec.baseline_ms) // size
        if low is None:
            low = bucket
        while low < oldest:
            self.openings.pop(self._key(category, low), None)
            low += 1
        self.incidents[category] = {**state, "low": low}

    def _entries(self, category: str, start: Millis, end: Millis) -> list[list[Any]]:
        """Openings of ``category`` in the buckets that meet (start, end]."""
        size = self._bucket
        out: list[list[Any]] = []
        for bucket in range((start + 1) // size, end // size + 1):
            out.extend(self.openings.get(self._key(category, bucket), ()))
        return out

    def _between(self, category: str, start: Millis, end: Millis) -> list[tuple[Millis, str, str]]:
        """(at, customer, ticket) of the openings of ``category`` in (start, end], in order."""
        return [
            (int(at), str(customer), str(ticket))
            for at, customer, ticket in self._entries(category, start, end)
            if start < at <= end
        ]

    def _count(self, category: str, start: Millis, end: Millis) -> int:
        """How many openings of ``category`` fall in (start, end]: whole buckets by their
        length, the two at the boundaries entry by entry."""
        size = self._bucket
        first, last = (start + 1) // size, end // size
        total = 0
        for bucket in range(first, last + 1):
            entries = self.openings.get(self._key(category, bucket), ())
            if first < bucket < last:
                total += len(entries)
            else:
                total += sum(1 for at, _, _ in entries if start < at <= end)
        return total

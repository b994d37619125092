"""Honest first-response promises (CONTRACT §7 "Honest promises", docs/PROMISES.md).

Every ticket whose SLA policy has a ``first_response`` target gets a promise when it opens: an
estimate E of how long its first answer will take, and ``promised_by = due(opened_at, E)`` on
the policy's calendar. E is the nearest-rank ``percentile`` of the business time of the latest
``window`` first responses of the same channel and policy that were fulfilled (met or
breached) before the opening instant; with fewer than ``min_samples`` of them it is the
policy's target. The promise is kept when the first public reply comes at or before
``promised_by``, broken when it comes later or when ``promised_by`` passes without one.

This module is pure: :func:`estimate` and :func:`remember` compute on plain values, and
``PromiseBook`` keeps the two mappings a runner hands in (the history per channel and policy,
and the promises still pending, by ticket) plus a ``TimerQueue`` of the pending promises'
instants, rebuilt from the pending mapping when the book is built (a restarted worker gets its
timers back from its table, as ``SlaBook`` does).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from typing import Final

from processors.calendar import BusinessCalendar
from processors.model import Millis
from processors.rules import PromisesSpec, Rules
from processors.sla import FIRST_RESPONSE
from processors.timers import TimerQueue

__all__ = [
    "HISTORY",
    "TARGET",
    "Estimate",
    "Promise",
    "PromiseBook",
    "estimate",
    "history_key",
    "nearest_rank",
    "remember",
]

HISTORY: Final = "history"
TARGET: Final = "target"

Sample = tuple[Millis, str, int]
"""One fulfilled first response: (fulfilled_at, ticket_id, business milliseconds)."""


def history_key(channel: str, policy: str) -> str:
    return f"{channel}\x1f{policy}"


@functools.lru_cache(maxsize=4096)
def nearest_rank(percentile: float, n: int) -> int:
    """The nearest rank of ``percentile`` among ``n`` ascending values: ceil(p / 100 x n),
    computed exactly (80 of 5 is rank 4, not 4.000000000000001 -> 5), at least 1. Cached:
    the exact fraction costs microseconds, every opening and first response asks, and the
    pairs are few (the rules' percentiles, windows of at most a few hundred samples)."""
    return max(1, ceil(Fraction(repr(float(percentile))) * n / 100))


@dataclass(frozen=True, slots=True)
class Estimate:
    """E in milliseconds, where it came from (``history`` or ``target``) and how many
    fulfilled first responses the history held."""

    estimate_ms: int
    basis: str
    samples: int


def estimate(
    history: Sequence[Sample], opened_at: Millis, spec: PromisesSpec, target_ms: int
) -> Estimate:
    """The estimate for a ticket opened at ``opened_at``: ``history`` is sorted by
    (fulfilled_at, ticket_id); only samples fulfilled strictly before ``opened_at`` count,
    the latest ``window`` of them."""
    cut = bisect.bisect_left(history, opened_at, key=lambda s: s[0])
    usable = history[max(0, cut - spec.window) : cut]
    if len(usable) < spec.min_samples:
        return Estimate(target_ms, TARGET, len(usable))
    values = sorted(s[2] for s in usable)
    return Estimate(values[nearest_rank(spec.percentile, len(values)) - 1], HISTORY, len(values))


def remember(history: Sequence[Sample], sample: Sample, window: int) -> list[Sample]:
    """``history`` with ``sample`` in its place, trimmed to what a later opening can use: the
    latest ``window`` samples before the newest instant, and every sample at that instant (an
    opening at the same instant does not count them, a later one does)."""
    kept = list(history)
    bisect.insort(kept, sample)
    newest = kept[-1][0]
    at_newest = len(kept) - bisect.bisect_left(kept, newest, key=lambda s: s[0])
    return kept[-(window + at_newest) :]


@dataclass(frozen=True, slots=True)
class Promise:
    promised_by: Millis
    estimate_ms: int
    basis: str
    samples: int


class PromiseBook:
    """The promises of every ticket: history per (channel, policy), pending promises by ticket
    (``ticket_id -> promised_by``) and their timers."""

    def __init__(
        self,
        rules: Rules,
        history: MutableMapping[str, list[Sample]],
        pending: MutableMapping[str, Millis],
    ) -> None:
        self.spec = rules.promises
        calendars = {
            name: BusinessCalendar.from_spec(spec) for name, spec in rules.calendars.items()
        }
        # Only policies with a first_response target promise anything.
        self._terms = {
            p.name: (calendars[p.calendar], p.targets[FIRST_RESPONSE])
            for p in rules.sla_policies
            if FIRST_RESPONSE in p.targets
        }
        self.history = history
        self.pending = pending
        self.timers = TimerQueue()
        if self.spec is not None:
            for ticket_id, promised_by in self.pending.items():
                self.timers.schedule(ticket_id, int(promised_by))

    def promise(self, ticket_id: str, channel: str, policy: str, at: Millis) -> Promise | None:
        """The promise of a ticket opened at ``at``, or None (no ``promises`` in the rules, or
        a policy without a first_response target)."""
        if self.spec is None or policy not in self._terms:
            return None
        calendar, target_ms = self._terms[policy]
        stored = self.history.get(history_key(channel, policy), [])
        found = estimate(_samples(stored), at, self.spec, target_ms)
        promised_by = calendar.due(at, found.estimate_ms)
        self.pending[ticket_id] = promised_by
        self.timers.schedule(ticket_id, promised_by)
        return Promise(promised_by, found.estimate_ms, found.basis, found.samples)

    def first_response_fulfilled(
        self, channel: str, policy: str, ticket_id: str, at: Millis, business_ms: int
    ) -> None:
        """A first_response cycle was fulfilled (met or breached): one more sample."""
        if self.spec is None:
            return
        key = history_key(channel, policy)
        stored = _samples(self.history.get(key, []))
        self.history[key] = remember(stored, (at, ticket_id, business_ms), self.spec.window)

    def next_estimate(self, channel: str, policy: str) -> int | None:
        """The estimate in milliseconds the next promise of ``channel`` and ``policy`` would
        use (one made after every first response fulfilled so far), or None when that
        channel and policy promise nothing (CONTRACT §6
        ``supportstream_first_response_estimate_seconds``)."""
        if self.spec is None or policy not in self._terms:
            return None
        stored = _samples(self.history.get(history_key(channel, policy), []))
        after = stored[-1][0] + 1 if stored else 0
        return estimate(stored, after, self.spec, self._terms[policy][1]).estimate_ms

    def first_reply(self, ticket_id: str, at: Millis) -> tuple[str, Millis] | None:
        """The ticket's first public reply at ``at``: ``(outcome, promised_by)`` of its pending
        promise (``kept`` at or before promised_by, else ``broken``), or None."""
        promised_by = self.pending.get(ticket_id)
        if promised_by is None:
            return None
        del self.pending[ticket_id]
        self.timers.cancel(ticket_id)
        return ("kept" if at <= promised_by else "broken"), int(promised_by)

    def next_timer(self) -> Millis | None:
        return self.timers.peek()

    def due(self, limit: Millis) -> list[tuple[Millis, str]]:
        """Promises whose instant is at or before ``limit`` with no reply: broken now."""
        fired = self.timers.pop_due(limit)
        for _, ticket_id in fired:
            del self.pending[ticket_id]
        return fired


def _samples(stored: Sequence[Sequence[object]]) -> list[Sample]:
    """The samples of a history as stored: kept in memory they are already ``Sample`` tuples
    (``remember`` makes them), read back from a table they are JSON lists."""
    return [s if type(s) is tuple else _sample(s) for s in stored]


def _sample(stored: Sequence[object]) -> Sample:
    """A sample as a table stores it (a JSON list) or as kept in memory (a tuple)."""
    at, ticket_id, business_ms = stored
    return int(at), str(ticket_id), int(business_ms)  # type: ignore[call-overload]

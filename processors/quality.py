"""Agents and quality (CONTRACT §7): who a ticket's work belongs to, and what a review scores.

Pure functions over plain values, used by the desk:

* ``most_active`` — a ticket's most active agent: the most public replies on it, a tie going to
  the one who replied last. The desk keeps per ticket a ``ReplyTally``: per agent, the count of
  their public replies and the ticket's event sequence number at their latest one (sequence
  numbers grow with every event of the ticket, so "later" is exact even within a millisecond).
* ``score_review`` — a review's quality: 100 x sum(weight x score) / sum(weight) over the
  criteria scored (null: not applicable, left out), rounded half up to one decimal; 0 when a
  critical criterion scored below 0.5; ``None`` when nothing was scored. Scores are taken at
  their decimal value (``0.1`` is one tenth, not the nearest binary float) so the rounding is
  the one a person doing the sum by hand gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from processors.rules import QaRules

ReplyTally = tuple[tuple[str, int, int], ...]
"""Per agent who replied publicly on a ticket: ``(agent_id, public replies, seq of the
latest)``, in the order they first replied."""

CRITICAL_BELOW = Fraction(1, 2)


def tally_reply(tally: ReplyTally, agent_id: str, seq: int) -> ReplyTally:
    """The tally after ``agent_id``'s public reply, the ticket's event number ``seq``."""
    for i, (agent, count, _) in enumerate(tally):
        if agent == agent_id:
            return (*tally[:i], (agent, count + 1, seq), *tally[i + 1 :])
    return (*tally, (agent_id, 1, seq))


def most_active(tally: ReplyTally) -> str:
    """The agent with the most public replies; a tie goes to the one who replied last; ``""``
    when nobody replied publicly."""
    best = ""
    best_key = (0, -1)
    for agent, count, last in tally:
        if (count, last) > best_key:
            best, best_key = agent, (count, last)
    return best


@dataclass(frozen=True, slots=True)
class Verdict:
    """A scored review: ``quality`` in 0..100 (one decimal) or ``None`` when every criterion
    was N/A; ``critical_failed`` when a critical criterion scored below 0.5."""

    quality: float | None
    critical_failed: bool


def unknown_criteria(qa: QaRules, scores: tuple[tuple[str, float | None], ...]) -> list[str]:
    """The criteria a review names that the scorecard does not list, in the review's order."""
    return [name for name, _ in scores if qa.criterion(name) is None]


def score_review(qa: QaRules, scores: tuple[tuple[str, float | None], ...]) -> Verdict:
    """The quality of a review whose criteria are all on the scorecard."""
    total = Fraction(0)
    weights = Fraction(0)
    critical_failed = False
    for name, score in scores:
        criterion = qa.criterion(name)
        if criterion is None:
            raise ValueError(f"criterion {name!r} is not on the scorecard")
        if score is None:
            continue
        exact = Fraction(Decimal(repr(score)))
        weight = Fraction(Decimal(repr(criterion.weight)))
        total += weight * exact
        weights += weight
        if criterion.critical and exact < CRITICAL_BELOW:
            critical_failed = True
    if weights == 0:
        return Verdict(None, critical_failed)
    if critical_failed:
        return Verdict(0.0, True)
    value = 100 * total / weights
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
    return Verdict(float(rounded), False)

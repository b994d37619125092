"""Classification of the contact that opens a ticket (CONTRACT §1 Classification, §2).

``Classifier`` is built once from ``Rules``: keywords are case-folded and regexes compiled at
construction, so ``classify`` on the hot path only folds the contact's text and looks things
up. The decision order is the contract's and each step may use only what came before it:
language (CONTRACT §7, ``processors.language``), category and kind (from the text and
channel), then priority, then queue, then SLA policy; the ``skills`` entries (which may use all
of these) then give the ticket's required and preferred skills.
Pure: no I/O, no clock; the same contact and tier always give the same ``Classification``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from processors.language import LanguageDetector
from processors.rules import (
    OTHER_CATEGORY,
    QUESTION_KIND,
    Condition,
    Rules,
    SlaPolicy,
    TextRule,
)

__all__ = ["Classification", "Classifier"]


@dataclass(frozen=True, slots=True)
class Classification:
    """What the opening contact decided, once, for the ticket's whole life."""

    category: str
    kind: str
    priority: str
    queue: str
    sla_policy: SlaPolicy | None
    language: str = "und"
    required_skills: frozenset[str] = frozenset()
    preferred_skills: frozenset[str] = frozenset()

    @property
    def sla_policy_name(self) -> str:
        """The policy's name, or ``""`` for a ticket without SLA (the ``tickets`` column)."""
        return self.sla_policy.name if self.sla_policy is not None else ""


@dataclass(frozen=True, slots=True)
class _CompiledText:
    """A ``TextRule`` ready for matching: keywords case-folded, the regex compiled."""

    name: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str] | None
    channels: frozenset[str] | None

    @classmethod
    def of(cls, rule: TextRule) -> _CompiledText:
        # casefold, not lower: it is the caseless comparison Unicode defines (ß/SS and the
        # like). It does not unify "ё" and "е"; the rules file lists both when it means both.
        return cls(
            name=rule.name,
            keywords=tuple(keyword.casefold() for keyword in rule.keywords),
            pattern=re.compile(rule.regex) if rule.regex is not None else None,
            channels=rule.channels,
        )

    def matches(self, channel: str, text: str, folded: str) -> bool:
        if self.channels is not None and channel not in self.channels:
            return False
        if any(keyword in folded for keyword in self.keywords):
            return True
        # The regex sees the text as written: its own flags ((?i) ...) decide case.
        return self.pattern is not None and self.pattern.search(text) is not None


class Classifier:
    """Decides category, kind, priority, queue and SLA policy of a new ticket."""

    def __init__(self, rules: Rules) -> None:
        self._rules = rules
        self._categories = tuple(_CompiledText.of(rule) for rule in rules.categories)
        # Complaint is tried first because it wins when both kinds match (CONTRACT §2).
        self._kinds = tuple(
            _CompiledText.of(rules.kinds[kind])
            for kind in ("complaint", "thanks")
            if kind in rules.kinds
        )
        self._priorities = tuple((rule.when, rule.priority) for rule in rules.priorities)
        # The default queue is the fallback wherever it stands in the list, so it is left out
        # of the ordered search rather than skipped on every call.
        self._queues: tuple[tuple[Condition, str], ...] = tuple(
            (queue.when, queue.name) for queue in rules.queues if not queue.default
        )
        self._policies = tuple((policy.when, policy) for policy in rules.sla_policies)
        self._skills = rules.skills
        self.languages = LanguageDetector(rules.languages)

    @property
    def rules(self) -> Rules:
        return self._rules

    def classify(
        self, channel: str, subject: str, body: str, tier: str, *, masked: str | None = None
    ) -> Classification:
        """Classify the contact that opens a ticket, for a customer of ``tier`` at that moment.

        The text matched is ``subject + "\\n" + body`` (the subject is empty for channels
        without one). The language is detected in ``masked``, the same text with personal
        data masked (CONTRACT §7), when given, else in the text itself.
        """
        text = f"{subject}\n{body}"
        folded = text.casefold()
        language = self.languages.detect(text if masked is None else masked)
        category = self._first_text(self._categories, channel, text, folded, OTHER_CATEGORY)
        kind = self._first_text(self._kinds, channel, text, folded, QUESTION_KIND)
        facts: dict[str, str] = {
            "channel": channel,
            "language": language,
            "category": category,
            "kind": kind,
            "tier": tier,
        }
        facts["priority"] = _first(self._priorities, facts, self._rules.default_priority)
        facts["queue"] = _first(self._queues, facts, self._rules.default_queue)
        policy = next((p for when, p in self._policies if when.matches(facts)), None)
        required: frozenset[str] = frozenset()
        preferred: frozenset[str] = frozenset()
        for entry in self._skills:
            if entry.when.matches(facts):
                required |= entry.require
                preferred |= entry.prefer
        return Classification(
            category,
            kind,
            facts["priority"],
            facts["queue"],
            policy,
            language,
            required,
            preferred,
        )

    @staticmethod
    def _first_text(
        rules: tuple[_CompiledText, ...], channel: str, text: str, folded: str, fallback: str
    ) -> str:
        for rule in rules:
            if rule.matches(channel, text, folded):
                return rule.name
        return fallback


def _first(
    entries: tuple[tuple[Condition, str], ...], facts: Mapping[str, str], fallback: str
) -> str:
    """The value of the first entry whose ``when`` matches, else ``fallback``."""
    for when, value in entries:
        if when.matches(facts):
            return value
    return fallback

"""The rules file (CONTRACT §2): reading, validating and the typed configuration it becomes.

``load_rules`` reads a YAML file and ``rules_from_mapping`` validates an already parsed mapping;
both return a frozen ``Rules`` or raise ``RulesError`` naming the file, the path inside it and
what is wrong (``rules.yaml: sla_policies[1].targets.first_response: "1x" is not a duration
(use 45s, 15m, 2h, 3d or 1h30m)``). Everything is checked before anything runs: a typo in a key
or a value must be refused here, never discovered as a ticket routed to the wrong queue.

Loading is the only I/O in this module; the result is plain data. Regexes are validated here but
compiled for matching by ``processors.classify`` (compile once, at start).

``docs/RULES.md`` is the user-facing reference for every key, default and check made here.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import yaml

from processors import sla
from processors.durations import parse_duration
from processors.language import DEFAULT_LANGUAGES, SUPPORTED_LANGUAGES, UNDETERMINED
from processors.model import CHANNELS, TIERS

__all__ = [
    "ASSIGNMENT_MODES",
    "CONDITION_KEYS",
    "DEFAULT_REOPEN_WITHIN_MS",
    "KINDS",
    "METRICS",
    "OTHER_CATEGORY",
    "QUESTION_KIND",
    "WEEKDAYS",
    "AgentSpec",
    "AssignmentMode",
    "CalendarSpec",
    "CategoryRule",
    "Condition",
    "IncidentsSpec",
    "KindRule",
    "PriorityRule",
    "PromisesSpec",
    "QaCriterion",
    "QaRules",
    "QueueRule",
    "Rules",
    "RulesError",
    "SkillRule",
    "SlaPolicy",
    "TextRule",
    "check_config",
    "config_warnings",
    "load_rules",
    "rules_from_mapping",
]

WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names of a calendar's ``week``; the index is ``datetime.date.weekday()``."""

KINDS: Final[tuple[str, ...]] = ("complaint", "thanks", "question")
"""Every kind a contact can have; ``question`` is what no ``kinds`` entry matched."""

METRICS: Final[tuple[str, ...]] = sla.METRICS  # the SLA engine's metrics, in its order

AssignmentMode = Literal["least_loaded", "round_robin", "none"]
ASSIGNMENT_MODES: Final[tuple[str, ...]] = ("least_loaded", "round_robin", "none")

CONDITION_KEYS: Final[tuple[str, ...]] = (
    "channel",
    "language",
    "category",
    "kind",
    "priority",
    "tier",
    "queue",
)
"""Keys of a ``when``, in the order classification decides them (CONTRACT §1)."""

OTHER_CATEGORY: Final = "other"
QUESTION_KIND: Final = "question"
DEFAULT_REOPEN_WITHIN_MS: Final = 72 * 3_600_000
DEFAULT_PRIORITY: Final = "P3"
DEFAULT_TIMEZONE: Final = "UTC"
MINUTES_PER_DAY: Final = 1440

_DURATION_HINT: Final = "use 45s, 15m, 2h, 3d or 1h30m"
_MATCHES_NOTHING: Final = "it would match nothing (leave the key out to match everything)"


# --------------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A ``when``: for each key it names, the values allowed. All keys given must match; a key
    not given matches anything, so ``Condition()`` (``when: {}``) matches every ticket.

    ``clauses`` is kept in ``CONDITION_KEYS`` order so equal conditions compare equal.
    """

    clauses: tuple[tuple[str, frozenset[str]], ...] = ()

    def allowed(self, key: str) -> frozenset[str] | None:
        """The values allowed for ``key``, or ``None`` when the condition does not restrict it."""
        for name, values in self.clauses:
            if name == key:
                return values
        return None

    def matches(self, facts: Mapping[str, str]) -> bool:
        """Whether every clause allows the ticket's value. A key missing from ``facts`` (not
        decided yet) fails its clause; validation keeps that from happening."""
        return all(facts.get(key) in values for key, values in self.clauses)


@dataclass(frozen=True, slots=True)
class TextRule:
    """A category, or one of the two kinds: matched against subject + newline + body.

    ``keywords`` are case-insensitive substrings, ``regex`` a Python pattern searched as written;
    the rule matches if either does. ``channels`` limits the rule to contacts on those channels
    (``None``: every channel).
    """

    name: str
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    channels: frozenset[str] | None = None


CategoryRule: TypeAlias = TextRule
KindRule: TypeAlias = TextRule


@dataclass(frozen=True, slots=True)
class PriorityRule:
    when: Condition
    priority: str


@dataclass(frozen=True, slots=True)
class QueueRule:
    """A routing entry. The one with ``default`` set is used only when no other queue matches,
    wherever it stands; its ``when`` (if any) is validated but never consulted."""

    name: str
    when: Condition = field(default_factory=Condition)
    default: bool = False


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent taking automatic assignments from ``queues``; ``capacity`` caps the open tickets
    assigned to them (``None``: no cap)."""

    id: str
    queues: tuple[str, ...]
    capacity: int | None = None
    skills: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SkillRule:
    """A ``skills`` entry (CONTRACT §7): a ticket matching ``when`` at opening needs every skill
    of ``require`` from its agent and would rather have those of ``prefer``."""

    when: Condition
    require: frozenset[str] = frozenset()
    prefer: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    """Business hours. ``week`` has all seven weekdays (0 = Monday .. 6 = Sunday), each a sorted
    tuple of disjoint ``(start_minute, end_minute)`` intervals of local time with
    ``0 <= start < end <= 1440``; a closed day is ``()``. Touching intervals are joined.
    ``holidays`` are local dates closed all day."""

    name: str
    timezone: str
    week: dict[int, tuple[tuple[int, int], ...]]
    holidays: frozenset[dt.date] = frozenset()


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """An SLA policy. ``targets`` maps each metric the policy sets (any non-empty subset of
    ``METRICS``) to its business-time target in milliseconds; metrics it does not set are not
    measured for its tickets."""

    name: str
    when: Condition
    calendar: str
    targets: dict[str, int]
    warn_at: float = 0.8


@dataclass(frozen=True, slots=True)
class PromisesSpec:
    """``promises`` (CONTRACT §7, Honest promises): the estimate is the nearest-rank
    ``percentile`` of the latest ``window`` fulfilled first responses of a ticket's channel and
    policy, or the policy's first_response target while fewer than ``min_samples`` exist."""

    percentile: float = 80
    window: int = 100
    min_samples: int = 20


@dataclass(frozen=True, slots=True)
class IncidentsSpec:
    """``incidents`` (CONTRACT §7, Incidents): a category opens an incident when at least
    ``min_customers`` distinct customers, and at least ``factor`` times the ``baseline``
    rate, opened tickets of it within ``window``. Durations in milliseconds."""

    window_ms: int = 3_600_000
    min_customers: int = 5
    factor: float = 3
    baseline_ms: int = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class QaCriterion:
    """One line of the QA scorecard (CONTRACT §7): a review scores it 0..1 or null (N/A)."""

    name: str
    weight: float
    critical: bool = False


DEFAULT_QA_SAMPLE_PER_AGENT_WEEK: Final = 5


@dataclass(frozen=True, slots=True)
class QaRules:
    """The ``qa`` section: how many unflagged tickets per agent and week go to review, and the
    scorecard reviews are scored on. Without the section the scorecard is empty, so every
    ``qa`` record names an unknown criterion (a dead letter)."""

    sample_per_agent_week: int = DEFAULT_QA_SAMPLE_PER_AGENT_WEEK
    scorecard: tuple[QaCriterion, ...] = ()

    def criterion(self, name: str) -> QaCriterion | None:
        for criterion in self.scorecard:
            if criterion.name == name:
                return criterion
        return None


@dataclass(frozen=True, slots=True)
class Rules:
    """The whole rules file, validated. Entries keep the file's order; dicts are not to be
    mutated (the dataclass is frozen, its dicts are shared read-only)."""

    version: int
    reporting_timezone: str
    reopen_within_ms: int
    calendars: dict[str, CalendarSpec]
    categories: tuple[TextRule, ...]
    kinds: dict[str, TextRule]
    priorities: tuple[PriorityRule, ...]
    default_priority: str
    queues: tuple[QueueRule, ...]
    default_queue: str
    agents: tuple[AgentSpec, ...]
    assignment: AssignmentMode
    sla_policies: tuple[SlaPolicy, ...]
    promises: PromisesSpec | None = None
    incidents: IncidentsSpec | None = None
    qa: QaRules = QaRules()
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    skills: tuple[SkillRule, ...] = ()

    @property
    def priority_names(self) -> tuple[str, ...]:
        """Every priority a ticket can get, in the order they first appear in the file."""
        names = [rule.priority for rule in self.priorities] + [self.default_priority]
        return tuple(dict.fromkeys(names))

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(queue.name for queue in self.queues)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class RulesError(Exception):
    """A rules file that cannot be used. ``path`` is the place inside the file in dotted keys
    and ``[index]`` (empty for the file as a whole); ``line`` and ``column`` (1-based) are set
    for YAML syntax errors."""

    def __init__(
        self,
        file: str,
        path: str,
        reason: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f": line {self.line}, column {self.column}"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.reason}"


class _Invalid(Exception):
    """Raised by the validators below without the file name, which ``rules_from_mapping``
    adds; keeps every helper's signature free of it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys in a mapping. Plain YAML keeps the last one
    silently, so two ``mon:`` lines in a week would lose a day's hours without a word."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys brought in by `<<:` may legitimately be overridden
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key; the base constructor reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {_show(key)} (first at line {first.start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_rules(path: str | os.PathLike[str]) -> Rules:
    """Read and validate the rules file at ``path``. The file is named in errors as given."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8-sig") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise RulesError(file, "", "no such file") from None
    except IsADirectoryError:
        raise RulesError(file, "", "is a directory, not a rules file") from None
    except UnicodeDecodeError as exc:
        raise RulesError(file, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise RulesError(file, "", f"cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.problem:
            started = ""
            if exc.context_mark is not None and exc.context_mark is not mark:
                started = f" started at line {exc.context_mark.line + 1}"
            problem = f"{problem} ({exc.context}{started})"
        if mark is None:
            raise RulesError(file, "", f"not valid YAML: {problem}") from None
        raise RulesError(
            file, "", f"not valid YAML: {problem}", line=mark.line + 1, column=mark.column + 1
        ) from None
    except yaml.YAMLError as exc:
        raise RulesError(file, "", f"not valid YAML: {exc}") from None
    return rules_from_mapping(data, file)


def rules_from_mapping(data: Any, source_name: str = "<rules>") -> Rules:
    """Validate ``data`` (the parsed YAML document) and build ``Rules``; errors name
    ``source_name`` as the file."""
    try:
        return _build(data)
    except _Invalid as exc:
        raise RulesError(source_name, exc.path, exc.reason) from None


def check_config(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``supportstream check-config``: ``(0, summary)`` for a usable file, ``(2, error)``
    otherwise (exit code 2 is the CLI's "refused rules file", CONTRACT §5)."""
    try:
        rules = load_rules(path)
    except RulesError as exc:
        return 2, str(exc)
    parts = [
        _count(len(rules.categories), "category", "categories"),
        _count(len(rules.kinds), "kind rule", "kind rules"),
        _count(len(rules.priorities), "priority rule", "priority rules"),
        _count(len(rules.queues), "queue", "queues"),
        _count(len(rules.agents), "agent", "agents") + f" ({rules.assignment})",
        _count(len(rules.sla_policies), "SLA policy", "SLA policies"),
        _count(len(rules.calendars), "calendar", "calendars"),
    ]
    if rules.skills:
        parts.append(_count(len(rules.skills), "skills rule", "skills rules"))
    if rules.languages != DEFAULT_LANGUAGES:
        parts.append("languages " + "/".join(rules.languages))
    return 0, f"{os.fspath(path)}: OK — " + ", ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# --------------------------------------------------------------------------------------------
# Validation: the file as a whole
# --------------------------------------------------------------------------------------------

_TOP_KEYS: Final = (
    "version",
    "reporting_timezone",
    "reopen_within",
    "calendars",
    "categories",
    "kinds",
    "priorities",
    "default_priority",
    "queues",
    "agents",
    "assignment",
    "sla_policies",
    "promises",
    "incidents",
    "qa",
    "languages",
    "skills",
)

# What each kind of `when` may use: only what classification decides before it (CONTRACT §1).
_WHEN_KEYS_PRIORITY: Final = ("channel", "language", "category", "kind", "tier")
_WHEN_KEYS_QUEUE: Final = ("channel", "language", "category", "kind", "priority", "tier")
_WHEN_KEYS_POLICY: Final = CONDITION_KEYS


def _build(data: Any) -> Rules:
    if data is None:
        raise _Invalid("", "the file is empty (it needs at least `version: 1` and `queues`)")
    top = _mapping(data, "", what="the top level of a rules file")
    _only_keys(top, "", _TOP_KEYS)

    version = top.get("version")
    if version is None:
        raise _Invalid("version", "is required: write `version: 1`")
    if isinstance(version, bool) or version != 1:
        raise _Invalid("version", f"must be 1, got {_show(version)}")

    reporting_timezone = DEFAULT_TIMEZONE
    if top.get("reporting_timezone") is not None:
        reporting_timezone = _timezone(top["reporting_timezone"], "reporting_timezone")

    reopen_within_ms = DEFAULT_REOPEN_WITHIN_MS
    if top.get("reopen_within") is not None:
        reopen_within_ms = _duration(top["reopen_within"], "reopen_within")

    calendars = _calendars(top.get("calendars"))
    categories = _categories(top.get("categories"))
    kinds = _kinds(top.get("kinds"))
    # The values each `when` key may name, in the order error messages list them.
    languages = _languages(top.get("languages"))
    facts: dict[str, tuple[str, ...]] = {
        "channel": CHANNELS,
        "language": (*languages, UNDETERMINED),
        "tier": TIERS,
        "kind": KINDS,
        "category": tuple(dict.fromkeys([c.name for c in categories] + [OTHER_CATEGORY])),
    }
    priorities = _priorities(top.get("priorities"), facts)
    default_priority = DEFAULT_PRIORITY
    if top.get("default_priority") is not None:
        default_priority = _name(top["default_priority"], "default_priority")
    facts["priority"] = tuple(dict.fromkeys([r.priority for r in priorities] + [default_priority]))

    queues, default_queue = _queues(top.get("queues"), facts)
    facts["queue"] = tuple(q.name for q in queues)

    agents = _agents(top.get("agents"), facts["queue"])
    assignment: AssignmentMode = "least_loaded"
    if top.get("assignment") is not None:
        assignment = _assignment(top["assignment"])

    sla_policies = _policies(top.get("sla_policies"), facts, calendars)
    skills = _skills(top.get("skills"), facts)

    return Rules(
        version=1,
        reporting_timezone=reporting_timezone,
        reopen_within_ms=reopen_within_ms,
        calendars=calendars,
        categories=categories,
        kinds=kinds,
        priorities=priorities,
        default_priority=default_priority,
        queues=queues,
        default_queue=default_queue,
        agents=agents,
        assignment=assignment,
        sla_policies=sla_policies,
        promises=_promises(top.get("promises")),
        incidents=_incidents(top.get("incidents")),
        qa=_qa(top.get("qa")),
        languages=languages,
        skills=skills,
    )


# --------------------------------------------------------------------------------------------
# Validation: sections
# --------------------------------------------------------------------------------------------


def _calendars(value: Any) -> dict[str, CalendarSpec]:
    if value is None:
        return {}
    section = _mapping(value, "calendars")
    calendars: dict[str, CalendarSpec] = {}
    for name, spec in section.items():
        path = _key_path("calendars", name)
        calendars[_name(name, path, what="calendar name")] = _calendar(name, spec, path)
    return calendars


def _calendar(name: str, value: Any, path: str) -> CalendarSpec:
    entry = _mapping(value, path)
    _only_keys(entry, path, ("timezone", "week", "holidays"))
    timezone = DEFAULT_TIMEZONE
    if entry.get("timezone") is not None:
        timezone = _timezone(entry["timezone"], f"{path}.timezone")

    week: dict[int, tuple[tuple[int, int], ...]] = {day: () for day in range(7)}
    week_path = f"{path}.week"
    days = _mapping(entry.get("week") or {}, week_path)
    for day_name, hours in days.items():
        day_path = _key_path(week_path, day_name)
        if day_name not in WEEKDAYS:
            raise _Invalid(
                day_path,
                f"{_show(day_name)} is not a day name (use {', '.join(WEEKDAYS)})"
                + _suggest(day_name, WEEKDAYS),
            )
        if hours is not None:  # `sat:` with nothing after it: closed, like a missing day
            week[WEEKDAYS.index(day_name)] = _day_hours(hours, day_path)
    if not any(week.values()):
        raise _Invalid(
            week_path,
            "the calendar has no open hours at all, so no SLA time could ever pass "
            '(give at least one day, e.g. mon: ["09:00-18:00"])',
        )

    holidays: set[dt.date] = set()
    if entry.get("holidays") is not None:
        for item_path, item in _items(entry["holidays"], f"{path}.holidays"):
            holidays.add(_date(item, item_path))
    return CalendarSpec(name, timezone, week, frozenset(holidays))


_HHMM: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _day_hours(value: Any, path: str) -> tuple[tuple[int, int], ...]:
    intervals: list[tuple[int, int, str]] = []
    for item_path, item in _items(value, path):
        text = _string(item, item_path)
        start_text, sep, end_text = text.partition("-")
        start = _minute(start_text.strip(), allow_24=False)
        end = _minute(end_text.strip(), allow_24=True)
        if not sep or start is None or end is None:
            raise _Invalid(
                item_path,
                f'{_show(text)} is not an interval of the day (write "HH:MM-HH:MM", '
                'e.g. "09:00-18:00"; the end may be "24:00")',
            )
        if start >= end:
            raise _Invalid(item_path, f"{_show(text)} ends before it starts (or is empty)")
        intervals.append((start, end, item_path))
    intervals.sort()
    joined: list[tuple[int, int]] = []
    for index, (start, end, item_path) in enumerate(intervals):
        # Sorted by start, any overlap shows up between neighbours.
        if index and start < intervals[index - 1][1]:
            before = intervals[index - 1]
            raise _Invalid(
                item_path, f"overlaps {_interval_text(before[0], before[1])} ({before[2]})"
            )
        # Touching intervals ("09:00-13:00", "13:00-18:00") are one stretch of open time;
        # joining them spares the SLA clock a zero-length gap.
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return tuple(joined)


def _minute(text: str, *, allow_24: bool) -> int | None:
    if allow_24 and text == "24:00":
        return MINUTES_PER_DAY
    match = _HHMM.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def _interval_text(start: int, end: int) -> str:
    return f'"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"'


def _date(value: Any, path: str) -> dt.date:
    # An unquoted 2026-01-01 arrives from YAML as a date already; a datetime is not a day.
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid(path, f"{_show(value)} is not a date (write YYYY-MM-DD, e.g. 2026-01-01)")


def _text_rule(value: Any, path: str, name: str, keys: tuple[str, ...]) -> TextRule:
    entry = _mapping(value, path)
    if "when" in entry:
        raise _Invalid(
            f"{path}.when",
            "categories and kinds take no `when`: they are decided first, from the text "
            "(use `channels` to limit an entry to some channels)",
        )
    _only_keys(entry, path, keys)
    keywords: list[str] = []
    if entry.get("keywords") is not None:
        for item_path, item in _items(entry["keywords"], f"{path}.keywords"):
            keyword = _string(item, item_path)
            if not keyword:
                raise _Invalid(item_path, "an empty keyword would match every text")
            keywords.append(keyword)
    regex: str | None = None
    if entry.get("regex") is not None:
        regex = _regex(entry["regex"], f"{path}.regex")
    if not keywords and regex is None:
        raise _Invalid(path, "needs `keywords` or `regex` (or both) to match the text against")
    channels: frozenset[str] | None = None
    if entry.get("channels") is not None:
        channels = frozenset(
            _one_of(item, item_path, CHANNELS, "channel")
            for item_path, item in _items(
                entry["channels"], f"{path}.channels", empty=_MATCHES_NOTHING
            )
        )
    return TextRule(name, tuple(keywords), regex, channels)


def _categories(value: Any) -> tuple[TextRule, ...]:
    if value is None:
        return ()
    rules: list[TextRule] = []
    first_at: dict[str, str] = {}
    for path, entry in _items(value, "categories"):
        mapping = _mapping(entry, path)
        name = _required_name(mapping, path)
        _unique(name, f"{path}.name", first_at, path)
        rules.append(_text_rule(mapping, path, name, ("name", "keywords", "regex", "channels")))
    return tuple(rules)


def _kinds(value: Any) -> dict[str, TextRule]:
    if value is None:
        return {}
    section = _mapping(value, "kinds")
    kinds: dict[str, TextRule] = {}
    for kind, entry in section.items():
        path = _key_path("kinds", kind)
        if kind not in ("complaint", "thanks"):
            raise _Invalid(
                path,
                f"unknown kind {_show(kind)}: only complaint and thanks are declared "
                f"(question is what neither matches){_suggest(kind, ('complaint', 'thanks'))}",
            )
        kinds[kind] = _text_rule(entry, path, kind, ("keywords", "regex", "channels"))
    return kinds


def _priorities(value: Any, facts: Mapping[str, tuple[str, ...]]) -> tuple[PriorityRule, ...]:
    if value is None:
        return ()
    rules: list[PriorityRule] = []
    for path, item in _items(value, "priorities"):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("when", "priority"))
        if entry.get("priority") is None:
            raise _Invalid(f"{path}.priority", "is required: the priority this entry gives")
        priority = _name(entry["priority"], f"{path}.priority")
        when = _condition(entry.get("when"), f"{path}.when", _WHEN_KEYS_PRIORITY, facts, "priority")
        rules.append(PriorityRule(when, priority))
    return tuple(rules)


def _queues(value: Any, facts: Mapping[str, tuple[str, ...]]) -> tuple[tuple[QueueRule, ...], str]:
    if value is None:
        raise _Invalid(
            "queues",
            "is required: list the queues, one of them marked `default: true` "
            "(e.g. queues: [{name: general, default: true}])",
        )
    queues: list[QueueRule] = []
    first_at: dict[str, str] = {}
    default_queue: str | None = None
    default_path = ""
    for path, item in _items(value, "queues", empty="declare at least the default queue"):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("name", "when", "default"))
        name = _required_name(entry, path)
        _unique(name, f"{path}.name", first_at, path)
        is_default = False
        if entry.get("default") is not None:
            is_default = _bool(entry["default"], f"{path}.default")
        if is_default:
            if default_queue is not None:
                raise _Invalid(
                    f"{path}.default",
                    f"only one queue may be the default; {default_path} "
                    f"({_show(default_queue)}) already is",
                )
            default_queue, default_path = name, path
        when = _condition(entry.get("when"), f"{path}.when", _WHEN_KEYS_QUEUE, facts, "queue")
        queues.append(QueueRule(name, when, is_default))
    if default_queue is None:
        raise _Invalid(
            "queues",
            "no queue is marked default: mark the one for contacts no other queue takes "
            "with `default: true`",
        )
    return tuple(queues), default_queue


def _agents(value: Any, queue_names: tuple[str, ...]) -> tuple[AgentSpec, ...]:
    if value is None:
        return ()
    agents: list[AgentSpec] = []
    first_at: dict[str, str] = {}
    for path, item in _items(value, "agents"):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("id", "queues", "capacity", "skills"))
        if entry.get("id") is None:
            raise _Invalid(f"{path}.id", "is required: the agent's id as agent records name it")
        agent_id = _name(entry["id"], f"{path}.id", what="agent id")
        _unique(agent_id, f"{path}.id", first_at, path, what="agent id")
        if entry.get("queues") is None:
            raise _Invalid(
                f"{path}.queues", "is required: the queues this agent takes tickets from"
            )
        queues: list[str] = []
        for item_path, queue in _items(
            entry["queues"], f"{path}.queues", empty="an agent needs at least one queue"
        ):
            name = _one_of(queue, item_path, queue_names, "declared queue")
            if name in queues:
                raise _Invalid(item_path, f"{_show(name)} is listed twice")
            queues.append(name)
        capacity: int | None = None
        if entry.get("capacity") is not None:
            capacity = _positive_int(entry["capacity"], f"{path}.capacity")
        skills = _skill_names(entry.get("skills"), f"{path}.skills")
        agents.append(AgentSpec(agent_id, tuple(queues), capacity, skills))
    return tuple(agents)


def _qa(value: Any) -> QaRules:
    """The ``qa`` section (CONTRACT §7): ``sample_per_agent_week`` and the ``scorecard``."""
    if value is None:
        return QaRules()
    section = _mapping(value, "qa")
    _only_keys(section, "qa", ("sample_per_agent_week", "scorecard"))
    sample = DEFAULT_QA_SAMPLE_PER_AGENT_WEEK
    if section.get("sample_per_agent_week") is not None:
        sample = _positive_int(section["sample_per_agent_week"], "qa.sample_per_agent_week")
    criteria: list[QaCriterion] = []
    first_at: dict[str, str] = {}
    for path, item in _items(
        section.get("scorecard", []), "qa.scorecard", empty="a scorecard needs a criterion"
    ):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("name", "weight", "critical"))
        name = _required_name(entry, path)
        _unique(name, f"{path}.name", first_at, path, what="criterion")
        weight = entry.get("weight")
        if weight is None:
            raise _Invalid(f"{path}.weight", "is required: a number above zero")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise _Invalid(f"{path}.weight", f"must be a number above zero, got {_show(weight)}")
        if weight != weight or weight == float("inf"):
            raise _Invalid(f"{path}.weight", f"must be a finite number, got {_show(weight)}")
        critical = False
        if entry.get("critical") is not None:
            critical = _bool(entry["critical"], f"{path}.critical")
        criteria.append(QaCriterion(name, float(weight), critical))
    return QaRules(sample, tuple(criteria))


def _languages(value: Any) -> tuple[str, ...]:
    """``languages`` (CONTRACT §7): ISO 639-1 codes the detector knows, each once."""
    if value is None:
        return DEFAULT_LANGUAGES
    codes: list[str] = []
    for path, item in _items(value, "languages", empty="list at least one language"):
        code = _string(item, path)
        if code not in SUPPORTED_LANGUAGES:
            raise _Invalid(
                path,
                f"{_show(code)} is not an ISO 639-1 language code the detector knows "
                f"(two lower-case letters, e.g. ru, en, de; `und` is what a ticket gets when "
                f"its text does not tell, it is not listed){_suggest(code, SUPPORTED_LANGUAGES)}",
            )
        if code in codes:
            raise _Invalid(path, f"{_show(code)} is listed twice")
        codes.append(code)
    return tuple(codes)


def _skill_names(value: Any, path: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    names: list[str] = []
    for item_path, item in _items(value, path):
        name = _name(item, item_path, what="skill name")
        if name in names:
            raise _Invalid(item_path, f"{_show(name)} is listed twice")
        names.append(name)
    return frozenset(names)


def _skills(value: Any, facts: Mapping[str, tuple[str, ...]]) -> tuple[SkillRule, ...]:
    """Top-level ``skills`` (CONTRACT §7): ``when`` (every key, ``queue`` included) and at least
    one of ``require`` and ``prefer``."""
    if value is None:
        return ()
    entries: list[SkillRule] = []
    for path, item in _items(value, "skills"):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("when", "require", "prefer"))
        when = _condition(entry.get("when"), f"{path}.when", CONDITION_KEYS, facts, "skills")
        require = _skill_names(entry.get("require"), f"{path}.require")
        prefer = _skill_names(entry.get("prefer"), f"{path}.prefer")
        if not require and not prefer:
            raise _Invalid(path, "gives no skills: write `require: [...]`, `prefer: [...]` or both")
        entries.append(SkillRule(when, require, prefer))
    return tuple(entries)


def config_warnings(rules: Rules) -> list[str]:
    """What is allowed but probably a mistake, as ``path: reason`` lines for stderr: a skill
    that ``skills[].require`` asks for and no agent holds (the tickets needing it would wait
    until the rules list such an agent)."""
    held = frozenset().union(*(agent.skills for agent in rules.agents))
    found: list[str] = []
    for index, entry in enumerate(rules.skills):
        for name in sorted(entry.require - held):
            found.append(
                f"skills[{index}].require: no agent has skill {_show(name)}; tickets that "
                "need it are never assigned automatically and wait in their queue"
            )
    return found


def _assignment(value: Any) -> AssignmentMode:
    mode = _one_of(value, "assignment", ASSIGNMENT_MODES, "assignment mode")
    if mode == "round_robin":
        return "round_robin"
    if mode == "none":
        return "none"
    return "least_loaded"


def _policies(
    value: Any, facts: Mapping[str, tuple[str, ...]], calendars: Mapping[str, CalendarSpec]
) -> tuple[SlaPolicy, ...]:
    if value is None:
        return ()
    policies: list[SlaPolicy] = []
    first_at: dict[str, str] = {}
    for path, item in _items(value, "sla_policies"):
        entry = _mapping(item, path)
        _only_keys(entry, path, ("name", "when", "calendar", "targets", "warn_at"))
        name = _required_name(entry, path)
        _unique(name, f"{path}.name", first_at, path)
        when = _condition(entry.get("when"), f"{path}.when", _WHEN_KEYS_POLICY, facts, "policy")
        if entry.get("calendar") is None:
            raise _Invalid(
                f"{path}.calendar",
                "is required: the calendar whose business hours the targets count "
                "(declare one under `calendars`)",
            )
        calendar = _name(entry["calendar"], f"{path}.calendar", what="calendar name")
        if calendar not in calendars:
            declared = ", ".join(calendars) or "none"
            raise _Invalid(
                f"{path}.calendar",
                f"{_show(calendar)} is not a declared calendar (declared: {declared})"
                f"{_suggest(calendar, list(calendars))}",
            )
        targets = _targets(entry.get("targets"), f"{path}.targets")
        warn_at = 0.8
        if entry.get("warn_at") is not None:
            warn_at = _fraction(entry["warn_at"], f"{path}.warn_at")
        policies.append(SlaPolicy(name, when, calendar, targets, warn_at))
    return tuple(policies)


def _promises(value: Any) -> PromisesSpec | None:
    if value is None:
        return None
    entry = _mapping(value, "promises")
    _only_keys(entry, "promises", ("percentile", "window", "min_samples"))
    spec = PromisesSpec()
    percentile = spec.percentile
    if entry.get("percentile") is not None:
        percentile = entry["percentile"]
        if (
            isinstance(percentile, bool)
            or not isinstance(percentile, int | float)
            or not 1 <= percentile <= 100
        ):
            raise _Invalid(
                "promises.percentile",
                f"must be a number from 1 to 100 (e.g. 80), got {_show(percentile)}",
            )
    window = spec.window
    if entry.get("window") is not None:
        window = _positive_int(entry["window"], "promises.window")
    min_samples = spec.min_samples
    if entry.get("min_samples") is not None:
        min_samples = _positive_int(entry["min_samples"], "promises.min_samples")
    if min_samples > window:
        raise _Invalid(
            "promises.min_samples",
            f"{min_samples} is more than the window ({window}): the estimate would never "
            "leave the fallback to the target",
        )
    return PromisesSpec(float(percentile), window, min_samples)


def _incidents(value: Any) -> IncidentsSpec | None:
    if value is None:
        return None
    entry = _mapping(value, "incidents")
    _only_keys(entry, "incidents", ("window", "min_customers", "factor", "baseline"))
    spec = IncidentsSpec()
    window_ms = spec.window_ms
    if entry.get("window") is not None:
        window_ms = _duration(entry["window"], "incidents.window")
    min_customers = spec.min_customers
    if entry.get("min_customers") is not None:
        min_customers = _positive_int(entry["min_customers"], "incidents.min_customers")
    factor = spec.factor
    if entry.get("factor") is not None:
        factor = entry["factor"]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            raise _Invalid(
                "incidents.factor",
                f"must be a number of at least 0 (e.g. 3), got {_show(factor)}",
            )
    baseline_ms = spec.baseline_ms
    if entry.get("baseline") is not None:
        baseline_ms = _duration(entry["baseline"], "incidents.baseline")
    return IncidentsSpec(window_ms, min_customers, float(factor), baseline_ms)


def _targets(value: Any, path: str) -> dict[str, int]:
    if value is None:
        raise _Invalid(path, f"is required: at least one of {', '.join(METRICS)}")
    entry = _mapping(value, path)
    _only_keys(entry, path, METRICS)
    targets = {
        metric: _duration(entry[metric], f"{path}.{metric}")
        for metric in METRICS
        if entry.get(metric) is not None
    }
    if not targets:
        raise _Invalid(path, f"sets no target: give at least one of {', '.join(METRICS)}")
    return targets


def _condition(
    value: Any,
    path: str,
    keys: tuple[str, ...],
    facts: Mapping[str, tuple[str, ...]],
    owner: str,
) -> Condition:
    if value is None:
        return Condition()
    entry = _mapping(value, path)
    for key in entry:
        if key in CONDITION_KEYS and key not in keys:
            raise _Invalid(_key_path(path, key), _not_decided_yet(key, owner))
    _only_keys(entry, path, keys)
    clauses: list[tuple[str, frozenset[str]]] = []
    for key in CONDITION_KEYS:
        if key not in entry:
            continue
        key_path = f"{path}.{key}"
        if entry[key] is None:
            raise _Invalid(key_path, "has no value: give one value or a list of them")
        allowed = facts[key]
        what = {"category": "declared category", "queue": "declared queue"}.get(key, key)
        values = frozenset(
            _one_of(item, item_path, allowed, what)
            for item_path, item in _items(entry[key], key_path, empty=_MATCHES_NOTHING)
        )
        clauses.append((key, values))
    return Condition(tuple(clauses))


def _not_decided_yet(key: str, owner: str) -> str:
    if owner == "priority":
        return (
            f"a priority rule cannot use {_show(key)}: the queue is decided after the "
            "priority (category and kind come first, then priority, then queue; "
            "sla_policies may use the queue)"
        )
    return f"a queue rule cannot use {_show(key)}: the queue is what it decides"


# --------------------------------------------------------------------------------------------
# Validation: values
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as a reason quotes it: strings in double quotes, other things described."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _key_path(path: str, key: Any) -> str:
    text = key if isinstance(key, str) else _show(key)
    # Names that read as identifiers join with a dot; anything else is bracketed so the path
    # stays unambiguous (calendars["head office"].timezone).
    if re.fullmatch(r"[A-Za-z_][\w-]*", text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def _suggest(value: Any, choices: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {_show(close[0])}?" if close else ""


def _mapping(value: Any, path: str, *, what: str = "") -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"{what or 'this'} must be a mapping (key: value), got {_show(value)}")
    return value


def _only_keys(entry: Mapping[Any, Any], path: str, keys: tuple[str, ...]) -> None:
    for key in entry:
        if key not in keys:
            raise _Invalid(
                _key_path(path, key),
                f"unknown key {_show(key)}{_suggest(key, keys)} (expected: {', '.join(keys)})",
            )


def _items(value: Any, path: str, *, empty: str = "") -> list[tuple[str, Any]]:
    """The entries of a list with their paths. A single value stands for a list of one, as a
    user writing ``keywords: refund`` means. ``empty``, when given, is why an empty list is
    refused; without it an empty list is fine."""
    if isinstance(value, list):
        if not value and empty:
            raise _Invalid(path, f"is an empty list: {empty}")
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    if isinstance(value, dict):
        raise _Invalid(path, "must be a list (or a single value), got a mapping")
    return [(path, value)]


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a string, got {_show(value)}")
    return value


def _name(value: Any, path: str, *, what: str = "name") -> str:
    text = _string(value, path)
    if not text.strip():
        raise _Invalid(path, f"a {what} cannot be empty")
    if text != text.strip():
        raise _Invalid(path, f"{_show(text)}: a {what} cannot start or end with spaces")
    return text


def _required_name(entry: Mapping[Any, Any], path: str) -> str:
    if entry.get("name") is None:
        raise _Invalid(f"{path}.name", "is required")
    return _name(entry["name"], f"{path}.name")


def _unique(
    name: str, path: str, first_at: dict[str, str], entry_path: str, *, what: str = "name"
) -> None:
    if name in first_at:
        raise _Invalid(path, f"duplicate {what} {_show(name)} (already used by {first_at[name]})")
    first_at[name] = entry_path


def _one_of(value: Any, path: str, choices: Iterable[str], what: str) -> str:
    options = list(choices)
    text = _string(value, path)
    if text not in options:
        raise _Invalid(
            path,
            f"{_show(text)} is not a known {what} (expected one of: {', '.join(options)})"
            f"{_suggest(text, options)}",
        )
    return text


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"must be true or false, got {_show(value)}")
    return value


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid(path, f"must be a whole number above zero, got {_show(value)}")
    return value


def _fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise _Invalid(
            path, f"must be a fraction between 0 and 1 (exclusive), e.g. 0.8, got {_show(value)}"
        )
    return float(value)


def _duration(value: Any, path: str) -> int:
    if not isinstance(value, str):
        raise _Invalid(path, f"{_show(value)} is not a duration ({_DURATION_HINT})")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Invalid(path, str(exc)) from None


def _timezone(value: Any, path: str) -> str:
    name = _string(value, path)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # Only on the error path: listing the zones reads the whole tz database.
        suggestion = _suggest(name, sorted(zoneinfo.available_timezones()))
        raise _Invalid(
            path,
            f"{_show(name)} is not a known time zone (use an IANA name such as "
            f"Europe/Moscow or UTC){suggestion}",
        ) from None
    return name


def _regex(value: Any, path: str) -> str:
    pattern = _string(value, path)
    if not pattern:
        raise _Invalid(path, "an empty regex would match every text")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _Invalid(path, f"{_show(pattern)} is not a valid regular expression: {exc}") from None
    except (OverflowError, RecursionError) as exc:
        raise _Invalid(path, f"{_show(pattern)} cannot be compiled: {exc}") from None
    return pattern

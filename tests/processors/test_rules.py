"""The rules file: the example files load, defaults apply, and every mistake is refused with
the file, the path inside it and a recognisable reason."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.rules import (
    DEFAULT_REOPEN_WITHIN_MS,
    Condition,
    Rules,
    RulesError,
    check_config,
    load_rules,
    rules_from_mapping,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
H = 3_600_000
M = 60_000

# The CONTRACT §2 example, the base every refusal test breaks in exactly one place.
CONTRACT_EXAMPLE = """
version: 1
reporting_timezone: Europe/Moscow
reopen_within: 72h
calendars:
  office:
    timezone: Europe/Moscow
    week: {mon: ["09:00-13:00", "14:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
           thu: ["09:00-18:00"], fri: ["09:00-17:00"]}
    holidays: ["2026-01-01", "2026-01-02"]
  always: {timezone: UTC, week: {mon: ["00:00-24:00"], tue: ["00:00-24:00"],
           wed: ["00:00-24:00"], thu: ["00:00-24:00"], fri: ["00:00-24:00"],
           sat: ["00:00-24:00"], sun: ["00:00-24:00"]}}
categories:
  - {name: billing, keywords: ["счёт", "счет", "invoice", "оплат", "refund", "возврат"]}
  - {name: access,  regex: "(?i)парол|password|log ?in|войти"}
  - {name: outage,  keywords: ["не работает", "down", "ошибка 500"],
     channels: [chat, telegram, email]}
kinds:
  complaint: {keywords: ["жалоба", "претензи", "безобразие", "complaint"]}
  thanks:    {keywords: ["спасибо", "благодар", "thank"]}
priorities:
  - {when: {tier: vip}, priority: P1}
  - {when: {category: outage}, priority: P1}
  - {when: {kind: complaint}, priority: P2}
  - {when: {channel: [chat, telegram, whatsapp]}, priority: P2}
default_priority: P3
queues:
  - {name: vip, when: {tier: vip}}
  - {name: billing-l2, when: {category: billing, kind: complaint}}
  - {name: billing-l1, when: {category: billing}}
  - {name: general-l1, default: true}
agents:
  - {id: a.ivanova, queues: [vip, billing-l2], capacity: 5}
  - {id: p.petrov, queues: [general-l1, billing-l1], capacity: 8}
assignment: least_loaded
sla_policies:
  - name: vip
    when: {tier: vip}
    calendar: always
    targets: {first_response: 15m, next_response: 30m, resolution: 4h}
    warn_at: 0.8
  - name: standard
    when: {}
    calendar: office
    targets: {first_response: 1h, next_response: 2h, resolution: 16h}
"""


def base() -> dict[str, Any]:
    data = yaml.safe_load(CONTRACT_EXAMPLE)
    assert isinstance(data, dict)
    return data


def refused(change: Callable[[dict[str, Any]], object]) -> RulesError:
    """Apply ``change`` to a copy of the contract example and return the error it causes."""
    data = copy.deepcopy(base())
    change(data)
    with pytest.raises(RulesError) as caught:
        rules_from_mapping(data, "rules.yaml")
    return caught.value


def accepted(change: Callable[[dict[str, Any]], object]) -> Rules:
    data = copy.deepcopy(base())
    change(data)
    return rules_from_mapping(data, "rules.yaml")


def assert_refused(
    change: Callable[[dict[str, Any]], object], path: str, *reason_parts: str
) -> RulesError:
    error = refused(change)
    assert error.file == "rules.yaml"
    assert error.path == path, str(error)
    for part in reason_parts:
        assert part in error.reason, str(error)
    assert str(error) == f"rules.yaml: {path}: {error.reason}" if path else True
    return error


def setter(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def deleter(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


# --------------------------------------------------------------------------------------------
# What loads
# --------------------------------------------------------------------------------------------


def test_the_contract_example_loads_into_typed_rules() -> None:
    rules = rules_from_mapping(base(), "rules.yaml")
    assert rules.version == 1
    assert rules.reporting_timezone == "Europe/Moscow"
    assert rules.reopen_within_ms == 72 * H
    office = rules.calendars["office"]
    assert office.timezone == "Europe/Moscow"
    assert office.week[0] == ((9 * 60, 13 * 60), (14 * 60, 18 * 60))
    assert office.week[4] == ((9 * 60, 17 * 60),)
    assert office.week[5] == office.week[6] == ()
    assert office.holidays == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}
    assert rules.calendars["always"].week[6] == ((0, 1440),)
    assert [c.name for c in rules.categories] == ["billing", "access", "outage"]
    assert rules.categories[0].keywords[:2] == ("счёт", "счет")
    assert rules.categories[1].regex == "(?i)парол|password|log ?in|войти"
    assert rules.categories[2].channels == frozenset({"chat", "telegram", "email"})
    assert rules.categories[0].channels is None
    assert set(rules.kinds) == {"complaint", "thanks"}
    assert [p.priority for p in rules.priorities] == ["P1", "P1", "P2", "P2"]
    assert rules.priorities[3].when == Condition(
        (("channel", frozenset({"chat", "telegram", "whatsapp"})),)
    )
    assert rules.default_priority == "P3"
    assert rules.priority_names == ("P1", "P2", "P3")
    assert rules.queue_names == ("vip", "billing-l2", "billing-l1", "general-l1")
    assert rules.default_queue == "general-l1"
    assert rules.agents[0].queues == ("vip", "billing-l2")
    assert rules.agents[1].capacity == 8
    assert rules.assignment == "least_loaded"
    vip, standard = rules.sla_policies
    assert vip.targets == {"first_response": 15 * M, "next_response": 30 * M, "resolution": 4 * H}
    assert vip.warn_at == 0.8
    assert standard.when == Condition()
    assert standard.calendar == "office"


@pytest.mark.parametrize("name", ["rules.yaml", "rules.minimal.yaml", "rules.demo.yaml"])
def test_example_files_load(name: str) -> None:
    rules = load_rules(EXAMPLES / name)
    assert rules.queues
    code, message = check_config(EXAMPLES / name)
    assert code == 0
    assert message.startswith(f"{EXAMPLES / name}: OK — ")


def test_example_rules_declare_the_extra_categories() -> None:
    rules = load_rules(EXAMPLES / "rules.yaml")
    assert [c.name for c in rules.categories] == [
        "billing",
        "access",
        "outage",
        "delivery",
        "account",
        "bug",
        "feature_request",
    ]


def test_demo_rules_give_every_queue_an_agent() -> None:
    rules = load_rules(EXAMPLES / "rules.demo.yaml")
    served = {queue for agent in rules.agents for queue in agent.queues}
    assert served == set(rules.queue_names)
    assert rules.assignment == "least_loaded"
    assert {p.name for p in rules.sla_policies} == {"vip", "standard"}
    assert rules.calendars["office"].week[0] == ((9 * 60, 13 * 60), (14 * 60, 19 * 60))
    assert rules.calendars["office"].holidays


def test_defaults_of_a_file_that_says_little() -> None:
    rules = rules_from_mapping(
        {"version": 1, "queues": [{"name": "support", "default": True}]}, "tiny.yaml"
    )
    assert rules.reporting_timezone == "UTC"
    assert rules.reopen_within_ms == DEFAULT_REOPEN_WITHIN_MS == 72 * H
    assert rules.calendars == {}
    assert rules.categories == ()
    assert rules.kinds == {}
    assert rules.priorities == ()
    assert rules.default_priority == "P3"
    assert rules.default_queue == "support"
    assert rules.agents == ()
    assert rules.assignment == "least_loaded"
    assert rules.sla_policies == ()


def test_empty_sections_count_as_not_given() -> None:
    rules = accepted(lambda d: d.update(agents=None, kinds=None, sla_policies=None))
    assert rules.agents == () and rules.kinds == {} and rules.sla_policies == ()


def test_order_of_entries_is_the_files() -> None:
    rules = accepted(lambda d: d["queues"].reverse())
    assert rules.queue_names == ("general-l1", "billing-l1", "billing-l2", "vip")
    assert rules.default_queue == "general-l1"


def test_intervals_are_sorted_and_touching_ones_joined() -> None:
    rules = accepted(
        setter(
            ("calendars", "office", "week", "mon"),
            ["14:00-18:00", "09:00-12:00", "12:00-13:00", "20:00-24:00"],
        )
    )
    assert rules.calendars["office"].week[0] == ((540, 780), (840, 1080), (1200, 1440))


def test_a_single_value_stands_for_a_list() -> None:
    rules = accepted(setter(("categories", 0, "keywords"), "invoice"))
    assert rules.categories[0].keywords == ("invoice",)
    rules = accepted(setter(("priorities", 3, "when", "channel"), "chat"))
    assert rules.priorities[3].when.allowed("channel") == frozenset({"chat"})


def test_a_day_with_no_value_is_closed() -> None:
    rules = accepted(setter(("calendars", "office", "week", "sat"), None))
    assert rules.calendars["office"].week[5] == ()


def test_calendar_timezone_defaults_to_utc() -> None:
    rules = accepted(deleter(("calendars", "office", "timezone")))
    assert rules.calendars["office"].timezone == "UTC"


def test_policy_targets_may_be_any_non_empty_subset() -> None:
    rules = accepted(setter(("sla_policies", 1, "targets"), {"resolution": "3d"}))
    assert rules.sla_policies[1].targets == {"resolution": 72 * H}


def test_policy_when_may_use_every_key() -> None:
    when = {
        "channel": ["chat", "email"],
        "category": ["billing", "other"],
        "kind": "question",
        "priority": ["P1", "P3"],
        "tier": "active",
        "queue": "general-l1",
    }
    rules = accepted(setter(("sla_policies", 1, "when"), when))
    condition = rules.sla_policies[1].when
    assert [key for key, _ in condition.clauses] == [
        "channel",
        "category",
        "kind",
        "priority",
        "tier",
        "queue",
    ]
    assert condition.matches(
        {
            "channel": "chat",
            "category": "other",
            "kind": "question",
            "priority": "P3",
            "tier": "active",
            "queue": "general-l1",
        }
    )


def test_queue_when_may_use_priority() -> None:
    rules = accepted(setter(("queues", 0, "when"), {"priority": "P1"}))
    assert rules.queues[0].when.allowed("priority") == frozenset({"P1"})


def test_a_default_queue_may_carry_an_empty_when() -> None:
    rules = accepted(setter(("queues", 3, "when"), {}))
    assert rules.default_queue == "general-l1"


def test_assignment_modes() -> None:
    for mode in ("least_loaded", "round_robin", "none"):
        assert accepted(setter(("assignment",), mode)).assignment == mode


def test_agent_capacity_may_be_left_out() -> None:
    assert accepted(deleter(("agents", 0, "capacity"))).agents[0].capacity is None


# --------------------------------------------------------------------------------------------
# The file as a whole
# --------------------------------------------------------------------------------------------


def test_error_text_names_file_path_and_reason() -> None:
    error = refused(setter(("sla_policies", 1, "targets", "first_response"), "1x"))
    assert str(error) == (
        'rules.yaml: sla_policies[1].targets.first_response: "1x" is not a duration '
        "(use 45s, 15m, 2h, 3d or 1h30m)"
    )


def test_version_is_required() -> None:
    assert_refused(deleter(("version",)), "version", "required", "version: 1")


@pytest.mark.parametrize("version", [2, "1", True, 1.5])
def test_version_must_be_1(version: object) -> None:
    assert_refused(setter(("version",), version), "version", "must be 1")


def test_unknown_top_level_key_is_refused_with_a_suggestion() -> None:
    assert_refused(
        lambda d: d.update(categoreis=[]), "categoreis", "unknown key", 'did you mean "categories"'
    )


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(RulesError) as caught:
        rules_from_mapping(["version", 1], "rules.yaml")
    assert caught.value.path == ""
    assert "must be a mapping" in caught.value.reason
    assert str(caught.value).startswith("rules.yaml: ")


def test_an_empty_document_is_refused() -> None:
    with pytest.raises(RulesError, match="empty"):
        rules_from_mapping(None, "rules.yaml")


def test_reporting_timezone_must_exist() -> None:
    assert_refused(
        setter(("reporting_timezone",), "Europe/Moskow"),
        "reporting_timezone",
        '"Europe/Moskow" is not a known time zone',
        'did you mean "Europe/Moscow"',
    )


@pytest.mark.parametrize("value", ["1x", "0h", 30, "1.5h"])
def test_reopen_within_must_be_a_duration(value: object) -> None:
    assert_refused(setter(("reopen_within",), value), "reopen_within", "is not a duration")


# --------------------------------------------------------------------------------------------
# Calendars
# --------------------------------------------------------------------------------------------


def test_calendar_unknown_key() -> None:
    assert_refused(
        setter(("calendars", "office", "holiday"), []),
        "calendars.office.holiday",
        "unknown key",
        'did you mean "holidays"',
    )


def test_calendar_timezone_must_exist() -> None:
    assert_refused(
        setter(("calendars", "office", "timezone"), "Mars/Olympus"),
        "calendars.office.timezone",
        "not a known time zone",
    )


def test_day_names_are_mon_to_sun() -> None:
    assert_refused(
        setter(("calendars", "office", "week", "monday"), ["09:00-18:00"]),
        "calendars.office.week.monday",
        '"monday" is not a day name',
        "mon, tue, wed, thu, fri, sat, sun",
    )


@pytest.mark.parametrize(
    "interval",
    ["9:00-18:00", "09:00-18", "09:00", "09:00-25:00", "24:00-24:00", "09:60-10:00", "0900-1800"],
)
def test_intervals_are_strict_hh_mm(interval: str) -> None:
    assert_refused(
        setter(("calendars", "office", "week", "tue"), [interval]),
        "calendars.office.week.tue[0]",
        "is not an interval of the day",
        "HH:MM-HH:MM",
    )


@pytest.mark.parametrize("interval", ["18:00-09:00", "10:00-10:00"])
def test_an_interval_starts_before_it_ends(interval: str) -> None:
    assert_refused(
        setter(("calendars", "office", "week", "tue"), [interval]),
        "calendars.office.week.tue[0]",
        "ends before it starts",
    )


def test_intervals_may_not_overlap() -> None:
    assert_refused(
        setter(("calendars", "office", "week", "mon"), ["12:00-18:00", "09:00-13:00"]),
        "calendars.office.week.mon[0]",
        'overlaps "09:00-13:00"',
    )


def test_a_calendar_needs_some_open_hours() -> None:
    assert_refused(
        setter(("calendars", "office", "week"), {"sat": [], "sun": []}),
        "calendars.office.week",
        "no open hours",
    )


@pytest.mark.parametrize("holiday", ["2026-13-01", "01.01.2026", "2026-1-1", 20260101])
def test_holidays_are_iso_dates(holiday: object) -> None:
    assert_refused(
        setter(("calendars", "office", "holidays"), ["2026-01-01", holiday]),
        "calendars.office.holidays[1]",
        "is not a date",
        "YYYY-MM-DD",
    )


def test_calendar_names_that_are_not_identifiers_are_bracketed() -> None:
    def change(data: dict[str, Any]) -> None:
        data["calendars"]["head office"] = {"timezone": "Nowhere/City", "week": {}}

    assert_refused(change, 'calendars["head office"].timezone', "not a known time zone")


def test_calendar_must_be_a_mapping() -> None:
    assert_refused(
        setter(("calendars", "office"), ["09:00-18:00"]), "calendars.office", "must be a mapping"
    )


# --------------------------------------------------------------------------------------------
# Categories and kinds
# --------------------------------------------------------------------------------------------


def test_category_needs_a_name() -> None:
    assert_refused(deleter(("categories", 1, "name")), "categories[1].name", "required")


def test_category_names_are_unique() -> None:
    assert_refused(
        setter(("categories", 2, "name"), "billing"),
        "categories[2].name",
        'duplicate name "billing"',
        "categories[0]",
    )


def test_category_needs_keywords_or_regex() -> None:
    assert_refused(
        setter(("categories", 0), {"name": "billing", "channels": ["email"]}),
        "categories[0]",
        "needs `keywords` or `regex`",
    )


def test_category_regex_must_compile() -> None:
    error = assert_refused(
        setter(("categories", 1, "regex"), "(?i)парол|(log in"),
        "categories[1].regex",
        "is not a valid regular expression",
    )
    assert "missing ), unterminated subpattern" in error.reason


def test_category_unknown_key_suggests_the_right_one() -> None:
    def change(data: dict[str, Any]) -> None:
        data["categories"][0]["keyword"] = data["categories"][0].pop("keywords")

    assert_refused(change, "categories[0].keyword", "unknown key", 'did you mean "keywords"')


def test_category_takes_no_when() -> None:
    assert_refused(
        setter(("categories", 0, "when"), {"tier": "vip"}),
        "categories[0].when",
        "take no `when`",
    )


def test_category_channels_must_be_known() -> None:
    assert_refused(
        setter(("categories", 2, "channels"), ["chat", "sms"]),
        "categories[2].channels[1]",
        '"sms" is not a known channel',
        "telegram, whatsapp, email, chat, form, vk, phone",
    )


def test_empty_keyword_is_refused() -> None:
    assert_refused(
        setter(("categories", 0, "keywords"), ["invoice", ""]),
        "categories[0].keywords[1]",
        "empty keyword",
    )


def test_keywords_must_be_strings() -> None:
    assert_refused(
        setter(("categories", 0, "keywords"), ["invoice", 500]),
        "categories[0].keywords[1]",
        "must be a string, got 500",
    )


def test_categories_must_be_a_list() -> None:
    assert_refused(
        setter(("categories",), {"billing": {"keywords": ["x"]}}), "categories", "must be a list"
    )


def test_kinds_are_only_complaint_and_thanks() -> None:
    assert_refused(
        setter(("kinds", "praise"), {"keywords": ["great"]}),
        "kinds.praise",
        'unknown kind "praise"',
    )


def test_kind_takes_no_when() -> None:
    assert_refused(
        setter(("kinds", "complaint", "when"), {"tier": "vip"}),
        "kinds.complaint.when",
        "take no `when`",
    )


def test_kind_needs_keywords_or_regex() -> None:
    assert_refused(setter(("kinds", "thanks"), {}), "kinds.thanks", "needs `keywords` or `regex`")


def test_kind_regex_must_compile() -> None:
    assert_refused(
        setter(("kinds", "thanks", "regex"), "[спасибо"),
        "kinds.thanks.regex",
        "not a valid regular expression",
    )


# --------------------------------------------------------------------------------------------
# Priorities and `when`
# --------------------------------------------------------------------------------------------


def test_priority_when_may_not_use_queue() -> None:
    assert_refused(
        setter(("priorities", 0, "when"), {"queue": "vip"}),
        "priorities[0].when.queue",
        "queue is decided after the priority",
    )


def test_priority_entry_needs_a_priority() -> None:
    assert_refused(deleter(("priorities", 2, "priority")), "priorities[2].priority", "required")


def test_priority_entry_unknown_key() -> None:
    assert_refused(setter(("priorities", 0, "prio"), "P1"), "priorities[0].prio", "unknown key")


def test_when_tier_must_be_known() -> None:
    assert_refused(
        setter(("priorities", 0, "when", "tier"), "gold"),
        "priorities[0].when.tier",
        '"gold" is not a known tier',
        "prospect, active, vip",
    )


def test_when_list_entries_are_checked_one_by_one() -> None:
    assert_refused(
        setter(("priorities", 0, "when", "tier"), ["vip", "VIP"]),
        "priorities[0].when.tier[1]",
        '"VIP" is not a known tier',
    )


def test_when_channel_must_be_known() -> None:
    assert_refused(
        setter(("priorities", 3, "when", "channel"), ["chat", "sms"]),
        "priorities[3].when.channel[1]",
        '"sms" is not a known channel',
    )


def test_when_category_must_be_declared_or_other() -> None:
    assert_refused(
        setter(("priorities", 1, "when", "category"), "outages"),
        "priorities[1].when.category",
        '"outages" is not a known declared category',
        'did you mean "outage"',
    )
    rules = accepted(setter(("priorities", 1, "when", "category"), "other"))
    assert rules.priorities[1].when.allowed("category") == frozenset({"other"})


def test_when_kind_is_complaint_thanks_or_question() -> None:
    assert_refused(
        setter(("priorities", 2, "when", "kind"), "praise"),
        "priorities[2].when.kind",
        "complaint, thanks, question",
    )
    assert accepted(setter(("priorities", 2, "when", "kind"), "question"))


def test_when_unknown_key_suggests() -> None:
    assert_refused(
        setter(("priorities", 0, "when"), {"teir": "vip"}),
        "priorities[0].when.teir",
        "unknown key",
        'did you mean "tier"',
    )


def test_when_empty_list_matches_nothing_and_is_refused() -> None:
    assert_refused(
        setter(("priorities", 3, "when", "channel"), []),
        "priorities[3].when.channel",
        "empty list: it would match nothing",
    )


def test_when_key_without_value_is_refused() -> None:
    assert_refused(
        setter(("priorities", 0, "when", "tier"), None), "priorities[0].when.tier", "no value"
    )


def test_when_must_be_a_mapping() -> None:
    assert_refused(
        setter(("priorities", 0, "when"), ["tier", "vip"]), "priorities[0].when", "mapping"
    )


def test_default_priority_must_be_a_name() -> None:
    assert_refused(setter(("default_priority",), 3), "default_priority", "must be a string")
    assert_refused(setter(("default_priority",), " P3"), "default_priority", "spaces")


# --------------------------------------------------------------------------------------------
# Queues
# --------------------------------------------------------------------------------------------


def test_queue_when_may_not_use_queue() -> None:
    assert_refused(
        setter(("queues", 1, "when"), {"queue": "vip"}),
        "queues[1].when.queue",
        "cannot use",
    )


def test_when_priority_must_be_a_priority_of_the_file() -> None:
    assert_refused(
        setter(("queues", 0, "when"), {"priority": "P9"}),
        "queues[0].when.priority",
        '"P9" is not a known priority',
        "P1, P2, P3",
    )


def test_no_default_queue_is_refused() -> None:
    assert_refused(deleter(("queues", 3, "default")), "queues", "no queue is marked default")


def test_two_default_queues_are_refused() -> None:
    assert_refused(
        setter(("queues", 2, "default"), True),
        "queues[3].default",
        "only one queue may be the default",
        "queues[2]",
    )


def test_default_must_be_a_boolean() -> None:
    assert_refused(setter(("queues", 3, "default"), "yes"), "queues[3].default", "true or false")


def test_queue_names_are_unique() -> None:
    assert_refused(
        setter(("queues", 2, "name"), "billing-l2"),
        "queues[2].name",
        'duplicate name "billing-l2"',
    )


def test_queues_are_required() -> None:
    assert_refused(deleter(("queues",)), "queues", "required")
    assert_refused(setter(("queues",), []), "queues", "empty list")


def test_queue_needs_a_name() -> None:
    assert_refused(deleter(("queues", 0, "name")), "queues[0].name", "required")


# --------------------------------------------------------------------------------------------
# Agents and assignment
# --------------------------------------------------------------------------------------------


def test_agent_queues_must_exist() -> None:
    assert_refused(
        setter(("agents", 0, "queues"), ["vip", "billing-l3"]),
        "agents[0].queues[1]",
        '"billing-l3" is not a known declared queue',
    )


def test_agent_needs_at_least_one_queue() -> None:
    assert_refused(setter(("agents", 0, "queues"), []), "agents[0].queues", "at least one queue")


def test_empty_channels_are_refused_but_empty_keywords_with_a_regex_are_not() -> None:
    assert_refused(setter(("categories", 2, "channels"), []), "categories[2].channels", "nothing")
    rules = accepted(setter(("categories", 1, "keywords"), []))
    assert rules.categories[1].keywords == ()
    assert (
        accepted(setter(("calendars", "office", "holidays"), [])).calendars["office"].holidays
        == set()
    )


def test_agent_lists_a_queue_once() -> None:
    assert_refused(
        setter(("agents", 0, "queues"), ["vip", "vip"]), "agents[0].queues[1]", "listed twice"
    )


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "5"])
def test_agent_capacity_is_a_positive_whole_number(capacity: object) -> None:
    assert_refused(
        setter(("agents", 1, "capacity"), capacity),
        "agents[1].capacity",
        "whole number above zero",
    )


def test_agent_ids_are_unique() -> None:
    assert_refused(
        setter(("agents", 1, "id"), "a.ivanova"), "agents[1].id", 'duplicate agent id "a.ivanova"'
    )


def test_agent_needs_id_and_queues() -> None:
    assert_refused(deleter(("agents", 0, "id")), "agents[0].id", "required")
    assert_refused(deleter(("agents", 0, "queues")), "agents[0].queues", "required")


def test_agent_unknown_key() -> None:
    assert_refused(
        setter(("agents", 0, "capasity"), 3),
        "agents[0].capasity",
        'did you mean "capacity"',
    )


def test_assignment_mode_must_be_known() -> None:
    assert_refused(
        setter(("assignment",), "random"),
        "assignment",
        '"random" is not a known assignment mode',
        "least_loaded, round_robin, none",
    )


# --------------------------------------------------------------------------------------------
# SLA policies
# --------------------------------------------------------------------------------------------


def test_policy_calendar_must_be_declared() -> None:
    assert_refused(
        setter(("sla_policies", 1, "calendar"), "ofice"),
        "sla_policies[1].calendar",
        '"ofice" is not a declared calendar',
        "office, always",
    )


def test_policy_needs_a_calendar() -> None:
    assert_refused(deleter(("sla_policies", 0, "calendar")), "sla_policies[0].calendar", "required")


def test_policy_needs_targets() -> None:
    assert_refused(deleter(("sla_policies", 0, "targets")), "sla_policies[0].targets", "required")
    assert_refused(
        setter(("sla_policies", 0, "targets"), {}), "sla_policies[0].targets", "sets no target"
    )


def test_policy_target_metric_must_be_known() -> None:
    assert_refused(
        setter(("sla_policies", 0, "targets", "first_reply"), "1h"),
        "sla_policies[0].targets.first_reply",
        "unknown key",
        'did you mean "first_response"',
    )


@pytest.mark.parametrize("warn_at", [0, 1, 1.2, -0.5, "0.8", True])
def test_warn_at_is_a_fraction_strictly_between_0_and_1(warn_at: object) -> None:
    assert_refused(
        setter(("sla_policies", 0, "warn_at"), warn_at),
        "sla_policies[0].warn_at",
        "between 0 and 1",
    )


def test_policy_names_are_unique() -> None:
    assert_refused(
        setter(("sla_policies", 1, "name"), "vip"), "sla_policies[1].name", "duplicate name"
    )


def test_policy_when_queue_must_be_declared() -> None:
    assert_refused(
        setter(("sla_policies", 0, "when"), {"queue": "vip2"}),
        "sla_policies[0].when.queue",
        '"vip2" is not a known declared queue',
    )


def test_policy_unknown_key() -> None:
    assert_refused(
        setter(("sla_policies", 0, "warn"), 0.5),
        "sla_policies[0].warn",
        'did you mean "warn_at"',
    )


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nqueues:\n  - {name: a, default: true\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == 4 and error.column == 1
    assert str(error).startswith(f"{path}: line 4, column 1: not valid YAML: ")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "calendars:\n"
        "  office:\n"
        "    week:\n"
        '      mon: ["09:00-18:00"]\n'
        '      mon: ["10:00-12:00"]\n'
        "queues: [{name: a, default: true}]\n"
    )
    with pytest.raises(RulesError) as caught:
        load_rules(write(tmp_path, text))
    assert caught.value.line == 6
    assert 'duplicate key "mon" (first at line 5)' in caught.value.reason


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "calendars:\n"
        "  a: &base {timezone: UTC, week: {mon: ['09:00-18:00']}}\n"
        "  b: {<<: *base, timezone: Europe/Moscow}\n"
        "queues: [{name: a, default: true}]\n"
    )
    rules = load_rules(write(tmp_path, text))
    assert rules.calendars["b"].timezone == "Europe/Moscow"
    assert rules.calendars["b"].week[0] == ((540, 1080),)


def test_unquoted_yaml_dates_are_holidays(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "calendars:\n"
        "  office: {week: {mon: ['09:00-18:00']}, holidays: [2026-01-01, '2026-01-02']}\n"
        "queues: [{name: a, default: true}]\n"
    )
    rules = load_rules(write(tmp_path, text))
    assert rules.calendars["office"].holidays == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value) == f"{path}: no such file"


def test_a_directory_is_not_a_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="directory"):
        load_rules(tmp_path)


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="must be a mapping"):
        load_rules(write(tmp_path, "- version: 1\n"))
    with pytest.raises(RulesError, match="empty"):
        load_rules(write(tmp_path, "# nothing yet\n"))


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes("version: 1\n# счёт\n".encode("cp1251"))
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules(path)


def test_check_config_reports_ok_with_a_summary() -> None:
    code, message = check_config(EXAMPLES / "rules.yaml")
    assert code == 0
    assert message == (
        f"{EXAMPLES / 'rules.yaml'}: OK — 7 categories, 2 kind rules, 4 priority rules, "
        "4 queues, 2 agents (least_loaded), 2 SLA policies, 2 calendars, 2 skills rules"
    )


def test_check_config_reports_the_error_with_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nqueues: [{name: a, default: true}]\nassignment: fifo\n")
    code, message = check_config(path)
    assert code == 2
    assert message.startswith(f'{path}: assignment: "fifo" is not a known assignment mode')

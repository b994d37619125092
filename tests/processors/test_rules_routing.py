"""Rules keys of CONTRACT §7 "Languages" and "Skills, presence and queues that wait":
`languages`, `agents[].skills`, top-level `skills`, `when: {language}`; refusals name the path,
an unknown required skill is a warning."""

from __future__ import annotations

from typing import Any

from processors.classify import Classifier
from processors.rules import Condition, SkillRule, config_warnings
from tests.processors.test_rules import accepted, assert_refused, setter


def test_languages_default_to_ru_and_en() -> None:
    rules = accepted(lambda data: data.pop("languages", None))
    assert rules.languages == ("ru", "en")
    assert rules.skills == ()


def test_languages_skills_and_agent_skills_load() -> None:
    def change(data: dict[str, Any]) -> None:
        data["languages"] = ["ru", "en", "de"]
        data["agents"][0]["skills"] = ["en", "billing"]
        data["skills"] = [
            {"when": {"language": "en"}, "require": ["en"]},
            {"when": {"category": "billing", "queue": "billing-l1"}, "prefer": "billing"},
        ]

    rules = accepted(change)
    assert rules.languages == ("ru", "en", "de")
    assert rules.agents[0].skills == frozenset({"en", "billing"})
    assert rules.agents[1].skills == frozenset()
    assert rules.skills == (
        SkillRule(Condition((("language", frozenset({"en"})),)), frozenset({"en"}), frozenset()),
        SkillRule(
            Condition((("category", frozenset({"billing"})), ("queue", frozenset({"billing-l1"})))),
            frozenset(),
            frozenset({"billing"}),
        ),
    )
    assert config_warnings(rules) == []


def test_language_works_wherever_when_does() -> None:
    def change(data: dict[str, Any]) -> None:
        data["languages"] = ["ru", "en"]
        data["priorities"].insert(0, {"when": {"language": "und"}, "priority": "P4"})
        data["queues"].insert(0, {"name": "english", "when": {"language": "en"}})
        data["sla_policies"][1]["when"] = {"language": ["ru", "und"]}

    classifier = Classifier(accepted(change))
    english = classifier.classify("chat", "", "Hello, how do I change my password here?", "active")
    assert (english.language, english.queue, english.priority) == ("en", "english", "P2")
    assert english.sla_policy_name == ""
    russian = classifier.classify("chat", "", "Здравствуйте, как поменять пароль?", "active")
    assert (russian.language, russian.queue, russian.sla_policy_name) == (
        "ru",
        "general-l1",
        "standard",
    )
    short = classifier.classify("chat", "", "ок", "active")
    assert (short.language, short.priority) == ("und", "P4")


def test_bad_languages_are_refused_with_the_path() -> None:
    assert_refused(
        setter(("languages",), ["ru", "english"]), "languages[1]", '"english"', "ISO 639-1"
    )
    assert_refused(setter(("languages",), ["ru", "ru"]), "languages[1]", "listed twice")
    assert_refused(setter(("languages",), []), "languages", "at least one")
    assert_refused(setter(("languages",), ["und"]), "languages[0]", "not an ISO 639-1")
    assert_refused(setter(("languages",), {"ru": 1}), "languages", "mapping")


def test_a_when_naming_an_unlisted_language_is_refused() -> None:
    assert_refused(
        setter(("priorities", 0, "when"), {"language": "de"}),
        "priorities[0].when.language",
        '"de" is not a known language',
    )


def test_bad_skills_entries_are_refused_with_the_path() -> None:
    assert_refused(
        setter(("skills",), [{"when": {"language": "en"}}]), "skills[0]", "gives no skills"
    )
    assert_refused(
        setter(("skills",), [{"when": {"queue": "nope"}, "require": ["en"]}]),
        "skills[0].when.queue",
        '"nope" is not a known declared queue',
    )
    assert_refused(
        setter(("skills",), [{"require": ["en"], "needs": ["x"]}]), "skills[0].needs", "unknown key"
    )
    assert_refused(
        setter(("skills",), [{"require": ["en", "en"]}]), "skills[0].require[1]", "listed twice"
    )
    assert_refused(setter(("skills",), [{"prefer": [""]}]), "skills[0].prefer[0]", "empty")
    assert_refused(setter(("skills",), [{"prefer": [3]}]), "skills[0].prefer[0]", "string")
    assert_refused(setter(("agents", 1, "skills"), [" en"]), "agents[1].skills[0]", "spaces")
    assert_refused(setter(("agents", 1, "skills"), {"en": True}), "agents[1].skills", "mapping")


def test_a_required_skill_no_agent_has_is_a_warning_not_a_refusal() -> None:
    def change(data: dict[str, Any]) -> None:
        data["agents"][0]["skills"] = ["en"]
        data["skills"] = [
            {"when": {"language": "en"}, "require": ["en", "fr"]},
            {"prefer": ["billing"]},  # a preferred skill nobody has is no warning
        ]

    rules = accepted(change)
    [warning] = config_warnings(rules)
    assert warning.startswith('skills[0].require: no agent has skill "fr"')

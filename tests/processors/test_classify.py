"""Classification of the opening contact: category, kind, priority, queue and SLA policy,
in the contract's order, with Russian and English texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.classify import Classification, Classifier
from processors.rules import Rules, load_rules, rules_from_mapping

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def contract() -> Classifier:
    """The rules file of CONTRACT §2 (examples/rules.yaml extends it after its own entries)."""
    return Classifier(load_rules(EXAMPLES / "rules.yaml"))


def classifier(text: str) -> Classifier:
    return Classifier(rules_from_mapping(yaml.safe_load(text), "test.yaml"))


def small_rules(**sections: Any) -> Rules:
    data: dict[str, Any] = {"version": 1, "queues": [{"name": "general", "default": True}]}
    data.update(sections)
    return rules_from_mapping(data, "test.yaml")


# --------------------------------------------------------------------------------------------
# Category
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("", "Здравствуйте, пришёл неверный счёт за октябрь", "billing"),
        ("", "Где счет-фактура?", "billing"),
        ("", "ВЕРНИТЕ ОПЛАТУ", "billing"),  # case-insensitive, Cyrillic too
        ("Invoice #42", "hello", "billing"),  # the subject counts
        ("", "I would like a REFUND please", "billing"),
        ("", "Не могу войти в личный кабинет", "access"),  # regex, before `account`
        ("", "Forgot my Password", "access"),  # the regex's own (?i)
        ("", "cannot log in since yesterday", "access"),
        ("", "Где моя посылка? Курьер не приехал", "delivery"),
        ("", "How do I change my profile photo?", "account"),
        ("", "Приложение вылетает при запуске", "bug"),
        ("", "got a Traceback on the settings page", "bug"),  # regex only
        ("", "Добавьте, пожалуйста, тёмную тему", "feature_request"),
        ("", "Просто хотел узнать часы работы", "other"),
    ],
)
def test_category_from_ru_and_en_text(
    contract: Classifier, subject: str, body: str, category: str
) -> None:
    assert contract.classify("email", subject, body, "active").category == category


def test_first_matching_category_wins(contract: Classifier) -> None:
    # billing is listed before access; both match.
    result = contract.classify("email", "", "Invoice: I can't reset my password", "active")
    assert result.category == "billing"


def test_channels_limit_a_category(contract: Classifier) -> None:
    assert contract.classify("chat", "", "сайт не работает", "active").category == "outage"
    assert contract.classify("telegram", "", "The site is DOWN", "active").category == "outage"
    # outage is limited to chat, telegram and email: on WhatsApp the text falls through.
    assert contract.classify("whatsapp", "", "сайт не работает", "active").category == "other"
    assert contract.classify("form", "", "site down", "active").category == "other"


def test_yo_and_ye_are_different_letters() -> None:
    only_yo = Classifier(small_rules(categories=[{"name": "billing", "keywords": ["счёт"]}]))
    assert only_yo.classify("email", "", "СЧЁТ не пришёл", "active").category == "billing"
    assert only_yo.classify("email", "", "счет не пришел", "active").category == "other"


def test_regex_is_case_sensitive_unless_it_says_otherwise() -> None:
    rules = small_rules(categories=[{"name": "access", "regex": "Password"}])
    c = Classifier(rules)
    assert c.classify("chat", "", "my Password expired", "active").category == "access"
    assert c.classify("chat", "", "my password expired", "active").category == "other"


def test_regex_sees_subject_newline_body() -> None:
    c = Classifier(
        small_rules(
            categories=[
                {"name": "subject_only", "regex": r"\Arefund\n\Z"},
                {"name": "body_line", "regex": r"(?m)^order \d+$"},
            ]
        )
    )
    assert c.classify("email", "refund", "", "active").category == "subject_only"
    assert c.classify("email", "Re: question", "order 123", "active").category == "body_line"
    # Subject and body are not glued together: the newline separates them.
    assert c.classify("email", "ord", "er 5", "active").category == "other"


def test_keywords_and_regex_either_matches() -> None:
    c = Classifier(
        small_rules(
            categories=[{"name": "bug", "keywords": ["глюк"], "regex": r"(?i)\berror \d{3}\b"}]
        )
    )
    assert c.classify("chat", "", "Какой-то глюк", "active").category == "bug"
    assert c.classify("chat", "", "ERROR 503 again", "active").category == "bug"
    assert c.classify("chat", "", "errors everywhere", "active").category == "other"


def test_keywords_are_matched_case_insensitively_both_ways() -> None:
    c = Classifier(small_rules(categories=[{"name": "billing", "keywords": ["INVOICE"]}]))
    assert c.classify("email", "", "where is my invoice", "active").category == "billing"


# --------------------------------------------------------------------------------------------
# Kind
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("Спасибо за быструю помощь!", "thanks"),
        ("Thank you so much", "thanks"),
        ("Это жалоба на вашего оператора", "complaint"),
        ("I want to file a COMPLAINT", "complaint"),
        ("Спасибо, конечно, но это безобразие", "complaint"),  # complaint wins
        ("thanks for nothing, this is a complaint", "complaint"),
        ("Когда придёт заказ?", "question"),
    ],
)
def test_kind(contract: Classifier, body: str, kind: str) -> None:
    assert contract.classify("telegram", "", body, "active").kind == kind


def test_complaint_wins_whatever_the_file_order() -> None:
    c = Classifier(
        small_rules(
            kinds={"thanks": {"keywords": ["спасибо"]}, "complaint": {"regex": "(?i)жалоб"}}
        )
    )
    assert c.classify("chat", "", "Спасибо. Жалоба остаётся в силе", "active").kind == "complaint"


def test_kinds_honour_channels() -> None:
    c = Classifier(small_rules(kinds={"thanks": {"keywords": ["спасибо"], "channels": "form"}}))
    assert c.classify("form", "", "спасибо", "active").kind == "thanks"
    assert c.classify("chat", "", "спасибо", "active").kind == "question"


def test_no_kinds_declared_means_question() -> None:
    assert Classifier(small_rules()).classify("chat", "", "жалоба", "vip").kind == "question"


# --------------------------------------------------------------------------------------------
# Priority
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "body", "tier", "priority"),
    [
        ("email", "Просто вопрос", "vip", "P1"),  # tier: vip
        ("email", "the site is down", "active", "P1"),  # category: outage
        ("email", "Это жалоба", "active", "P2"),  # kind: complaint
        ("whatsapp", "Просто вопрос", "prospect", "P2"),  # channel list
        ("telegram", "Просто вопрос", "active", "P2"),
        ("email", "Просто вопрос", "active", "P3"),  # default_priority
        ("phone", "Просто вопрос", "prospect", "P3"),
    ],
)
def test_priority(contract: Classifier, channel: str, body: str, tier: str, priority: str) -> None:
    assert contract.classify(channel, "", body, tier).priority == priority


def test_when_with_several_keys_needs_all_of_them() -> None:
    c = Classifier(
        small_rules(
            categories=[{"name": "billing", "keywords": ["счёт"]}],
            priorities=[
                {"when": {"category": "billing", "tier": ["active", "vip"]}, "priority": "high"}
            ],
            default_priority="low",
        )
    )
    assert c.classify("chat", "", "счёт", "vip").priority == "high"
    assert c.classify("chat", "", "счёт", "active").priority == "high"
    assert c.classify("chat", "", "счёт", "prospect").priority == "low"
    assert c.classify("chat", "", "вопрос", "vip").priority == "low"


# --------------------------------------------------------------------------------------------
# Queue
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "tier", "queue"),
    [
        ("Счёт неверный, это безобразие", "vip", "vip"),  # vip first
        ("Счёт неверный, это безобразие", "active", "billing-l2"),
        ("Пришлите счёт, пожалуйста", "active", "billing-l1"),
        ("Как поменять адрес доставки?", "active", "general-l1"),  # default
    ],
)
def test_queue(contract: Classifier, body: str, tier: str, queue: str) -> None:
    assert contract.classify("email", "", body, tier).queue == queue


def test_default_queue_listed_first_is_still_only_the_fallback() -> None:
    c = classifier(
        """
        version: 1
        categories: [{name: billing, keywords: [invoice]}]
        queues:
          - {name: general, default: true}
          - {name: billing, when: {category: billing}}
          - {name: everything-else-vip, when: {tier: vip}}
        """
    )
    assert c.classify("email", "", "invoice", "active").queue == "billing"
    assert c.classify("email", "", "hello", "vip").queue == "everything-else-vip"
    assert c.classify("email", "", "hello", "active").queue == "general"


def test_default_queue_when_is_not_consulted() -> None:
    c = classifier(
        """
        version: 1
        queues:
          - {name: general, default: true, when: {tier: vip}}
          - {name: chats, when: {channel: chat}}
        """
    )
    assert c.classify("chat", "", "hi", "vip").queue == "chats"
    assert c.classify("email", "", "hi", "active").queue == "general"


def test_queue_when_may_use_the_priority() -> None:
    c = classifier(
        """
        version: 1
        priorities: [{when: {tier: vip}, priority: urgent}]
        default_priority: normal
        queues:
          - {name: urgent-desk, when: {priority: urgent}}
          - {name: general, default: true}
        """
    )
    assert c.classify("email", "", "hi", "vip").queue == "urgent-desk"
    assert c.classify("email", "", "hi", "active").queue == "general"


def test_demo_rules_put_the_default_queue_first() -> None:
    c = Classifier(load_rules(EXAMPLES / "rules.demo.yaml"))
    assert c.rules.queues[0].default
    assert c.classify("vk", "", "Где мой курьер? Посылка потерялась", "active").queue == "logistics"
    assert c.classify("vk", "", "Как дела?", "active").queue == "general-l1"


# --------------------------------------------------------------------------------------------
# SLA policy
# --------------------------------------------------------------------------------------------


def test_policy_first_match(contract: Classifier) -> None:
    vip = contract.classify("email", "", "вопрос", "vip")
    assert vip.sla_policy is not None and vip.sla_policy.name == "vip"
    standard = contract.classify("email", "", "вопрос", "prospect")
    assert standard.sla_policy is not None and standard.sla_policy.name == "standard"
    assert standard.sla_policy_name == "standard"


def test_no_matching_policy_means_no_sla() -> None:
    c = classifier(
        """
        version: 1
        calendars: {always: {week: {mon: ["00:00-24:00"]}}}
        queues: [{name: general, default: true}, {name: chats, when: {channel: chat}}]
        sla_policies:
          - {name: chats, when: {queue: chats, priority: P3}, calendar: always,
             targets: {first_response: 5m}}
        """
    )
    result = c.classify("chat", "", "hi", "active")
    assert result.sla_policy is not None and result.sla_policy.name == "chats"
    assert result.sla_policy.targets == {"first_response": 300_000}
    none = c.classify("email", "", "hi", "active")
    assert none.sla_policy is None
    assert none.sla_policy_name == ""


def test_policy_when_lists_and_every_decided_value() -> None:
    c = classifier(
        """
        version: 1
        calendars: {office: {week: {mon: ["09:00-18:00"]}}}
        categories: [{name: billing, keywords: [invoice]}]
        kinds: {complaint: {keywords: [complaint]}}
        priorities: [{when: {kind: complaint}, priority: P2}]
        queues: [{name: general, default: true}]
        sla_policies:
          - {name: billing-complaints, calendar: office, targets: {resolution: 1d},
             when: {category: billing, kind: complaint, priority: P2,
                    channel: [email, form], tier: [active, vip], queue: general}}
          - {name: rest, calendar: office, targets: {resolution: 3d}}
        """
    )

    def policy(channel: str, body: str, tier: str) -> str:
        return c.classify(channel, "", body, tier).sla_policy_name

    assert policy("form", "invoice complaint", "vip") == "billing-complaints"
    assert policy("email", "invoice complaint", "active") == "billing-complaints"
    assert policy("chat", "invoice complaint", "active") == "rest"
    assert policy("email", "invoice complaint", "prospect") == "rest"
    assert policy("email", "invoice", "active") == "rest"


def test_classification_is_the_whole_decision(contract: Classifier) -> None:
    result = contract.classify("chat", "", "Спасибо, но сайт не работает, это безобразие", "active")
    assert result == Classification(
        category="outage",
        kind="complaint",
        priority="P1",
        queue="general-l1",
        sla_policy=contract.rules.sla_policies[1],
        language="ru",
    )

"""Records that are not contacts: agent actions, survey answers and CRM profiles."""

from __future__ import annotations

import pytest

from processors.model import AgentAction, CrmUpsert, DeadLetter, Identity, QaReview, SurveyAnswer

CONVERSATION = "telegram:0123456789abcdef0123"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"type": "reply", "conversation_id": CONVERSATION, "agent_id": "a.ivanova"},
            {"type": "reply", "public": True},
        ),
        (
            {
                "type": "reply",
                "conversation_id": CONVERSATION,
                "agent_id": "a.ivanova",
                "public": False,
            },
            {"type": "reply", "public": False},
        ),
        (
            {"type": "note", "conversation_id": CONVERSATION, "agent_id": "a.ivanova"},
            {"type": "note"},
        ),
        (
            {
                "type": "status",
                "conversation_id": CONVERSATION,
                "agent_id": "a.ivanova",
                "status": "pending",
            },
            {"type": "status", "status": "pending"},
        ),
        (
            {"type": "assign", "conversation_id": CONVERSATION, "agent_id": "p.petrov"},
            {"type": "assign", "agent_id": "p.petrov"},
        ),
        (
            {
                "type": "reply",
                "conversation_id": CONVERSATION,
                "agent_id": "a.ivanova",
                "message_id": " <Desk-Reply-1.8841@Support.Example.com> ",
            },
            {"type": "reply", "message_id": "desk-reply-1.8841@support.example.com"},
        ),
    ],
)
def test_agent_records(kit, payload, expected) -> None:
    fields = {"agent_id": "a.ivanova", **expected}

    assert kit.parse_payload("agent", payload) == [
        AgentAction(at=kit.at_ms, conversation_id=CONVERSATION, ref=kit.ref, **fields)
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            {"type": "escalate", "conversation_id": CONVERSATION, "agent_id": "a"},
            "unknown agent type 'escalate' in payload.type",
        ),
        (
            {"type": "status", "conversation_id": CONVERSATION, "agent_id": "a"},
            "missing field payload.status",
        ),
        (
            {"type": "status", "conversation_id": CONVERSATION, "agent_id": "a", "status": "new"},
            "unknown ticket status 'new' in payload.status",
        ),
        ({"type": "reply", "agent_id": "a"}, "missing field payload.conversation_id"),
        ({"type": "reply", "conversation_id": CONVERSATION}, "missing field payload.agent_id"),
        (
            {"type": "reply", "conversation_id": CONVERSATION, "agent_id": "a", "public": "yes"},
            "field payload.public must be a boolean, got string",
        ),
        ({"conversation_id": CONVERSATION, "agent_id": "a"}, "missing field payload.type"),
    ],
)
def test_malformed_agent_records_are_dead_letters(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("agent", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


@pytest.mark.parametrize(
    ("kind", "score", "expected"),
    [("csat", 1, 1), ("csat", 5, 5), ("nps", 0, 0), ("nps", 10, 10), ("csat", 4.0, 4)],
)
def test_survey_scores_within_their_scale(kit, kind: str, score, expected: int) -> None:
    payload = {"conversation_id": CONVERSATION, "kind": kind, "score": score}

    assert kit.parse_payload("survey", payload) == [
        SurveyAnswer(
            at=kit.at_ms, conversation_id=CONVERSATION, kind=kind, score=expected, ref=kit.ref
        )
    ]


@pytest.mark.parametrize(
    ("kind", "score", "reason"),
    [
        ("csat", 7, "score 7 out of range 1..5 for csat"),
        ("csat", 0, "score 0 out of range 1..5 for csat"),
        ("nps", 11, "score 11 out of range 0..10 for nps"),
        ("nps", -1, "score -1 out of range 0..10 for nps"),
        ("csat", 4.5, "field payload.score must be a whole number, got 4.5"),
        ("csat", "4", "field payload.score must be a number, got string"),
        ("csat", True, "field payload.score must be a number, got boolean"),
        ("csat", None, "missing field payload.score"),
        ("ces", 3, "unknown survey kind 'ces' in payload.kind"),
    ],
)
def test_out_of_range_or_non_integer_scores_are_dead_letters(kit, kind, score, reason) -> None:
    payload = {"conversation_id": CONVERSATION, "kind": kind, "score": score}
    text = kit.line("survey", payload)

    assert kit.parse(text) == [
        DeadLetter(at=kit.at_ms, source="survey", reason=reason, record=kit.mask(text), ref=kit.ref)
    ]


def test_crm_profile_identities_are_normalised_and_ordered_by_kind(kit) -> None:
    payload = {
        "customer_id": "cust-1001",
        "tier": "vip",
        "identities": {
            "vk": ["00123456789", 987654321],
            "whatsapp": ["79161234567"],
            "phone": ["8 (916) 123-45-67", "+7 916 123 45 67", "+79161234567"],
            "email": ["Ivan.Petrov@Example.RU", "ivan.petrov@example.ru"],
            "telegram": [508812345],
        },
        "mrr": 1200,
    }

    assert kit.parse_payload("crm", payload) == [
        CrmUpsert(
            at=kit.at_ms,
            customer_id="cust-1001",
            tier="vip",
            identities=(
                Identity("email", "ivan.petrov@example.ru"),
                Identity("phone", "+89161234567"),
                Identity("phone", "+79161234567"),
                Identity("telegram", "508812345"),
                Identity("whatsapp", "79161234567"),
                Identity("vk", "123456789"),
                Identity("vk", "987654321"),
            ),
            mrr=1200.0,
            status="active",
            ref=kit.ref,
        )
    ]


def test_crm_churned_profile_without_identities_of_any_kind(kit) -> None:
    payload = {"customer_id": 77, "tier": "prospect", "identities": {}, "status": "churned"}

    assert kit.parse_payload("crm", payload) == [
        CrmUpsert(
            at=kit.at_ms,
            customer_id="77",
            tier="prospect",
            identities=(),
            mrr=None,
            status="churned",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tier": "gold"}, "unknown tier 'gold' in payload.tier"),
        ({"identities": ["a@b.c"]}, "field payload.identities must be an object, got array"),
        ({"identities": None}, "missing field payload.identities"),
        ({"identities": {"icq": ["1"]}}, "unknown identity kind 'icq' in payload.identities"),
        (
            {"identities": {"email": "a@b.c"}},
            "field payload.identities.email must be an array, got string",
        ),
        (
            {"identities": {"email": [1]}},
            "field payload.identities.email[0] must be a string, got number",
        ),
        (
            {"identities": {"phone": ["n/a"]}},
            "field payload.identities.phone[0] is empty after normalisation",
        ),
        ({"status": "paused"}, "unknown customer status 'paused' in payload.status"),
        ({"mrr": "1200"}, "field payload.mrr must be a number, got string"),
        ({"customer_id": ""}, "field payload.customer_id must not be empty"),
    ],
)
def test_malformed_crm_records_are_dead_letters(kit, change, reason: str) -> None:
    payload = {"customer_id": "cust-1001", "tier": "active", "identities": {}, **change}

    (out,) = kit.parse_payload("crm", payload)

    assert isinstance(out, DeadLetter)
    assert out.reason == reason


def test_qa_records_keep_scores_in_order_with_null_as_not_applicable(kit) -> None:
    payload = {
        "ticket_id": "chat:s-1#1",
        "reviewer_id": "lead.smirnova",
        "scores": {"solution": 1, "tone": 0.5, "greeting": None},
        "comment": "good",
    }
    assert kit.parse_payload("qa", payload) == [
        QaReview(
            at=kit.at_ms,
            ticket_id="chat:s-1#1",
            reviewer_id="lead.smirnova",
            scores=(("solution", 1.0), ("tone", 0.5), ("greeting", None)),
            comment="good",
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"scores": {"tone": 1.5}}, "score 1.5 out of range 0..1 for criterion 'tone'"),
        ({"scores": {"tone": -0.1}}, "score -0.1 out of range 0..1 for criterion 'tone'"),
        (
            {"scores": {"tone": "1"}},
            "field payload.scores.tone must be a number 0..1 or null, got string",
        ),
        (
            {"scores": {"tone": True}},
            "field payload.scores.tone must be a number 0..1 or null, got boolean",
        ),
        ({"scores": [1]}, "field payload.scores must be an object, got array"),
        ({"scores": None}, "missing field payload.scores"),
        ({"ticket_id": ""}, "field payload.ticket_id must not be empty"),
        ({"reviewer_id": None}, "missing field payload.reviewer_id"),
        ({"comment": 5}, "field payload.comment must be a string, got number"),
    ],
)
def test_malformed_qa_records_are_dead_letters(kit, change, reason: str) -> None:
    payload = {"ticket_id": "chat:s-1#1", "reviewer_id": "lead", "scores": {"tone": 1}}
    payload.update(change)
    text = kit.line("qa", payload)

    assert kit.parse(text) == [
        DeadLetter(at=kit.at_ms, source="qa", reason=reason, record=kit.mask(text), ref=kit.ref)
    ]


@pytest.mark.parametrize("status", ["online", "away", "offline"])
def test_presence_records_name_no_conversation(kit, status: str) -> None:
    payload = {"type": "presence", "agent_id": " a.ivanova ", "status": status}

    assert kit.parse_payload("agent", payload) == [
        AgentAction(
            at=kit.at_ms,
            type="presence",
            conversation_id="",
            agent_id="a.ivanova",
            status=status,
            ref=kit.ref,
        )
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"type": "presence", "agent_id": "a"}, "missing field payload.status"),
        (
            {"type": "presence", "agent_id": "a", "status": "busy"},
            "unknown presence status 'busy' in payload.status (expected online, away or offline)",
        ),
        ({"type": "presence", "status": "online"}, "missing field payload.agent_id"),
        ({"type": "presence", "agent_id": "", "status": "online"}, "payload.agent_id"),
    ],
)
def test_malformed_presence_records_are_dead_letters(kit, payload, reason: str) -> None:
    (out,) = kit.parse_payload("agent", payload)

    assert isinstance(out, DeadLetter)
    assert reason in out.reason

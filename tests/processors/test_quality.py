"""CONTRACT §7 "Agents and quality" in the domain core: the ``qa`` rules section, the scorecard
arithmetic, the most active agent, and the desk's attribution of every fact to the agent who
acted, driven with plain inputs (figures worked out by hand in the comments)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.desk import Desk
from processors.ids import Pseudonymizer
from processors.model import AgentAction, Contact, Output, QaReview, SurveyAnswer
from processors.pii import Masker
from processors.quality import most_active, score_review, tally_reply, unknown_criteria
from processors.rules import QaCriterion, QaRules, Rules, RulesError, rules_from_mapping

MINIMAL: dict[str, Any] = {"version": 1, "queues": [{"name": "general", "default": True}]}
SCORECARD = [
    {"name": "solution", "weight": 3, "critical": True},
    {"name": "tone", "weight": 2},
    {"name": "greeting", "weight": 1},
]


def rules(qa: Any = None) -> Rules:
    data = dict(MINIMAL)
    if qa is not None:
        data["qa"] = qa
    return rules_from_mapping(data, "rules.yaml")


# --------------------------------------------------------------------------------------------
# The rules file's `qa` section
# --------------------------------------------------------------------------------------------


def test_the_qa_section_loads_with_its_defaults() -> None:
    assert rules().qa == QaRules(5, ())
    loaded = rules({"sample_per_agent_week": 3, "scorecard": SCORECARD}).qa
    assert loaded == QaRules(
        3,
        (
            QaCriterion("solution", 3.0, True),
            QaCriterion("tone", 2.0, False),
            QaCriterion("greeting", 1.0, False),
        ),
    )
    assert rules({"scorecard": SCORECARD}).qa.sample_per_agent_week == 5


@pytest.mark.parametrize(
    ("qa", "path", "part"),
    [
        ({"sample": 3}, "qa.sample", "unknown key"),
        ({"sample_per_agent_week": 0}, "qa.sample_per_agent_week", "above zero"),
        ({"sample_per_agent_week": "5"}, "qa.sample_per_agent_week", "above zero"),
        ({"scorecard": []}, "qa.scorecard", "needs a criterion"),
        ({"scorecard": [{"weight": 1}]}, "qa.scorecard[0].name", "required"),
        ({"scorecard": [{"name": "tone"}]}, "qa.scorecard[0].weight", "required"),
        ({"scorecard": [{"name": "tone", "weight": 0}]}, "qa.scorecard[0].weight", "above zero"),
        ({"scorecard": [{"name": "tone", "weight": -2}]}, "qa.scorecard[0].weight", "above zero"),
        ({"scorecard": [{"name": "tone", "weight": True}]}, "qa.scorecard[0].weight", "number"),
        (
            {"scorecard": [{"name": "tone", "weight": 1, "critical": "yes"}]},
            "qa.scorecard[0].critical",
            "true or false",
        ),
        (
            {"scorecard": [{"name": "tone", "weight": 1, "critcal": True}]},
            "qa.scorecard[0].critcal",
            "critical",
        ),
        (
            {"scorecard": [{"name": "tone", "weight": 1}, {"name": "tone", "weight": 2}]},
            "qa.scorecard[1].name",
            "duplicate",
        ),
        ([1], "qa", "mapping"),
    ],
)
def test_a_bad_qa_section_is_refused_with_its_path(qa: Any, path: str, part: str) -> None:
    with pytest.raises(RulesError) as caught:
        rules(qa)
    assert caught.value.path == path, str(caught.value)
    assert part in caught.value.reason


# --------------------------------------------------------------------------------------------
# Scorecard arithmetic
# --------------------------------------------------------------------------------------------

QA = QaRules(
    5,
    (
        QaCriterion("solution", 3.0, True),
        QaCriterion("tone", 2.0),
        QaCriterion("greeting", 1.0),
    ),
)


@pytest.mark.parametrize(
    ("scores", "quality", "critical_failed"),
    [
        # 100 x (3 + 2 + 1) / 6
        ({"solution": 1, "tone": 1, "greeting": 1}, 100.0, False),
        # 100 x (3 + 1 + 0) / 6 = 66.666...
        ({"solution": 1, "tone": 0.5, "greeting": 0}, 66.7, False),
        # critical at 0.5 is not a failure: 100 x (1.5 + 2) / 5 = 70 (greeting N/A)
        ({"solution": 0.5, "tone": 1, "greeting": None}, 70.0, False),
        # critical at 0.49: quality 0 whatever the rest
        ({"solution": 0.49, "tone": 1, "greeting": 1}, 0.0, True),
        # all N/A: nothing scored
        ({"solution": None, "tone": None, "greeting": None}, None, False),
        ({}, None, False),
        # only a non-critical criterion: 100 x 0.25
        ({"tone": 0.25}, 25.0, False),
        # half up on an exact decimal: 100 x (2 x 0.1 + 1 x 0.9) / 3 ... = 36.666 -> 36.7;
        # 100 x 0.0005 (tone alone) = 0.05 -> 0.1 (a binary float would round it down)
        ({"tone": 0.0005}, 0.1, False),
        ({"tone": 0.1, "greeting": 0.9}, 36.7, False),
    ],
)
def test_quality_is_the_weighted_mean_with_critical_criteria_and_na(
    scores: dict[str, float | None], quality: float | None, critical_failed: bool
) -> None:
    verdict = score_review(QA, tuple(scores.items()))
    assert verdict.quality == quality
    assert verdict.critical_failed is critical_failed


def test_unknown_criteria_are_named_in_the_reviews_order() -> None:
    assert unknown_criteria(QA, (("speed", 1.0), ("tone", 1.0), ("empathy", None))) == [
        "speed",
        "empathy",
    ]


def test_the_most_active_agent_has_most_replies_and_a_tie_goes_to_the_latest() -> None:
    tally = ()
    assert most_active(tally) == ""
    tally = tally_reply(tally, "anna", 3)
    tally = tally_reply(tally, "boris", 5)
    assert most_active(tally) == "boris"  # 1 each, boris later
    tally = tally_reply(tally, "anna", 7)
    assert most_active(tally) == "anna"  # 2 to 1
    tally = tally_reply(tally, "boris", 9)
    assert most_active(tally) == "boris"  # 2 each, boris later
    assert tally == (("anna", 2, 7), ("boris", 2, 9))


# --------------------------------------------------------------------------------------------
# The desk
# --------------------------------------------------------------------------------------------

MIN = 60_000
T0 = 1_772_432_100_000


def desk() -> Desk:
    loaded = rules({"sample_per_agent_week": 1, "scorecard": SCORECARD})
    pseudo = Pseudonymizer.from_text("quality-test-key")
    return Desk(loaded, pseudo, Masker())


def contact(at: int, session: str, n: int = 1, **extra: Any) -> Contact:
    return Contact(
        at=at,
        channel="chat",
        conversation_id=f"chat:{session}",
        identities=(),
        subject="",
        body="Где мой заказ?",
        channel_message_id=f"{session}:{n}",
        **extra,
    )


def act(at: int, kind: str, who: str, **extra: Any) -> AgentAction:
    return AgentAction(at=at, type=kind, conversation_id="chat:s1", agent_id=who, **extra)  # type: ignore[arg-type]


def events(output: Output, event_type: str) -> list[dict[str, Any]]:
    return [e.data for e in output.events if e.event_type == event_type]


def test_the_desk_names_the_agent_of_every_fact() -> None:
    d = desk()
    d.handle(contact(T0, "s1"))
    d.handle(act(T0 + MIN, "assign", "anna"))
    first = d.handle(act(T0 + 2 * MIN, "reply", "anna"))
    second = d.handle(act(T0 + 3 * MIN, "reply", "boris"))
    note = d.handle(act(T0 + 4 * MIN, "note", "carl"))
    assert events(first, "agent.replied")[0]["first"] is True
    assert events(second, "agent.replied")[0]["first"] is False
    assert events(note, "agent.replied")[0]["first"] is False
    # a tie (1 public reply each): boris replied last; carl's note is no public reply
    assert second.tickets[0].most_active_agent == "boris"
    solved = d.handle(act(T0 + 5 * MIN, "status", "boris", status="solved"))
    assert events(solved, "ticket.solved")[0]["by"] == "boris"
    survey = d.handle(SurveyAnswer(T0 + 6 * MIN, "chat:s1", "csat", 2))
    # after two agents replied, the survey counts for the latest reply's agent, not anna
    assert events(survey, "survey.answered")[0]["agent_id"] == "boris"
    reopened = d.handle(contact(T0 + 7 * MIN, "s1", 2))
    assert events(reopened, "ticket.reopened")[0]["solved_by"] == "boris"


def test_an_answered_calls_reply_belongs_to_the_calls_agent() -> None:
    d = desk()
    out = d.handle(
        Contact(
            at=T0,
            channel="phone",
            conversation_id="phone:abc",
            identities=(),
            subject="",
            body="",
            channel_message_id="c1",
            call_status="answered",
            call_agent_id="dora",
        )
    )
    (reply,) = events(out, "agent.replied")
    assert reply["agent_id"] == "dora" and reply["first"] is True
    assert out.tickets[-1].most_active_agent == "dora"


def test_a_review_is_scored_and_names_the_most_active_agent_when_reviewed() -> None:
    d = desk()
    d.handle(contact(T0, "s1"))
    d.handle(act(T0 + MIN, "reply", "anna"))
    out = d.handle(
        QaReview(T0 + 2 * MIN, "chat:s1#1", "lead", (("solution", 0.5), ("tone", 1.0)), "ok")
    )
    (review,) = events(out, "qa.reviewed")
    assert review["agent_id"] == "anna"
    assert review["quality"] == 70.0 and review["critical_failed"] is False
    assert json.loads(review["scores"]) == {"solution": 0.5, "tone": 1.0}
    assert review["reviewer_id"] == "lead"
    assert out.tickets == () and out.dead_letters == ()
    # the review keeps the agent of its time; boris taking over later changes a new review only
    d.handle(act(T0 + 3 * MIN, "reply", "boris"))
    d.handle(act(T0 + 4 * MIN, "reply", "boris"))
    later = d.handle(QaReview(T0 + 5 * MIN, "chat:s1#1", "lead", (("tone", None),)))
    (again,) = events(later, "qa.reviewed")
    assert again["agent_id"] == "boris"
    assert again["quality"] is None and again["sequence"] > review["sequence"]


@pytest.mark.parametrize(
    ("review", "reason"),
    [
        (QaReview(T0, "chat:zz#1", "lead", (("tone", 1.0),)), "unknown ticket 'chat:zz#1'"),
        (
            QaReview(T0, "chat:s1#1", "lead", (("tone", 1.0), ("speed", 1.0))),
            "unknown criterion 'speed' (the rules' qa.scorecard lists: solution, tone, greeting)",
        ),
    ],
)
def test_a_review_of_an_unknown_ticket_or_criterion_is_a_dead_letter(
    review: QaReview, reason: str
) -> None:
    d = desk()
    d.handle(contact(T0 - MIN, "s1"))
    # refused before it is applied: a runner moves no event time for it (CONTRACT §1)
    assert d.refuses(review)
    assert not d.refuses(QaReview(T0, "chat:s1#1", "lead", (("tone", 1.0),)))
    out = d.handle(review)
    assert out.events == ()
    (letter,) = out.dead_letters
    assert letter.source == "qa"
    assert reason in letter.reason

"""CONTRACT §7 "Agents and quality" replayed through the real command line and checked column by
column against figures worked out by hand (rules: ``tests/fixtures/rules.agents.yaml``,
reporting time zone Europe/Moscow, UTC+3; the first-response target is 1 h, always open; the
QA sample takes 1 unflagged ticket per agent and week).

The story, in Moscow time (Mon = 2026-03-02):

* T1 chat:s1, Mon 10:00. Assigned to anna (no handoff: nobody had it), anna replies 10:10
  (first response), boris 10:20, boris solves 10:30, csat 2 at 10:40. The survey came after two
  agents replied: it counts for boris (the latest public reply), not for anna (the assignee).
  anna and boris have one reply each: a tie, so boris (who replied last) is most active.
* T2 chat:s2, Mon 22:00. anna replies 22:05 and solves 22:10; the customer writes Tue 00:30
  (Mon 21:30 UTC: a later day only in the reporting time zone), which reopens it; anna solves
  again Tue 01:00. Her reopened count is on Tue.
* T3 chat:s3, Mon 11:00. Assigned anna 11:01, boris 11:02 (a handoff out of anna), carl 11:03
  (out of boris): handoff_count 2. carl replies 11:30, solves 11:40; nps 10 at 11:50 -> carl.
* T4 chat:s4, Mon 12:00. boris first replies 13:30 (first response breached at 13:00), solves
  13:40; nps 3 at 13:50 -> boris.
* T5 chat:s5 Mon 14:00 and T6 chat:s6 Mon 16:00: carl replies 10 min after and solves 10 min
  later; nothing to flag (T5's csat 5 at 14:30 is carl's positive answer). T7 chat:s7 Sun 03-08 20:00, carl replies 20:10, solves Mon 03-09
  01:00 (Sun 22:00 UTC: the next ISO week only in the reporting time zone).
* An answered call from +7 495 000-11-22 Mon 15:00 taken by dora: her public reply and first
  response.
* QA: rev1 scores T1 Tue 10:00 with solution 0.49 (critical: quality 0), then again at 11:00
  with solution 0.5, tone 1, greeting N/A: 100 x (3 x 0.5 + 2 x 1) / 5 = 70.0, which replaces
  the first review. rev2 scores T1 at 11:00 with everything N/A: quality NULL. rev1 scores T3
  Wed with 1, 0.5, 0: 100 x 4 / 6 = 66.7, and T4 with solution 0.49: 0, critical failed. rev2
  scores T3 twice at one instant, first with solution 0, then 1, 1, 1: the second (100.0) stands.
* Dead letters: a review of an unknown ticket, one naming a criterion not on the scorecard, one
  with a score of 1.5.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import replay_cli
from tests.support.cli import sql_rows as sql

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "rules.agents.yaml"
KEY = "agents-test-key"


def h(text: str) -> str:
    return hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()[:20]


T = {n: f"chat:s{n}#1" for n in range(1, 8)}
PHONE = f"phone:{h('+74950001122')}#1"


def msk(day: int, clock: str) -> str:
    """An instant given in Moscow time, March 2026."""
    return f"2026-03-{day:02d}T{clock}:00+03:00"


def chat(session: int, n: int, text: str) -> dict[str, Any]:
    return {
        "session_id": f"s{session}",
        "message_id": f"m{n}",
        "visitor": {"id": f"v{session}"},
        "text": text,
    }


def agent(kind: str, session: int, who: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "conversation_id": f"chat:s{session}", "agent_id": who, **extra}


def qa(ticket: str, reviewer: str, **scores: float | None) -> dict[str, Any]:
    return {"ticket_id": ticket, "reviewer_id": reviewer, "scores": scores}


def story() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        # T1
        (msk(2, "10:00"), "chat", chat(1, 1, "Где мой заказ? Не приходит уже неделю")),
        (msk(2, "10:05"), "agent", agent("assign", 1, "anna")),
        (msk(2, "10:10"), "agent", agent("reply", 1, "anna")),
        (msk(2, "10:20"), "agent", agent("reply", 1, "boris")),
        (msk(2, "10:30"), "agent", agent("status", 1, "boris", status="solved")),
        (msk(2, "10:40"), "survey", {"conversation_id": "chat:s1", "kind": "csat", "score": 2}),
        # T2
        (msk(2, "22:00"), "chat", chat(2, 1, "Не могу войти в личный кабинет, помогите")),
        (msk(2, "22:05"), "agent", agent("reply", 2, "anna")),
        (msk(2, "22:10"), "agent", agent("status", 2, "anna", status="solved")),
        (msk(3, "00:30"), "chat", chat(2, 2, "Снова не пускает в кабинет")),
        (msk(3, "01:00"), "agent", agent("status", 2, "anna", status="solved")),
        # T3
        (msk(2, "11:00"), "chat", chat(3, 1, "Как поменять адрес доставки заказа?")),
        (msk(2, "11:01"), "agent", agent("assign", 3, "anna")),
        (msk(2, "11:02"), "agent", agent("assign", 3, "boris")),
        (msk(2, "11:03"), "agent", agent("assign", 3, "carl")),
        (msk(2, "11:30"), "agent", agent("reply", 3, "carl")),
        (msk(2, "11:40"), "agent", agent("status", 3, "carl", status="solved")),
        (msk(2, "11:50"), "survey", {"conversation_id": "chat:s3", "kind": "nps", "score": 10}),
        # T4
        (msk(2, "12:00"), "chat", chat(4, 1, "Почему списали деньги дважды за заказ?")),
        (msk(2, "13:30"), "agent", agent("reply", 4, "boris")),
        (msk(2, "13:40"), "agent", agent("status", 4, "boris", status="solved")),
        (msk(2, "13:50"), "survey", {"conversation_id": "chat:s4", "kind": "nps", "score": 3}),
        # T5, T6, T7
        (msk(2, "14:00"), "chat", chat(5, 1, "Подскажите часы работы пункта выдачи")),
        (msk(2, "14:10"), "agent", agent("reply", 5, "carl")),
        (msk(2, "14:20"), "agent", agent("status", 5, "carl", status="solved")),
        (msk(2, "14:30"), "survey", {"conversation_id": "chat:s5", "kind": "csat", "score": 5}),
        (msk(2, "16:00"), "chat", chat(6, 1, "Можно ли оплатить заказ при получении?")),
        (msk(2, "16:10"), "agent", agent("reply", 6, "carl")),
        (msk(2, "16:20"), "agent", agent("status", 6, "carl", status="solved")),
        (msk(8, "20:00"), "chat", chat(7, 1, "Есть ли доставка в выходные дни?")),
        (msk(8, "20:10"), "agent", agent("reply", 7, "carl")),
        (msk(9, "01:00"), "agent", agent("status", 7, "carl", status="solved")),
        # the answered call
        (
            msk(2, "15:00"),
            "phone",
            {
                "call_id": "c1",
                "caller": "+7 (495) 000-11-22",
                "callee": "+74951234567",
                "status": "answered",
                "started_at": msk(2, "15:00"),
                "duration_s": 120,
                "agent_id": "dora",
            },
        ),
        # QA reviews
        (msk(3, "10:00"), "qa", qa(T[1], "rev1", solution=0.49, tone=1, greeting=1)),
        (msk(3, "11:00"), "qa", qa(T[1], "rev1", solution=0.5, tone=1, greeting=None)),
        (msk(3, "11:00"), "qa", qa(T[1], "rev2", solution=None, tone=None, greeting=None)),
        (msk(4, "09:00"), "qa", qa(T[3], "rev1", solution=1, tone=0.5, greeting=0)),
        (msk(4, "09:30"), "qa", qa(T[4], "rev1", solution=0.49, tone=1, greeting=1)),
        # two reviews of T3 by rev2 at the same instant: the later in the file replaces the first
        (msk(4, "09:45"), "qa", qa(T[3], "rev2", solution=0, tone=1, greeting=1)),
        (msk(4, "09:45"), "qa", qa(T[3], "rev2", solution=1, tone=1, greeting=1)),
        # dead letters
        (msk(4, "10:00"), "qa", qa("chat:nope#1", "rev1", solution=1)),
        (msk(4, "10:01"), "qa", qa(T[5], "rev1", solution=1, speed=1)),
        (msk(4, "10:02"), "qa", qa(T[5], "rev1", solution=1.5)),
    ]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("agents")
    source = root / "input.jsonl"
    lines = [json.dumps({"at": at, "source": s, "payload": p}) for at, s, p in story()]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    replay_cli(RULES, source, root / "wh", env)
    return root / "wh"


ZERO = {
    "public_replies": 0,
    "first_responses": 0,
    "first_responses_breached": 0,
    "solved": 0,
    "reopened": 0,
    "handoffs_out": 0,
    "csat_responses": 0,
    "csat_positive": 0,
    "csat_negative": 0,
    "nps_responses": 0,
    "nps_promoters": 0,
    "nps_detractors": 0,
}


def daily(**figures: int) -> dict[str, int]:
    return {**ZERO, **figures}


EXPECTED_DAILY = {
    ("2026-03-02", "anna"): daily(public_replies=2, first_responses=2, solved=1, handoffs_out=1),
    ("2026-03-02", "boris"): daily(
        public_replies=2,
        first_responses=1,
        first_responses_breached=1,
        solved=2,
        handoffs_out=1,
        csat_responses=1,
        csat_negative=1,
        nps_responses=1,
        nps_detractors=1,
    ),
    ("2026-03-02", "carl"): daily(
        public_replies=3,
        first_responses=3,
        solved=3,
        csat_responses=1,
        csat_positive=1,
        nps_responses=1,
        nps_promoters=1,
    ),
    ("2026-03-02", "dora"): daily(public_replies=1, first_responses=1),
    ("2026-03-03", "anna"): daily(solved=1, reopened=1),
    ("2026-03-08", "carl"): daily(public_replies=1, first_responses=1),
    ("2026-03-09", "carl"): daily(solved=1),
}

DAILY_QUERY = "SELECT * FROM agent_daily ORDER BY day, agent_id"


def _daily(warehouse: Path, env: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    rows = sql(warehouse, DAILY_QUERY, env)
    return {(r["day"], r["agent_id"]): {k: int(r[k]) for k in ZERO} for r in rows}


def test_agent_daily_attributes_every_fact_to_the_agent_who_acted(
    warehouse: Path, env: dict[str, str]
) -> None:
    assert _daily(warehouse, env) == EXPECTED_DAILY


def test_a_survey_after_two_replies_counts_for_the_latest_replier_not_the_assignee(
    warehouse: Path, env: dict[str, str]
) -> None:
    (ticket,) = sql(
        warehouse, f"SELECT agent_id, csat FROM tickets FINAL WHERE ticket_id = '{T[1]}'", env
    )
    assert ticket == {"agent_id": "anna", "csat": 2}
    figures = _daily(warehouse, env)
    assert figures[("2026-03-02", "boris")]["csat_negative"] == 1
    assert figures[("2026-03-02", "anna")]["csat_responses"] == 0


def _sample_row(week: str, agent_id: str, ticket: str, reason: str) -> dict[str, str]:
    return {"week": week, "agent_id": agent_id, "ticket_id": ticket, "reason": reason}


def test_qa_sample_takes_every_flagged_ticket_and_the_smallest_hash_of_the_rest(
    warehouse: Path, env: dict[str, str]
) -> None:
    rows = sql(
        warehouse,
        "SELECT week, agent_id, ticket_id, reason FROM qa_sample ORDER BY week, agent_id, ticket_id",
        env,
    )
    random_pick = min((T[5], T[6]), key=h)
    expected = sorted(
        [
            _sample_row("2026-03-02", "anna", T[2], "reopened"),
            _sample_row("2026-03-02", "boris", T[1], "low_csat"),  # the tie went to boris
            _sample_row("2026-03-02", "boris", T[4], "breached"),
            _sample_row("2026-03-02", "carl", T[3], "handoffs"),
            _sample_row("2026-03-02", "carl", random_pick, "random"),
            _sample_row("2026-03-09", "carl", T[7], "random"),
        ],
        key=lambda r: (r["week"], r["agent_id"], r["ticket_id"]),
    )
    assert rows == expected


def test_qa_reviews_score_the_scorecard_and_a_later_review_replaces_the_earlier(
    warehouse: Path, env: dict[str, str]
) -> None:
    rows = sql(
        warehouse,
        "SELECT ticket_id, reviewer_id, agent_id, at, quality, critical_failed, scores "
        "FROM qa_reviews ORDER BY ticket_id, reviewer_id",
        env,
    )
    got = [
        (
            r["ticket_id"],
            r["reviewer_id"],
            r["agent_id"],
            r["at"],
            r["quality"],
            bool(r["critical_failed"]),
        )
        for r in rows
    ]
    assert got == [
        (T[1], "rev1", "boris", "2026-03-03 08:00:00.000", 70.0, False),
        (T[1], "rev2", "boris", "2026-03-03 08:00:00.000", None, False),
        (T[3], "rev1", "carl", "2026-03-04 06:00:00.000", 66.7, False),
        (T[3], "rev2", "carl", "2026-03-04 06:45:00.000", 100.0, False),
        (T[4], "rev1", "boris", "2026-03-04 06:30:00.000", 0.0, True),
    ]
    assert json.loads(rows[0]["scores"]) == {"greeting": None, "solution": 0.5, "tone": 1.0}


def test_qa_agent_weekly_averages_the_current_reviews(warehouse: Path, env: dict[str, str]) -> None:
    rows = sql(warehouse, "SELECT * FROM qa_agent_weekly ORDER BY week, agent_id", env)
    assert [
        (r["week"], r["agent_id"], int(r["reviews"]), r["quality"], int(r["critical_failed"]))
        for r in rows
    ] == [
        ("2026-03-02", "boris", 3, 35.0, 1),  # 70, NULL (left out of the average) and 0
        ("2026-03-02", "carl", 2, pytest.approx((66.7 + 100) / 2), 0),
    ]


def test_bad_qa_records_are_dead_letters_with_the_reason(
    warehouse: Path, env: dict[str, str]
) -> None:
    rows = sql(warehouse, "SELECT reason FROM dead_letters WHERE source = 'qa' ORDER BY at", env)
    reasons = [r["reason"] for r in rows]
    assert len(reasons) == 3
    assert reasons[0] == "unknown ticket 'chat:nope#1'"
    assert reasons[1] == (
        "unknown criterion 'speed' (the rules' qa.scorecard lists: solution, tone, greeting)"
    )
    assert "1.5" in reasons[2] and "0..1" in reasons[2]


VIEWS = ("agent_daily", "qa_sample", "qa_reviews", "qa_agent_weekly")


def test_a_second_replay_changes_no_view(
    warehouse: Path, env: dict[str, str], tmp_path: Path
) -> None:
    before = {v: sql(warehouse, f"SELECT * FROM {v} ORDER BY tuple(*)", env) for v in VIEWS}
    source = warehouse.parent / "input.jsonl"
    replay_cli(RULES, source, warehouse, env)
    after = {v: sql(warehouse, f"SELECT * FROM {v} ORDER BY tuple(*)", env) for v in VIEWS}
    assert after == before
    assert all(before[v] for v in VIEWS)

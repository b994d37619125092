"""``replay --until T`` then ``sql``: the analysts' questions "SLA achievement by policy last week"
and "CSAT and NPS per day", with days in the rules' reporting time zone (Europe/Moscow, UTC+3).

Rules: tests/fixtures/rules.handworked.yaml (24/7 calendar; standard: first response 1h,
resolution 16h; vip: 15m / 4h). T = Tue 2026-03-10 12:00 MSK, so "last week" is Mon 2 .. Sun 8
March in Moscow. Instants below are Moscow time.

* A (chat): opened Mon 10:00, reply 10:30 (met), solved 11:00 (resolution met).
* B (chat): opened Tue 10:00, reply 11:30 (first response breached at 11:00), solved 12:00 (met).
* C (chat): opened Sun 23:30 (20:30 UTC, still Sunday in Moscow), never answered: by T the first
  response breached at Mon 00:30 and the resolution at Mon 15:30 -> both count for last week.
* D (chat): opened Mon 9 March 01:00 MSK = Sun 22:00 UTC: this week in Moscow (UTC would put it
  in last week) -> not counted.
* G (chat): opened Tue 10 March 09:00: its first response breached at 10:00, before T; its
  resolution is due Wed 01:00, after T, so it is still running.
* E (chat): Wed 11 March, after T: not replayed; nor is a dead letter (unknown source) after
  T, which is counted with it.
* F (telegram, vip customer): opened Thu 10:00, reply 10:10 (met), solved 13:00 (met).
* Surveys: csat 5 for A at Mon 23:30 (day 2nd); csat 2 for B at Wed 00:30 MSK = Tue 21:30 UTC
  (day 4th in Moscow); nps 10 for F and nps 3 for B on Thu (day 5th).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import replay_cli, sql_rows

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "rules.handworked.yaml"
KEY = "until-test-key"
T = "2026-03-10T12:00:00+03:00"
TG = "telegram:" + hmac.new(KEY.encode(), b"111", hashlib.sha256).hexdigest()[:20]


def rec(at: str, source: str, payload: Any) -> str:
    return json.dumps({"at": f"2026-03-{at}+03:00", "source": source, "payload": payload})


def chat(at: str, session: str) -> str:
    payload = {"session_id": session, "message_id": "1", "visitor": {"id": session}, "text": "Help"}
    return rec(at, "chat", payload)


def agent(at: str, conversation: str, kind: str, **extra: Any) -> str:
    payload = {"type": kind, "conversation_id": conversation, "agent_id": "boris", **extra}
    return rec(at, "agent", payload)


def survey(at: str, conversation: str, kind: str, score: int) -> str:
    return rec(at, "survey", {"conversation_id": conversation, "kind": kind, "score": score})


UPDATE = {
    "update_id": 5001,
    "message": {
        "message_id": 77,
        "from": {"id": 111, "is_bot": False, "first_name": "Мария"},
        "chat": {"id": 111, "first_name": "Мария", "type": "private"},
        "date": 1772694000,
        "text": "Нужна помощь",
    },
}

LINES = [
    rec(
        "01T12:00:00",
        "crm",
        {"customer_id": "C-VIP", "tier": "vip", "identities": {"telegram": [111]}},
    ),
    chat("02T10:00:00", "a"),
    agent("02T10:30:00", "chat:a", "reply"),
    agent("02T11:00:00", "chat:a", "status", status="solved"),
    survey("02T23:30:00", "chat:a", "csat", 5),
    chat("03T10:00:00", "b"),
    agent("03T11:30:00", "chat:b", "reply"),
    agent("03T12:00:00", "chat:b", "status", status="solved"),
    survey("04T00:30:00", "chat:b", "csat", 2),
    rec("05T10:00:00", "telegram", UPDATE),
    agent("05T10:10:00", TG, "reply"),
    agent("05T13:00:00", TG, "status", status="solved"),
    survey("05T14:00:00", TG, "nps", 10),
    survey("05T15:00:00", "chat:b", "nps", 3),
    chat("08T23:30:00", "c"),
    chat("09T01:00:00", "d"),
    chat("10T09:00:00", "g"),
    chat("11T09:00:00", "e"),
    # An envelope-level dead letter (unknown source) after T: not replayed either, and counted.
    rec("11T10:00:00", "fax", {}),
]

LAST_WEEK = (
    "SELECT policy, metric, sum(met) AS met_cycles, sum(breached) AS breached_cycles "
    "FROM sla_achievement "
    "WHERE day BETWEEN toMonday(toDate('2026-03-10')) - 7 AND toMonday(toDate('2026-03-10')) - 1 "
    "GROUP BY policy, metric ORDER BY policy, metric"
)


ENV = {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("until")
    source = work / "in.jsonl"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    done = replay_cli(RULES, source, work / "w", ENV, until=T)
    assert "2 records after --until were not replayed" in done.stderr
    return work / "w"


def sql(warehouse: Path, query: str) -> list[dict[str, Any]]:
    return sql_rows(warehouse, query, ENV)


def test_sla_achievement_by_policy_last_week(warehouse: Path) -> None:
    rows = [
        (r["policy"], r["metric"], int(r["met_cycles"]), int(r["breached_cycles"]))
        for r in sql(warehouse, LAST_WEEK)
    ]
    assert rows == [
        ("standard", "first_response", 1, 2),  # A met; B late; C never answered
        ("standard", "resolution", 2, 1),  # A, B solved in time; C breached Monday 15:30
        ("vip", "first_response", 1, 0),
        ("vip", "resolution", 1, 0),
    ]


def test_timers_due_before_until_fired_and_later_ones_did_not(warehouse: Path) -> None:
    rows = sql(
        warehouse,
        "SELECT ticket_id, metric, status, toString(due_at) AS due, "
        "toString(breached_at) AS breached FROM sla_metrics FINAL "
        "WHERE ticket_id IN ('chat:c#1', 'chat:d#1', 'chat:g#1') ORDER BY ticket_id, metric",
    )
    got = [(r["ticket_id"], r["metric"], r["status"], r["due"], r["breached"]) for r in rows]
    assert got == [
        (
            "chat:c#1",
            "first_response",
            "breached",
            "2026-03-08 21:30:00.000",
            "2026-03-08 21:30:00.000",
        ),
        (
            "chat:c#1",
            "resolution",
            "breached",
            "2026-03-09 12:30:00.000",
            "2026-03-09 12:30:00.000",
        ),
        (
            "chat:d#1",
            "first_response",
            "breached",
            "2026-03-08 23:00:00.000",
            "2026-03-08 23:00:00.000",
        ),
        # 16 h from Sun 22:00 UTC is Mon 14:00 UTC = 17:00 MSK, before T (Tue 12:00 MSK).
        (
            "chat:d#1",
            "resolution",
            "breached",
            "2026-03-09 14:00:00.000",
            "2026-03-09 14:00:00.000",
        ),
        (
            "chat:g#1",
            "first_response",
            "breached",
            "2026-03-10 07:00:00.000",
            "2026-03-10 07:00:00.000",
        ),
        ("chat:g#1", "resolution", "active", "2026-03-10 22:00:00.000", None),
    ]


def test_csat_and_nps_per_day_in_the_reporting_time_zone(warehouse: Path) -> None:
    csat = sql(
        warehouse, "SELECT toString(day) AS day, responses, positive FROM csat_daily ORDER BY day"
    )
    assert [(r["day"], int(r["responses"]), int(r["positive"])) for r in csat] == [
        ("2026-03-02", 1, 1),
        ("2026-03-04", 1, 0),  # Tue 21:30 UTC is Wednesday in Moscow
    ]
    nps = sql(
        warehouse,
        "SELECT toString(day) AS day, promoters, passives, detractors FROM nps_daily ORDER BY day",
    )
    assert [
        (r["day"], int(r["promoters"]), int(r["passives"]), int(r["detractors"])) for r in nps
    ] == [
        ("2026-03-05", 1, 0, 1),
    ]


def test_a_dead_letter_after_until_is_not_written(warehouse: Path) -> None:
    assert sql(warehouse, "SELECT count() AS n FROM dead_letters") == [{"n": 0}]

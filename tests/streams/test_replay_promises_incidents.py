"""Promises and incidents (CONTRACT §7) through the real ``supportstream replay`` into the
embedded warehouse: the ``tickets`` columns, ``promises_daily``, the ``incidents`` table and the
events, worked out by hand, and a second replay changing nothing.

The story (UTC; rules ``promises: {percentile: 50, window: 10, min_samples: 2}``,
``incidents: {window: 1h, min_customers: 3, factor: 2, baseline: 1d}``, one round-the-clock
policy with a 1 h first response, reporting time zone UTC), Monday 2026-03-02:

* 09:00 chat a ("question about my order"), answered 09:10 (600 s).
* 09:05 chat b, answered 09:25 (1200 s).
  Both got the target (fewer than 2 samples): promised_by = opened + 1 h, both kept.
* 10:00 chat c: 2 samples (600, 1200), rank ceil(0.5 x 2) = 1 -> 600 s, promised_by 10:10;
  answered 10:10:00 exactly: kept.
* 10:01 chat d: the same estimate, promised_by 10:11; answered 10:30: broken at 10:11 by the
  timer (reply later).
* 12:00, 12:10, 12:20 chats e, f, g "site is down" from three customers: the third opens
  incident outage#1 at 12:20 (no outage before: b = 0); e and f join it.
* 13:20 chat h "down": exactly an hour after the latest, joins (records before timers).
* The replay runs --until 2026-03-02T16:00:00Z: outage#1 closes at 14:20; e..h were never
  answered, so their promises broke at their promised_by.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import replay_cli
from tests.support.cli import sql_rows as sql

RULES = """
version: 1
calendars:
  always: {timezone: UTC, week: {mon: ["00:00-24:00"], tue: ["00:00-24:00"], wed: ["00:00-24:00"],
           thu: ["00:00-24:00"], fri: ["00:00-24:00"], sat: ["00:00-24:00"], sun: ["00:00-24:00"]}}
categories:
  - {name: outage, keywords: ["down"]}
queues:
  - {name: general, default: true}
sla_policies:
  - {name: standard, calendar: always, targets: {first_response: 1h}}
promises: {percentile: 50, window: 10, min_samples: 2}
incidents: {window: 1h, min_customers: 3, factor: 2, baseline: 1d}
"""


def _chat(at: str, session: str, text: str) -> dict[str, Any]:
    return {
        "at": at,
        "source": "chat",
        "payload": {
            "session_id": session,
            "message_id": f"{session}-1",
            "visitor": {"id": f"v-{session}"},
            "text": text,
        },
    }


def _reply(at: str, session: str) -> dict[str, Any]:
    return {
        "at": at,
        "source": "agent",
        "payload": {"type": "reply", "conversation_id": f"chat:{session}", "agent_id": "anna"},
    }


RECORDS = [
    _chat("2026-03-02T09:00:00Z", "a", "question about my order"),
    _chat("2026-03-02T09:05:00Z", "b", "question about my order"),
    _reply("2026-03-02T09:10:00Z", "a"),
    _reply("2026-03-02T09:25:00Z", "b"),
    _chat("2026-03-02T10:00:00Z", "c", "question about my order"),
    _chat("2026-03-02T10:01:00Z", "d", "question about my order"),
    _reply("2026-03-02T10:10:00Z", "c"),
    _reply("2026-03-02T10:30:00Z", "d"),
    _chat("2026-03-02T12:00:00Z", "e", "the site is down"),
    _chat("2026-03-02T12:10:00Z", "f", "down for me too"),
    _chat("2026-03-02T12:20:00Z", "g", "is it down?"),
    _chat("2026-03-02T13:20:00Z", "h", "still down"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("promises")
    rules = root / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    source = root / "input.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": "promises-test-key"}
    wh = root / "wh"
    replay_cli(rules, source, wh, env, until="2026-03-02T16:00:00Z")
    first = _snapshot(wh, env)
    replay_cli(rules, source, wh, env, until="2026-03-02T16:00:00Z")
    assert _snapshot(wh, env) == first  # replayed twice: the same tables, no more rows
    return wh, env


def _snapshot(wh: Path, env: dict[str, str]) -> list[Any]:
    return [
        sql(wh, "SELECT count() AS n FROM supportstream.events", env),
        sql(wh, "SELECT * FROM supportstream.tickets FINAL ORDER BY ticket_id", env),
        sql(wh, "SELECT * FROM supportstream.incidents FINAL ORDER BY incident_id", env),
        sql(wh, "SELECT * FROM supportstream.promises_daily ORDER BY channel", env),
    ]


def test_tickets_carry_their_promise_and_incident(warehouse: tuple[Path, dict[str, str]]) -> None:
    wh, env = warehouse
    rows = sql(
        wh,
        "SELECT ticket_id, toString(promised_by) AS promised_by, promise_estimate_seconds AS e,"
        " promise_basis AS basis, promise_outcome AS outcome, incident_id"
        " FROM supportstream.tickets FINAL ORDER BY ticket_id",
        env,
    )
    assert rows == [
        _t("a", "2026-03-02 10:00:00.000", 3600, "target", "kept", ""),
        _t("b", "2026-03-02 10:05:00.000", 3600, "target", "kept", ""),
        _t("c", "2026-03-02 10:10:00.000", 600, "history", "kept", ""),
        _t("d", "2026-03-02 10:11:00.000", 600, "history", "broken", ""),
        # e..h: samples a..d, values 600 600 1200 1740 (c at 600, d at 1740 s): rank 2 -> 600 s
        _t("e", "2026-03-02 12:10:00.000", 600, "history", "broken", "outage#1"),
        _t("f", "2026-03-02 12:20:00.000", 600, "history", "broken", "outage#1"),
        _t("g", "2026-03-02 12:30:00.000", 600, "history", "broken", "outage#1"),
        _t("h", "2026-03-02 13:30:00.000", 600, "history", "broken", "outage#1"),
    ]


def _t(s: str, by: str, e: float, basis: str, outcome: str, incident: str) -> dict[str, Any]:
    return {
        "ticket_id": f"chat:{s}#1",
        "promised_by": by,
        "e": e,
        "basis": basis,
        "outcome": outcome,
        "incident_id": incident,
    }


def test_the_incidents_table(warehouse: tuple[Path, dict[str, str]]) -> None:
    wh, env = warehouse
    rows = sql(
        wh,
        "SELECT incident_id, category, toString(opened_at) AS opened_at,"
        " toString(closed_at) AS closed_at, tickets, customers, baseline"
        " FROM supportstream.incidents FINAL",
        env,
    )
    assert rows == [
        {
            "incident_id": "outage#1",
            "category": "outage",
            "opened_at": "2026-03-02 12:20:00.000",
            "closed_at": "2026-03-02 14:20:00.000",
            "tickets": 4,
            "customers": 4,
            "baseline": 0,
        }
    ]


def test_promises_daily(warehouse: tuple[Path, dict[str, str]]) -> None:
    wh, env = warehouse
    rows = sql(
        wh,
        "SELECT toString(day) AS day, channel, policy, promises, kept, broken, pending,"
        " median_estimate_seconds AS median FROM supportstream.promises_daily",
        env,
    )
    assert rows == [
        {
            "day": "2026-03-02",
            "channel": "chat",
            "policy": "standard",
            "promises": 8,
            "kept": 3,
            "broken": 5,
            "pending": 0,
            "median": 600,
        }
    ]


def test_the_acknowledgement_and_the_broken_promise_are_events(
    warehouse: tuple[Path, dict[str, str]],
) -> None:
    wh, env = warehouse
    rows = sql(
        wh,
        "SELECT ticket_id, groupArray(event_type) AS types FROM"
        " (SELECT ticket_id, event_type, event_id FROM supportstream.events FINAL"
        "  WHERE ticket_id = 'chat:c#1' AND at = '2026-03-02 10:00:00' ORDER BY event_id)"
        " GROUP BY ticket_id",
        env,
    )
    assert "ticket.acknowledged" in rows[0]["types"]
    broken = sql(
        wh,
        "SELECT ticket_id, toString(at) AS at, JSONExtractRaw(data, 'replied_at') AS replied"
        " FROM supportstream.events FINAL WHERE event_type = 'promise.broken'"
        " AND ticket_id = 'chat:d#1'",
        env,
    )
    assert broken == [{"ticket_id": "chat:d#1", "at": "2026-03-02 10:11:00.000", "replied": "null"}]

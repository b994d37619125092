"""A realistic generated week (400 stories over every source, ru and en texts) replayed through the
real command line with the demo rules, checked against the generator's own ground truth: the
ledger of the tickets it meant to open (``GeneratedTraffic.tickets``), the personal data it
planted and the records it broke on purpose. Nothing here asks the processors what to expect.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loadtest.generator import GeneratedTraffic, generate_week
from tests.support.cli import replay_cli
from tests.support.cli import run_cli as run
from tests.support.cli import sql_rows as sql

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.demo.yaml"
KEY = "generated-week-test-key"
START = datetime.fromisoformat("2026-03-02T00:00:00+03:00")  # a Monday
REPORTING_TZ = ZoneInfo("Europe/Moscow")  # reporting_timezone of the demo rules


@pytest.fixture(scope="module")
def week() -> GeneratedTraffic:
    return generate_week(START, seed=7, tickets=400, pii_key=KEY)


@pytest.fixture(scope="module")
def replayed(
    week: GeneratedTraffic, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("generated-week")
    source = work / "week.jsonl"
    week.write_jsonl(source)
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}
    warehouse = work / "warehouse"
    replay_cli(RULES, source, warehouse, env)
    return source, warehouse, env


def test_the_week_is_realistic(week: GeneratedTraffic) -> None:
    """Several hundred tickets across every source, Russian and English, reopens and follow-ups."""
    assert len(week.tickets) >= 350
    assert {t.channel for t in week.tickets} == {
        "telegram",
        "whatsapp",
        "email",
        "chat",
        "form",
        "vk",
        "phone",
    }
    assert {t.tier_at_opening for t in week.tickets} == {"prospect", "active", "vip"}
    assert len({t.category for t in week.tickets}) >= 7
    assert {t.kind for t in week.tickets} == {"question", "complaint", "thanks"}
    assert any(t.number > 1 for t in week.tickets)  # follow-ups after the reopen window
    text = "\n".join(week.lines())
    assert "Здравствуйте" in text and "Hello" in text


def test_tickets_are_exactly_the_planned_ones(
    week: GeneratedTraffic, replayed: tuple[Path, Path, dict[str, str]]
) -> None:
    _, warehouse, env = replayed
    rows = sql(
        warehouse,
        "SELECT ticket_id, conversation_id, channel, category, kind, tier, "
        "toUnixTimestamp64Milli(opened_at) AS opened_ms FROM tickets FINAL",
        env,
    )
    got = {r["ticket_id"]: r for r in rows}
    assert len(got) == len(rows)  # one row per ticket after FINAL
    planned = {t.ticket_id: t for t in week.tickets}
    assert len(planned) == len(week.tickets)
    assert sorted(set(got) - set(planned)) == []
    assert sorted(set(planned) - set(got)) == []
    wrong = []
    for ticket_id, plan in planned.items():
        row = got[ticket_id]
        expected = (
            plan.conversation_id,
            plan.channel,
            plan.category,
            plan.kind,
            plan.tier_at_opening,
            int(plan.opened_at.timestamp() * 1000),
        )
        actual = (
            row["conversation_id"],
            row["channel"],
            row["category"],
            row["kind"],
            row["tier"],
            int(row["opened_ms"]),
        )
        if actual != expected:
            wrong.append((ticket_id, expected, actual))
    assert wrong == []


def test_contact_reasons_daily_sums_match_the_ledger(
    week: GeneratedTraffic, replayed: tuple[Path, Path, dict[str, str]]
) -> None:
    _, warehouse, env = replayed
    rows = sql(
        warehouse,
        "SELECT toString(day) AS day, category, channel, tier, sum(tickets) AS n "
        "FROM contact_reasons_daily GROUP BY day, category, channel, tier",
        env,
    )
    got = {(r["day"], r["category"], r["channel"], r["tier"]): int(r["n"]) for r in rows}
    expected = Counter(
        (
            t.opened_at.astimezone(REPORTING_TZ).date().isoformat(),
            t.category,
            t.channel,
            t.tier_at_opening,
        )
        for t in week.tickets
    )
    assert got == dict(expected)
    assert len({day for day, *_ in got}) == 7


def test_dead_letters_are_the_malformed_records(
    week: GeneratedTraffic, replayed: tuple[Path, Path, dict[str, str]]
) -> None:
    _, warehouse, env = replayed
    rows = sql(warehouse, "SELECT count() AS n FROM dead_letters FINAL", env)
    assert int(rows[0]["n"]) == len(week.malformed) == 12


def test_no_planted_personal_data_anywhere_in_the_warehouse(
    week: GeneratedTraffic, replayed: tuple[Path, Path, dict[str, str]]
) -> None:
    _, warehouse, env = replayed
    tables = [
        r["name"]
        for r in sql(
            warehouse, "SELECT name FROM system.tables WHERE database = 'supportstream'", env
        )
    ]
    assert {"events", "tickets", "sla_metrics", "dead_letters", "contact_reasons_daily"} <= set(
        tables
    )
    dump = []
    for table in tables:
        done = run(
            "sql",
            "--warehouse",
            str(warehouse),
            "--format",
            "TSV",
            f"SELECT * FROM supportstream.{table}",
            env=env,
        )
        assert done.returncode == 0, (table, done.stderr)
        dump.append(done.stdout)
    text = "\n".join(dump).lower()
    assert "здравствуйте" in text  # texts are stored, masked
    assert len(week.planted_pii) > 100 and len(week.planted_ids) > 100
    leaked = [v for v in [*week.planted_pii, *week.planted_ids] if v.lower() in text]
    assert leaked == []


def test_replaying_again_changes_no_count(
    week: GeneratedTraffic, replayed: tuple[Path, Path, dict[str, str]]
) -> None:
    source, warehouse, env = replayed
    tables = [
        r["name"]
        for r in sql(
            warehouse, "SELECT name FROM system.tables WHERE database = 'supportstream'", env
        )
    ]

    def counts() -> dict[str, int]:
        query = " UNION ALL ".join(
            f"SELECT '{t}' AS t, count() AS n FROM supportstream.{t}" for t in tables
        )
        return {r["t"]: int(r["n"]) for r in sql(warehouse, query, env)}

    before = counts()
    replay_cli(RULES, source, warehouse, env)
    assert counts() == before
    assert before["events"] > 3000

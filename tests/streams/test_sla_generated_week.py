"""A generated week replayed with an SLA-heavy rules file gives ``sla_metrics`` equal, row for row
and field for field, to what the independent oracle in ``tests/streams/sla_oracle.py`` computes
from the input records (CONTRACT §3; docs/SLA.md where §3 is silent).

The week starts Mon 2026-03-23 (Berlin) and holds nights, a weekend, the holiday Fri 2026-03-27
and the spring-forward night Sun 2026-03-29 (the office's Sunday night shift 01:00-05:00 is
3 hours long that night); ``--until`` two days after the week fires every timer still pending.
The test also proves the input covers what §3 is about: pending pauses, reopens within the
window by contacts and by agents, follow-ups after it, warnings and breaches.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loadtest.generator import GeneratedTraffic, generate_week
from tests.streams import sla_oracle as oracle
from tests.support.cli import replay_cli, sql_rows

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "tests" / "fixtures" / "rules.sla-week.yaml"
KEY = "sla-week-test-key"
START = datetime.fromisoformat("2026-03-23T00:00:00+01:00")  # Monday, Berlin winter time
UNTIL = START + timedelta(days=9)  # the week's end + 2 days
HOLIDAY = date(2026, 3, 27)
DST_NIGHT = (
    oracle.to_ms("2026-03-29T01:00:00+01:00"),
    oracle.to_ms("2026-03-29T05:00:00+02:00"),
)
COLUMNS = (
    "ticket_id",
    "metric",
    "cycle",
    "policy",
    "status",
    "started_at",
    "due_at",
    "warned_at",
    "breached_at",
    "fulfilled_at",
    "business_ms",
    "target_seconds",
)


def ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column}) AS {column}"


@pytest.fixture(scope="module")
def week() -> GeneratedTraffic:
    return generate_week(START, seed=11, tickets=200, pii_key=KEY, malformed=4, days=7)


@pytest.fixture(scope="module")
def replayed(
    week: GeneratedTraffic, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    work = tmp_path_factory.mktemp("sla-week")
    source = work / "week.jsonl"
    week.write_jsonl(source)
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}
    warehouse = work / "warehouse"
    replay_cli(RULES, source, warehouse, env, until=UNTIL.isoformat())
    query = (
        "SELECT ticket_id, metric, cycle, policy, status, "
        f"{ms('started_at')}, {ms('due_at')}, {ms('warned_at')}, {ms('breached_at')}, "
        f"{ms('fulfilled_at')}, business_seconds, target_seconds FROM sla_metrics FINAL"
    )
    return source, sql_rows(warehouse, query, env)


@pytest.fixture(scope="module")
def expected(week: GeneratedTraffic, replayed: tuple[Path, list[dict[str, Any]]]) -> oracle.Outcome:
    source, _ = replayed
    records = oracle.read_jsonl(source, {m.line for m in week.malformed})
    policies = oracle.load_policies(RULES, date(2026, 3, 21), date(2026, 4, 8))
    policy_of: dict[str, str | None] = {
        t.ticket_id: "vip" if t.tier_at_opening == "vip" else "standard" for t in week.tickets
    }
    return oracle.expected_sla(
        records,
        key=KEY,
        policy_of=policy_of,
        policies=policies,
        reopen_within_ms=72 * 3_600_000,
        until=int(UNTIL.timestamp() * 1000),
    )


def normalized(row: dict[str, Any]) -> tuple[Any, ...]:
    """A pipeline row in the oracle's terms: instants in ms, business time in whole ms."""
    out = dict(row)
    seconds = out.pop("business_seconds", None)
    out["business_ms"] = None if seconds is None else round(float(seconds) * 1000)
    for column in ("started_at", "due_at", "warned_at", "breached_at", "fulfilled_at"):
        out[column] = None if out[column] is None else int(out[column])
    out["cycle"] = int(out["cycle"])
    out["target_seconds"] = float(out["target_seconds"])
    return tuple(out[c] for c in COLUMNS)


def test_the_oracle_input_covers_section_3(
    week: GeneratedTraffic, expected: oracle.Outcome
) -> None:
    # the oracle's own ticket split agrees with the generator's ledger
    assert set(expected.tickets) == {t.ticket_id for t in week.tickets}
    assert 150 <= len(expected.tickets) <= 250
    tickets = expected.tickets.values()
    assert sum(t.pauses for t in tickets) >= 20  # pending pauses
    assert expected.reopens_by_contact >= 5  # inbound contacts within the reopen window
    assert expected.reopens_by_agent >= 1  # agent status open/pending on a solved ticket
    assert expected.followups >= 3  # contacts after the window open the next ticket
    rows = expected.rows
    by = Counter((r["metric"], r["status"]) for r in rows)
    assert by["first_response", "breached"] >= 10 and by["first_response", "met"] >= 10
    assert by["next_response", "breached"] >= 3 and by["next_response", "met"] >= 3
    assert by["resolution", "breached"] >= 5 and by["resolution", "met"] >= 5
    assert sum(r["warned_at"] is not None and r["breached_at"] is None for r in rows) >= 5
    assert {r["policy"] for r in rows} == {"vip", "standard"}
    office = oracle.load_policies(RULES, date(2026, 3, 21), date(2026, 4, 8))["standard"].calendar
    # cycles started at night or on the weekend, and clocks that run across the holiday and
    # across the DST night
    assert sum(not office.is_open(r["started_at"]) for r in rows if r["policy"] == "standard") >= 20
    holiday = (
        oracle.to_ms(f"{HOLIDAY}T00:00:00+01:00"),
        oracle.to_ms(f"{HOLIDAY + timedelta(days=1)}T00:00:00+01:00"),
    )

    def spans(row: dict[str, Any], window: tuple[int, int]) -> bool:
        end = row["fulfilled_at"] or row["breached_at"] or row["due_at"]
        return bool(
            row["policy"] == "standard" and row["started_at"] < window[0] and end > window[1]
        )

    assert sum(spans(r, holiday) for r in rows) >= 3
    assert sum(spans(r, DST_NIGHT) for r in rows) >= 3


def test_sla_metrics_equal_the_oracle(
    replayed: tuple[Path, list[dict[str, Any]]], expected: oracle.Outcome
) -> None:
    _, rows = replayed
    got = sorted(normalized(r) for r in rows)
    assert len({g[:3] for g in got}) == len(got)  # one row per (ticket, metric, cycle) after FINAL
    want = sorted(tuple(r[c] for c in COLUMNS) for r in expected.rows)
    got_by_key = {g[:3]: g for g in got}
    want_by_key = {w[:3]: w for w in want}
    assert sorted(set(got_by_key) - set(want_by_key)) == [], "cycles only the pipeline has"
    assert sorted(set(want_by_key) - set(got_by_key)) == [], "cycles only the oracle has"
    different = [
        {
            "key": key,
            **{
                c: (w, g)
                for c, w, g in zip(COLUMNS, want_by_key[key], got_by_key[key], strict=True)
                if w != g
            },
        }
        for key in sorted(want_by_key)
        if want_by_key[key] != got_by_key[key]
    ]
    assert different == [], f"{len(different)} cycles differ (oracle, pipeline): {different[:5]}"

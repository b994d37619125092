"""Languages, skills, presence and queues that wait, end to end through `supportstream replay`
and the warehouse (CONTRACT §4 `language`, §7), checked against a story worked out by hand from
``tests/fixtures/rules.routing.yaml``.

All times 2026-01-05 UTC. olga (general, cap 1), john (general, cap 1, en+billing), hans
(europe, cap 2, de+en), marie (europe, cap 2, fr+es); en/de/fr/es tickets require that skill.

* 08:00 john goes offline (his shift starts later).
* 08:01 c1 ru outage -> P1 general -> olga (full now).
* 08:02 c2 en invoice -> billing, P3 general, needs en: john is offline -> waits.
* 08:03 c3 ru question -> P3 general -> waits (olga full).
* 08:04 c4 ru outage -> P1 general -> waits.
* 08:05 c5 de invoice -> P2 europe, needs de -> hans.  08:06 c6 fr -> marie.  08:07 c7 es
  invoice -> marie (needs es).
* 08:08 c8 "ok" -> und, P3 general -> waits.  08:09 c9 "счёт 12345" -> billing + und ->
  queue unstaffed, which no agent serves: no agent and it never waits.
* 09:00 john online -> serve general: c4 (P1) first -> john; then nobody has room.
* 09:10 olga solves c1 -> c2 needs en, olga lacks it; c3 -> olga.
* 09:20 john solves c4 -> c2 -> john.
* 09:30 olga offline: c3 is still new -> loses olga (no handoff) and waits again.
* 09:40 c8 assigned by hand to lead -> stops waiting.
* 10:00 john replies to c2 and solves it -> c3 -> john.
* 10:05 c10 en -> needs en; john is full, olga offline -> waits (still waiting at the end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import replay_cli, run_cli, sql_rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RULES = FIXTURES / "rules.routing.yaml"
DAY = "2026-01-05"

ANALYTICS = Path(__file__).resolve().parents[2] / "docs" / "ANALYTICS.md"


def documented_query(heading: str) -> str:
    """The SQL block that follows the paragraph starting with ``heading`` in ANALYTICS.md."""
    text = ANALYTICS.read_text()
    after = text[text.index(heading) :]
    return after.split("```sql\n", 1)[1].split("```", 1)[0]


def chat(time: str, session: str, text: str) -> dict[str, Any]:
    return {
        "at": f"{DAY}T{time}:00Z",
        "source": "chat",
        "payload": {
            "session_id": session,
            "message_id": f"{session}-1",
            "visitor": {"id": f"v-{session}"},
            "text": text,
        },
    }


def agent(time: str, **payload: Any) -> dict[str, Any]:
    return {"at": f"{DAY}T{time}:00Z", "source": "agent", "payload": payload}


def presence(time: str, agent_id: str, status: str) -> dict[str, Any]:
    return agent(time, type="presence", agent_id=agent_id, status=status)


def solve(time: str, agent_id: str, session: str) -> dict[str, Any]:
    return agent(
        time, type="status", conversation_id=f"chat:{session}", agent_id=agent_id, status="solved"
    )


STORY = [
    presence("08:00", "john", "offline"),
    chat("08:01", "c1", "Здравствуйте, у меня не работает приложение, помогите"),
    chat("08:02", "c2", "Hello, where is the invoice for my December order?"),
    chat("08:03", "c3", "Подскажите, пожалуйста, как изменить адрес доставки"),
    chat("08:04", "c4", "Добрый день, у меня не работает оплата картой"),
    chat("08:05", "c5", "Guten Tag, meine Rechnung für Dezember ist leider falsch"),
    chat("08:06", "c6", "Bonjour, je n'arrive pas à me connecter à mon compte"),
    chat("08:07", "c7", "Hola, no puedo pagar la factura con mi tarjeta"),
    chat("08:08", "c8", "ok"),
    chat("08:09", "c9", "счёт 12345"),
    presence("09:00", "john", "online"),
    solve("09:10", "olga", "c1"),
    solve("09:20", "john", "c4"),
    presence("09:30", "olga", "offline"),
    agent("09:40", type="assign", conversation_id="chat:c8", agent_id="lead"),
    agent("10:00", type="reply", conversation_id="chat:c2", agent_id="john"),
    solve("10:00", "john", "c2"),
    chat("10:05", "c10", "Hi, my account is blocked since this morning, please help"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("routing")
    source = root / "story.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in STORY))
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": "routing-test-key"}
    replay_cli(RULES, source, root / "warehouse", env)
    return root / "warehouse", env


def test_tickets_have_their_language_and_agent(warehouse: tuple[Path, dict[str, str]]) -> None:
    path, env = warehouse
    rows = sql_rows(
        path,
        "SELECT ticket_id, language, priority, queue, agent_id, status, handoff_count "
        "FROM supportstream.tickets FINAL ORDER BY ticket_id",
        env,
    )
    got = {
        r["ticket_id"]: (r["language"], r["priority"], r["queue"], r["agent_id"], r["status"])
        for r in rows
    }
    assert got == {
        "chat:c1#1": ("ru", "P1", "general", "olga", "solved"),
        "chat:c10#1": ("en", "P3", "general", "", "new"),
        "chat:c2#1": ("en", "P3", "general", "john", "solved"),
        "chat:c3#1": ("ru", "P3", "general", "john", "new"),
        "chat:c4#1": ("ru", "P1", "general", "john", "solved"),
        "chat:c5#1": ("de", "P2", "europe", "hans", "new"),
        "chat:c6#1": ("fr", "P2", "europe", "marie", "new"),
        "chat:c7#1": ("es", "P2", "europe", "marie", "new"),
        "chat:c8#1": ("und", "P3", "general", "lead", "new"),
        "chat:c9#1": ("und", "P3", "unstaffed", "", "new"),
    }
    assert {r["ticket_id"]: r["handoff_count"] for r in rows}["chat:c3#1"] == 0


def test_the_events_say_when_tickets_waited(warehouse: tuple[Path, dict[str, str]]) -> None:
    path, env = warehouse
    rows = sql_rows(
        path,
        "SELECT ticket_id, event_type, toString(at) AS at, JSONExtractString(data, 'reason') AS reason, "
        "JSONExtractString(data, 'agent_id') AS agent FROM supportstream.events FINAL "
        "WHERE event_type LIKE 'ticket.waiting_%' ORDER BY at, event_id",
        env,
    )
    got = [
        (
            r["ticket_id"].split(":")[1][:-2],
            r["event_type"][15:],
            r["at"][11:16],
            r["reason"],
            r["agent"],
        )
        for r in rows
    ]
    assert sorted(got, key=lambda g: (g[2], g[0], g[1])) == sorted(
        [
            ("c2", "started", "08:02", "no_agent", ""),
            ("c3", "started", "08:03", "no_agent", ""),
            ("c4", "started", "08:04", "no_agent", ""),
            ("c8", "started", "08:08", "no_agent", ""),
            ("c4", "stopped", "09:00", "assigned", "john"),
            ("c3", "stopped", "09:10", "assigned", "olga"),
            ("c2", "stopped", "09:20", "assigned", "john"),
            ("c3", "started", "09:30", "agent_offline", ""),
            ("c8", "stopped", "09:40", "assigned", "lead"),
            ("c3", "stopped", "10:00", "assigned", "john"),
            ("c10", "started", "10:05", "no_agent", ""),
        ],
        key=lambda g: (g[2], g[0], g[1]),
    )


def test_the_documented_time_to_assign_query(warehouse: tuple[Path, dict[str, str]]) -> None:
    path, env = warehouse
    # general: c1 0 s, c4 56 min, c3 67 min (to olga), c2 78 min, c8 92 min (by hand).
    rows = sql_rows(path, documented_query("Time to assign per queue"), env)
    assert [
        (r["queue"], r["assigned"], r["at_once"], r["avg_seconds"], r["max_seconds"]) for r in rows
    ] == [("europe", 3, 3, 0, 0), ("general", 5, 1, 3516, 5520)]
    # p90 of 0, 3360, 4020, 4680, 5520 s (exact quantile, by position): 5520
    assert rows[1]["p90_seconds"] == 5520


def test_the_documented_waiting_now_query(warehouse: tuple[Path, dict[str, str]]) -> None:
    path, env = warehouse
    rows = sql_rows(path, documented_query("Tickets waiting for an agent right now"), env)
    assert rows == [{"queue": "general", "waiting": 1, "waiting_since": "2026-01-05 10:05:00.000"}]


def test_check_config_warns_about_a_required_skill_nobody_has(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES.read_text().replace(
            "{when: {language: es}, require: [es]}", "{when: {language: es}, require: [es, it]}"
        )
    )
    done = run_cli("check-config", str(rules), env=os.environ)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert f'{rules}: warning: skills[3].require: no agent has skill "it"' in done.stderr


def test_check_config_refuses_a_bad_skills_entry_with_its_path(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.read_text().replace("prefer: [billing]", "prefer: billing, needs: [x]"))
    done = run_cli("check-config", str(rules), env=os.environ)
    assert done.returncode == 2
    assert "skills[4].needs: unknown key" in done.stderr

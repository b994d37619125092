"""The command line as a user meets it: exit codes, messages without tracebacks, the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "tests" / "fixtures" / "rules.handworked.yaml"


def run(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": "cli-test-key", "SUPPORTSTREAM_METRICS_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )


def test_check_config_accepts_the_examples() -> None:
    for name in ("rules.yaml", "rules.demo.yaml", "rules.minimal.yaml"):
        done = run("check-config", str(REPO / "examples" / name))
        assert done.returncode == 0, done.stderr
        assert "OK" in done.stdout


def test_a_broken_rules_file_is_refused_with_the_place_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.read_text().replace("first_response: 1h", "first_response: 1x"))
    done = run("check-config", str(broken))
    assert done.returncode == 2
    assert "broken.yaml" in done.stderr
    assert "sla_policies[1].targets.first_response" in done.stderr
    assert "Traceback" not in done.stderr
    source = tmp_path / "in.jsonl"
    source.write_text("")
    done = run(
        "replay", "--rules", str(broken), "--input", str(source), "--warehouse", str(tmp_path / "w")
    )
    assert done.returncode == 2
    assert "sla_policies[1].targets.first_response" in done.stderr
    assert not (tmp_path / "w").exists()  # refused before anything runs


def test_bad_usage_exits_2_and_other_failures_exit_1(tmp_path: Path) -> None:
    assert run("replay", "--rules", str(RULES)).returncode == 2  # --input missing
    assert run("frobnicate").returncode == 2
    done = run(
        "replay",
        "--rules",
        str(RULES),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--until",
        "tomorrow",
    )
    assert done.returncode == 2 and "--until" in done.stderr
    done = run("replay", "--rules", str(RULES), "--input", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2 and "not found" in done.stderr  # bad usage, as the contract says
    for path, said in ((tmp_path / "missing.jsonl", "not found"), (tmp_path, "a directory")):
        done = run("publish", "--input", str(path))  # said before connecting to any broker
        assert done.returncode == 2 and said in done.stderr, done.stderr
    done = run("sql", "--warehouse", str(tmp_path / "nowhere"), "SELECT 1")
    assert done.returncode == 1 and "no warehouse" in done.stderr


def test_sql_errors_are_one_line_with_clickhouse_s_message(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("")
    warehouse = tmp_path / "w"
    assert (
        run(
            "replay", "--rules", str(RULES), "--input", str(source), "--warehouse", str(warehouse)
        ).returncode
        == 0
    )
    done = run("sql", "--warehouse", str(warehouse), "SELECT nope FROM tickets")
    assert done.returncode == 1
    assert "nope" in done.stderr and "Traceback" not in done.stderr
    done = run(
        "sql",
        "--warehouse",
        str(warehouse),
        "--format",
        "CSVWithNames",
        "SELECT count() AS n FROM tickets",
    )
    assert done.returncode == 0 and done.stdout.splitlines() == ['"n"', "0"]


@pytest.mark.slow
def test_demo_replays_a_week_and_reports(tmp_path: Path) -> None:
    done = run("demo", "--warehouse", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    for section in (
        "Top contact reasons",
        "Tickets per channel",
        "Tickets per queue and priority",
        "SLA achievement by policy",
        "CSAT and NPS",
        "Agents",
        "Tickets per language",
        "Waiting for an agent, by priority",
        "Time to assign per queue",
        "Dead letters",
    ):
        assert f"== {section} ==" in done.stdout
    assert "billing" in done.stdout and "telegram" in done.stdout
    # the demo's traffic holds QA reviews: the agents table shows them (CONTRACT §7)
    agents = done.stdout.split("== Agents ==")[1].split("== Dead letters ==")[0]
    assert "qa_reviews" in agents and "a.ivanova" in agents
    # Shifts: the night's tickets waited and the morning logins served them, P1 first.
    waiting = done.stdout.split("== Waiting for an agent, by priority ==")[1].split("==")[0]
    assert "P1" in waiting and "P3" in waiting


@pytest.mark.slow
def test_demo_runs_live_for_its_duration(tmp_path: Path) -> None:
    done = run("demo", "--duration", "6s", "--rate", "3600", "--warehouse", str(tmp_path / "live"))
    assert done.returncode == 0, done.stderr
    assert "live run:" in done.stdout
    contacts = int(done.stdout.split("live run:")[1].split("records, ")[1].split(" contacts")[0])
    assert contacts > 0


def test_half_an_emoji_escaped_in_json_is_kept_as_a_replacement_not_a_crash(
    tmp_path: Path,
) -> None:
    """JSON can escape half of a surrogate pair (a client cut an emoji in two); no UTF-8 text
    can hold it. It must not stop the run at the warehouse insert: the character becomes
    U+FFFD and the rest of the message is kept."""
    from tests.support.cli import sql_rows

    source = tmp_path / "half-emoji.jsonl"
    source.write_text(
        '{"at":"2026-09-07T10:00:00Z","source":"chat","payload":{"session_id":"s-1",'
        '"message_id":"m-1","visitor":{"id":"v-1"},"text":"where is my order \\ud83d?"}}\n',
        encoding="utf-8",
    )
    warehouse = tmp_path / "warehouse"
    done = run(
        "replay", "--rules", str(RULES), "--input", str(source), "--warehouse", str(warehouse)
    )
    assert done.returncode == 0, done.stderr
    assert "1 contacts" in done.stdout
    env = {**os.environ, "SUPPORTSTREAM_PII_KEY": "cli-test-key"}
    rows = sql_rows(
        warehouse,
        "SELECT JSONExtractString(data, 'text') AS text FROM supportstream.events "
        "WHERE event_type = 'contact.received'",
        env,
    )
    assert rows == [{"text": "where is my order \ufffd?"}]


def _view_sql(warehouse: Path, view: str) -> str:
    done = run(
        "sql",
        "--warehouse",
        str(warehouse),
        "--format",
        "TSVRaw",
        "SELECT create_table_query FROM system.tables "
        f"WHERE database = 'supportstream' AND name = '{view}'",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_migrate_with_the_workers_rules_gives_the_views_their_time_zone_and_sample(
    tmp_path: Path,
) -> None:
    """Production's views are replay's (CONTRACT §7): `migrate --rules` creates the daily and
    agents' views with the rules' reporting_timezone and qa.sample_per_agent_week, and a bare
    `migrate` (the sink runs one at start) leaves them so."""
    warehouse = tmp_path / "wh"
    agents_rules = REPO / "tests" / "fixtures" / "rules.agents.yaml"  # Moscow, a sample of 1
    done = run("migrate", "--no-topics", "--warehouse", f"chdb://{warehouse}")
    assert done.returncode == 0, done.stderr
    assert "'UTC'" in _view_sql(warehouse, "agent_daily")
    assert "rank <= 5" in _view_sql(warehouse, "qa_sample")
    for args in (("--rules", str(agents_rules)), ()):
        done = run("migrate", "--no-topics", "--warehouse", f"chdb://{warehouse}", *args)
        assert done.returncode == 0, done.stderr
        for view in ("agent_daily", "qa_sample", "qa_agent_weekly", "promises_daily"):
            assert "'Europe/Moscow'" in _view_sql(warehouse, view), view
        assert "rank <= 1" in _view_sql(warehouse, "qa_sample")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nreporting_timezone: Mars/Olympus\n")
    done = run(
        "migrate", "--no-topics", "--warehouse", f"chdb://{warehouse}", "--rules", str(broken)
    )
    assert done.returncode == 2
    assert "reporting_timezone" in done.stderr and "Traceback" not in done.stderr


def test_replay_into_a_warehouse_another_process_holds_exits_1_naming_it(tmp_path: Path) -> None:
    # replay opens its warehouse in its inserts' thread while it indexes the input: a
    # warehouse it cannot open still fails the command with the reason, and nothing else.
    from tests.support.warehouse import held_warehouse

    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"at":"2026-03-02T10:00:00Z","source":"chat","payload":{"session_id":"s1",'
        '"message_id":"m1","visitor":{"id":"v1"},"text":"hello"}}\n'
    )
    warehouse = tmp_path / "held"
    with held_warehouse(warehouse) as holder:
        done = run(
            "replay", "--rules", str(RULES), "--input", str(source), "--warehouse", str(warehouse)
        )
    assert done.returncode == 1
    assert "in use by another process" in done.stderr and f"pid {holder}" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_says_how_the_domain_runs() -> None:
    from processors.native import describe

    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"supportstream 0.1.0; {describe()}\n"

"""``supportstream whatif`` on a generated week: the new rules shorten one SLA target and widen
one queue rule, and every difference whatif reports is checked against two plain
``supportstream replay`` runs of the same input, one per rules file, read with ``sql``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.generator import generate_week
from tests.support.browser import CHROMIUM, chart_marks, render
from tests.support.cli import replay_cli, run_cli, sql_rows

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.demo.yaml"
KEY = "whatif-test-key"
START = datetime.fromisoformat("2026-03-02T00:00:00+03:00")  # a Monday
UNTIL = "2026-03-20T00:00:00+03:00"  # after every timer of the week
FIELDS = ("category", "kind", "priority", "queue", "sla_policy")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("whatif")
    source = work / "week.jsonl"
    generate_week(START, seed=5, tickets=150, pii_key=KEY).write_jsonl(source)
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    # One queue rule: feature requests go to logistics too. One SLA target: the standard
    # first response is due in 30 minutes instead of an hour.
    for queue in rules["queues"]:
        if queue["name"] == "logistics":
            queue["when"] = {"category": ["delivery", "feature_request"]}
    for policy in rules["sla_policies"]:
        if policy["name"] == "standard":
            policy["targets"]["first_response"] = "30m"
    new_rules = work / "new.yaml"
    new_rules.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    out = work / "out"
    done = run_cli(
        "whatif",
        "--rules",
        str(new_rules),
        "--baseline",
        str(RULES),
        "--input",
        str(source),
        "--until",
        UNTIL,
        "--out",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    replay_cli(RULES, source, work / "baseline", env, until=UNTIL)
    replay_cli(new_rules, source, work / "new", env, until=UNTIL)
    return {
        "text": done.stdout,
        "result": json.loads((out / "whatif.json").read_text(encoding="utf-8")),
        "html": (out / "whatif.html").read_text(encoding="utf-8"),
        "warehouses": {"baseline": work / "baseline", "new": work / "new"},
        "source": source,
        "new_rules": new_rules,
        "out": out,
        "work": work,
    }


def _tickets(warehouse: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = sql_rows(warehouse, f"SELECT ticket_id, {', '.join(FIELDS)} FROM tickets FINAL", env)
    return {r["ticket_id"]: r for r in rows}


def test_queue_and_priority_counts_are_the_two_replays(
    case: dict[str, Any], env: dict[str, str]
) -> None:
    expected = {}
    for side, warehouse in case["warehouses"].items():
        rows = sql_rows(
            warehouse,
            "SELECT queue, priority, count() AS n FROM tickets FINAL GROUP BY queue, priority",
            env,
        )
        expected[side] = {(r["queue"], r["priority"]): int(r["n"]) for r in rows}
    got = case["result"]["queues_priorities"]
    keys = set(expected["baseline"]) | set(expected["new"])
    assert {(r["queue"], r["priority"]) for r in got} == keys
    for row in got:
        key = (row["queue"], row["priority"])
        assert row["baseline"] == expected["baseline"].get(key, 0)
        assert row["new"] == expected["new"].get(key, 0)
        assert row["change"] == row["new"] - row["baseline"]
    moved = {r["queue"]: r["change"] for r in got if r["change"]}
    assert moved.get("logistics", 0) > 0 and sum(moved.values()) == 0


def test_sla_per_policy_and_metric_is_the_two_replays(
    case: dict[str, Any], env: dict[str, str]
) -> None:
    expected = {}
    for side, warehouse in case["warehouses"].items():
        rows = sql_rows(
            warehouse,
            "SELECT policy, metric, sum(met) AS m, sum(breached) AS b FROM sla_achievement "
            "GROUP BY policy, metric",
            env,
        )
        expected[side] = {(r["policy"], r["metric"]): (int(r["m"]), int(r["b"])) for r in rows}
    got = {(r["policy"], r["metric"]): r for r in case["result"]["sla"]}
    assert set(got) == set(expected["baseline"]) | set(expected["new"])
    for key, row in got.items():
        for side in ("baseline", "new"):
            met, breached = expected[side][key]
            assert (row[side]["met"], row[side]["breached"]) == (met, breached), (key, side)
            achievement = row[side]["achievement"]
            assert achievement == (round(met / (met + breached), 4) if met + breached else None)
    # Only the target that changed moves: more standard first responses breach.
    changed = {k for k, r in got.items() if r["change"]["met"] or r["change"]["breached"]}
    assert changed == {("standard", "first_response")}
    assert got[("standard", "first_response")]["change"]["breached"] > 0


def test_changed_tickets_are_the_two_replays(case: dict[str, Any], env: dict[str, str]) -> None:
    before = _tickets(case["warehouses"]["baseline"], env)
    after = _tickets(case["warehouses"]["new"], env)
    assert set(before) == set(after)
    diffs = {
        t: {f: [before[t][f], after[t][f]] for f in FIELDS if before[t][f] != after[t][f]}
        for t in before
    }
    diffs = {t: d for t, d in diffs.items() if d}
    changed = case["result"]["changed"]
    assert changed["tickets"] == len(diffs) > 0
    assert changed["compared"] == len(before)
    # Only routing moved, and only feature requests, from the default queue to logistics.
    assert changed["per_field"] == {"queue": len(diffs)}
    assert all(before[t]["category"] == "feature_request" for t in diffs)
    transitions = Counter((a, b) for d in diffs.values() for a, b in [d["queue"]])
    assert {(r["from"], r["to"]): r["tickets"] for r in changed["transitions"]} == transitions
    assert changed["examples"]
    for example in changed["examples"]:
        assert diffs[example["ticket_id"]] == example["changes"]
    assert changed["only_in_baseline"]["tickets"] == changed["only_in_new"]["tickets"] == 0


def test_the_text_and_the_html_say_the_same(case: dict[str, Any]) -> None:
    changed = case["result"]["changed"]
    text = case["text"]
    assert f"Tickets whose classification or routing changed: {changed['tickets']}" in text
    assert "standard  first_response" in text
    assert "none (neither rules file makes promises)" in text or case["result"]["promises"]
    example = changed["examples"][0]["ticket_id"]
    assert example in text and example in case["html"]
    assert 'id="chart-whatif-queues"' in case["html"] and 'id="chart-whatif-sla"' in case["html"]


def test_a_rerun_writes_the_same_files(case: dict[str, Any], env: dict[str, str]) -> None:
    out = case["work"] / "again"
    done = run_cli(
        "whatif",
        "--rules",
        str(case["new_rules"]),
        "--baseline",
        str(RULES),
        "--input",
        str(case["source"]),
        "--until",
        UNTIL,
        "--out",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    again = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    first = dict(case["result"])
    assert {k: v for k, v in again.items()} == first
    assert (out / "whatif.html").read_text(encoding="utf-8") == case["html"]


def test_a_refused_rules_file_exits_2_and_names_it(
    case: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nqueues: [{name: x}]\nsla_policies: nope\n")
    done = run_cli(
        "whatif",
        "--rules",
        str(bad),
        "--baseline",
        str(RULES),
        "--input",
        str(case["source"]),
        "--out",
        str(tmp_path / "out"),
        env=env,
    )
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    done = run_cli(
        "whatif",
        "--rules",
        str(RULES),
        "--baseline",
        str(RULES),
        "--input",
        str(tmp_path / "missing.jsonl"),
        env=env,
    )
    # As in replay (docs/REPLAY.md): an --input naming nothing readable is bad usage.
    assert done.returncode == 2 and "not found" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli(
        "whatif", "--rules", str(RULES), "--baseline", str(RULES), "--input", str(tmp_path), env=env
    )
    assert done.returncode == 2 and "is a directory" in done.stderr


def test_standard_input_is_read_once_for_both_replays(
    case: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    """``--input -`` (``zcat history.jsonl.gz | supportstream whatif ... --input -``) gives
    what the file gives: both replays read the same records."""
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "whatif",
            "--rules",
            str(case["new_rules"]),
            "--baseline",
            str(RULES),
            "--input",
            "-",
            "--until",
            UNTIL,
            "--out",
            str(out),
        ],
        input=case["source"].read_bytes(),
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    got = json.loads((out / "whatif.json").read_text(encoding="utf-8"))
    assert got["input"] == "-"
    assert {k: v for k, v in got.items() if k != "input"} == {
        k: v for k, v in case["result"].items() if k != "input"
    }


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run `make system-deps`")
def test_the_html_renders_in_a_real_browser(case: dict[str, Any]) -> None:
    shots = Path(os.environ.get("SUPPORTSTREAM_SCREENSHOTS", str(case["work"])))
    shots.mkdir(parents=True, exist_ok=True)
    rendered = render(case["out"] / "whatif.html", shots / "whatif.png", height=2600)
    assert rendered.script_errors == ""
    marks = chart_marks(rendered.dom)
    assert set(marks) == {"chart-whatif-queues", "chart-whatif-sla"}
    assert all(n > 0 for n in marks.values()), marks


def test_promise_estimates_are_the_two_replays(case: dict[str, Any], env: dict[str, str]) -> None:
    """Per channel and policy: promises made and their median estimate, as the
    ``ticket.acknowledged`` events of each plain replay say (none when the rules promise
    nothing)."""
    query = (
        "SELECT t.channel AS channel, t.sla_policy AS policy, count() AS n, "
        "quantileExactLow(0.5)(JSONExtractFloat(e.data, 'estimate_seconds')) AS median "
        "FROM events AS e FINAL INNER JOIN (SELECT ticket_id, channel, sla_policy FROM tickets "
        "FINAL) AS t ON t.ticket_id = e.ticket_id WHERE e.event_type = 'ticket.acknowledged' "
        "GROUP BY channel, policy"
    )
    expected = {
        side: {
            (r["channel"], r["policy"]): (int(r["n"]), float(r["median"]))
            for r in sql_rows(warehouse, query, env)
        }
        for side, warehouse in case["warehouses"].items()
    }
    got = case["result"]["promises"]
    # rules.demo.yaml makes promises: none found would prove nothing.
    assert got and expected["baseline"] and expected["new"]
    assert {(r["channel"], r["policy"]) for r in got} == set(expected["baseline"]) | set(
        expected["new"]
    )
    for row in got:
        key = (row["channel"], row["policy"])
        for side in ("baseline", "new"):
            n, median = expected[side].get(key, (0, None))
            assert row[side]["promises"] == n
            assert row[side]["median_estimate_seconds"] == median
    # The standard first_response target went from 1 h to 30 min: where a channel has too
    # little history, its promises use the target, so the median estimate halves.
    standard = [r for r in got if r["policy"] == "standard"]
    assert any(
        (r["baseline"]["median_estimate_seconds"], r["new"]["median_estimate_seconds"])
        == (3600.0, 1800.0)
        for r in standard
    )
    assert all(r["baseline"] == r["new"] for r in got if r["policy"] == "vip")

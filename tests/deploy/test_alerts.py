"""The alert rules: promtool accepts them, every alert has promtool unit tests that see it fire
and stay quiet, every alert is labelled for routing and links its runbook section, and the
rules name only metrics the pipeline exports."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.paths import (
    CONTRACT_METRICS,
    DEPLOY,
    PROMTOOL,
    exported_metric_names,
    metric_names,
)

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
RUNBOOK = DEPLOY / "RUNBOOK.md"

needs_promtool = pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool not installed")


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", ALERT_TESTS.name],
        capture_output=True,
        text=True,
        cwd=ALERT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a not-firing test"


def test_the_contract_minimum_of_alerts_is_there() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {
        "SupportstreamP1SlaBreach",
        "SupportstreamSlaBreachRateHigh",
        "SupportstreamFirstResponsesLate",
        "SupportstreamPipelineLag",
        "SupportstreamDeadLettersRising",
        "SupportstreamSinkFailing",
        "SupportstreamPromisesBroken",
        "SupportstreamIncidentOpen",
    } <= names


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_is_routable_and_links_its_runbook_section() -> None:
    anchors = {
        slug(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")
    }
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["labels"]["team"] in {"support-ops", "sre", "integrations"}, name
        assert rule["annotations"]["summary"], name
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "deploy/RUNBOOK.md", name
        assert anchor == name.lower() and anchor in anchors, name


def test_the_p1_breach_alert_fires_without_waiting() -> None:
    (rule,) = [r for r in rules() if r["alert"] == "SupportstreamP1SlaBreach"]
    assert rule.get("for", "0s") in ("0s", "0m")


def test_rules_name_only_metrics_the_pipeline_exports() -> None:
    exported = exported_metric_names()
    assert exported >= CONTRACT_METRICS
    for rule in rules():
        used = metric_names(rule["expr"])
        assert used <= exported, (rule["alert"], used - exported)

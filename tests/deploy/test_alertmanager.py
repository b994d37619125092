"""Alertmanager: the configuration is valid, and every alert of alerts.yml reaches its team's
pager when it pages and its team's chat otherwise (amtool's routing tree test)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.paths import AMTOOL, DEPLOY

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

needs_amtool = pytest.mark.skipif(not AMTOOL.exists(), reason="amtool not installed")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AMTOOL), *args], capture_output=True, text=True, timeout=30)


@needs_amtool
def test_amtool_accepts_the_configuration() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def alert_labels() -> list[tuple[str, dict[str, str]]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(r["alert"], r["labels"]) for g in groups for r in g["rules"] if "alert" in r]


@needs_amtool
@pytest.mark.parametrize(("alert", "labels"), alert_labels(), ids=lambda v: str(v))
def test_every_alert_is_routed_by_team_and_severity(alert: str, labels: dict[str, str]) -> None:
    kind = "pager" if labels["severity"] == "page" else "chat"
    expected = f"{labels['team']}-{kind}"
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={expected}",
        f"alertname={alert}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == expected


def test_every_receiver_is_used_and_every_team_has_a_pager_and_a_chat() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    receivers = {r["name"] for r in config["receivers"]}
    teams = {labels["team"] for _, labels in alert_labels()}
    assert receivers == {f"{team}-{kind}" for team in teams for kind in ("pager", "chat")}

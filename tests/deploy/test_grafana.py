"""Grafana provisioning: the datasources the dashboards use are provisioned; every SRE panel's
PromQL is valid (promtool) and names only CONTRACT §6 metrics; every analyst panel's SQL runs on
a warehouse migrated by ``sinks.migrate`` and filled by a generated week, and returns rows."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.generator import generate_week
from processors.ids import Pseudonymizer
from processors.rules import load_rules
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner, replay_file
from tests.deploy.paths import (
    CONTRACT_METRICS,
    DEPLOY,
    PROMTOOL,
    REPO,
    exported_metric_names,
    metric_names,
)

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
KEY = "grafana-test-key"


def dashboard(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / name).read_text()))


def targets(dash: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in dash["panels"] for t in p.get("targets", [])]


def datasources() -> dict[str, dict[str, Any]]:
    path = GRAFANA / "provisioning" / "datasources" / "supportstream.yml"
    return {d["uid"]: d for d in yaml.safe_load(path.read_text())["datasources"]}


def test_provisioning_points_at_the_dashboards_and_the_plugin_datasource() -> None:
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "supportstream.yml").read_text()
    )["providers"]
    assert providers[0]["type"] == "file"
    sources = datasources()
    assert {d["type"] for d in sources.values()} == {"prometheus", "grafana-clickhouse-datasource"}
    (clickhouse,) = [d for d in sources.values() if d["type"] == "grafana-clickhouse-datasource"]
    assert clickhouse["jsonData"]["defaultDatabase"] == "supportstream"


@pytest.mark.parametrize("name", ["sre.json", "analytics.json"])
def test_dashboards_are_well_formed_and_use_provisioned_datasources(name: str) -> None:
    dash = dashboard(name)
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    sources = datasources()
    for panel in dash["panels"]:
        if panel["type"] == "row":  # a row only groups the panels below it
            assert panel["title"] and "targets" not in panel
            continue
        assert panel["datasource"]["uid"] in sources, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == panel["datasource"]["uid"]


def test_sre_panels_name_only_exported_metrics_and_cover_the_contract_s() -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for title, target in targets(dashboard("sre.json")):
        names = metric_names(target["expr"])
        assert names, title
        assert names <= exported, (title, names - exported)
        used |= names
    assert used >= CONTRACT_METRICS


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool not installed")
def test_sre_panels_promql_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"grafana:panel_{n}", "expr": target["expr"]}
        for n, (_, target) in enumerate(targets(dashboard("sre.json")))
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Grafana's ClickHouse plugin macros, replaced the way the plugin does, over a wide range.
FROM, TO = "2000-01-01 00:00:00", "2100-01-01 00:00:00"
MACROS = (
    (re.compile(r"\$__timeFilter\((\w+)\)"),
     rf"\1 >= toDateTime('{FROM}', 'UTC') AND \1 <= toDateTime('{TO}', 'UTC')"),
    (re.compile(r"\$__dateFilter\((\w+)\)"),
     rf"\1 >= toDate('{FROM[:10]}') AND \1 <= toDate('{TO[:10]}')"),
    (re.compile(r"\$__fromTime\b"), f"toDateTime('{FROM}', 'UTC')"),
    (re.compile(r"\$__toTime\b"), f"toDateTime('{TO}', 'UTC')"),
)  # fmt: skip


def expand(sql: str) -> str:
    for pattern, replacement in MACROS:
        sql = pattern.sub(replacement, sql)
    assert "$" not in sql, f"unexpanded macro or variable in {sql!r}"
    return sql


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    """A generated week (every channel, surveys, CRM, breaches) replayed into a fresh warehouse."""
    root = tmp_path_factory.mktemp("grafana")
    start = dt.datetime(2026, 3, 2, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    week = root / "week.jsonl"
    generate_week(start, seed=3, tickets=120, pii_key=KEY).write_jsonl(week)
    backend = ChdbBackend(root / "warehouse")
    try:
        migrate(backend)
        writer = ProjectionWriter(backend)
        runner = LocalRunner(
            load_rules(REPO / "examples" / "rules.demo.yaml"), Pseudonymizer.from_text(KEY), writer
        )
        replay_file(runner, week)
        yield backend
    finally:
        backend.close()


ANALYST_TARGETS = targets(dashboard("analytics.json"))


@pytest.mark.slow
@pytest.mark.parametrize(("title", "target"), ANALYST_TARGETS, ids=[t for t, _ in ANALYST_TARGETS])
def test_analyst_panel_sql_runs_on_the_migrated_warehouse_and_returns_rows(
    warehouse: ChdbBackend, title: str, target: dict[str, Any]
) -> None:
    assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
    rows = warehouse.query(expand(target["rawSql"]))
    assert rows, f"{title}: no rows"
    if target["format"] == 0:  # a time series: a time column first
        assert next(iter(rows[0])) == "time", title


def test_analyst_dashboard_covers_the_questions_analysts_ask() -> None:
    sql = " ".join(t["rawSql"] for _, t in ANALYST_TARGETS)
    for view in (
        "contact_reasons_daily",
        "sla_achievement",
        "csat_daily",
        "nps_daily",
        "repeat_contacts",
        "customer_health",
        "agent_daily",
        "qa_sample",
        "qa_reviews",
        "qa_agent_weekly",
    ):
        assert f"supportstream.{view}" in sql, view


def test_analyst_dashboard_has_an_agents_row() -> None:
    panels = dashboard("analytics.json")["panels"]
    (row,) = [p for p in panels if p["type"] == "row" and "Agents" in p["title"]]
    below = [p for p in panels if p["gridPos"]["y"] > row["gridPos"]["y"]]
    sql = " ".join(t["rawSql"] for p in below for t in p["targets"])
    assert "supportstream.agent_daily" in sql and "supportstream.qa_agent_weekly" in sql

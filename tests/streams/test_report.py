"""``supportstream report`` through the real command line on a replayed generated week: one
self-contained page whose numbers are the warehouse's, ``--from/--to`` by reporting day, clear
pages for an empty or missing warehouse, usage errors without a traceback; and the page rendered
in a real headless Chromium, with no script errors and marks drawn in every chart.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from loadtest.generator import generate_week
from tests.support.browser import CHROMIUM, chart_marks, render
from tests.support.cli import replay_cli, run_cli, sql_rows

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.demo.yaml"
KEY = "report-test-key"
START = datetime.fromisoformat("2026-03-02T00:00:00+03:00")  # a Monday
SECTIONS = (
    "contact-reasons",
    "channels-queues",
    "sla",
    "satisfaction",
    "promises",
    "incidents",
    "agents",
    "customers-at-risk",
)
# Section -> the table or view it needs; another issue may not have built it yet.
NEEDS = {
    "contact-reasons": "contact_reasons_daily",
    "channels-queues": "tickets",
    "sla": "sla_achievement",
    "satisfaction": "csat_daily",
    "promises": "promises_daily",
    "incidents": "incidents",
    "agents": "agent_daily",
    "customers-at-risk": "customer_health",
}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {**os.environ, "SUPPORTSTREAM_PII_KEY": KEY}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    work = tmp_path_factory.mktemp("report")
    source = work / "week.jsonl"
    generate_week(START, seed=3, tickets=180, pii_key=KEY).write_jsonl(source)
    replay_cli(RULES, source, work / "warehouse", env)
    return work / "warehouse"


@pytest.fixture(scope="module")
def page(warehouse: Path, env: dict[str, str]) -> Path:
    out = warehouse.parent / "report.html"
    done = run_cli("report", "--warehouse", str(warehouse), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    return out


def _section(html: str, key: str) -> str:
    match = re.search(rf"<section id='{key}'[^>]*>(.*?)</section>", html, re.S)
    assert match, f"section {key} missing"
    return match.group(0)


def _has_data(html: str, key: str) -> bool:
    return f"<section id='{key}' data-has-data='true'" in html


def _existing(warehouse: Path, env: dict[str, str]) -> set[str]:
    rows = sql_rows(
        warehouse, "SELECT name FROM system.tables WHERE database = 'supportstream'", env
    )
    return {r["name"] for r in rows}


def test_the_page_is_self_contained_and_has_every_section(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    for key in SECTIONS:
        _section(html, key)
    # Opens with no network: nothing is loaded from elsewhere, plotly.js is inlined.
    markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", html, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)
    assert not re.search(r"<script[^>]*\bsrc=|<link\b", markup)
    assert "<script type='text/javascript'>" in html and "Plotly.newPlot" in html


def test_sections_draw_what_the_warehouse_has(
    page: Path, warehouse: Path, env: dict[str, str]
) -> None:
    html = page.read_text(encoding="utf-8")
    existing = _existing(warehouse, env)
    for key, needs in NEEDS.items():
        if needs not in existing:
            assert not _has_data(html, key)
            assert f"No data yet: the warehouse has no `{needs}` yet" in _section(html, key)
    for key in ("contact-reasons", "channels-queues", "sla", "satisfaction", "customers-at-risk"):
        assert _has_data(html, key), key
    for key in ("contact-reasons", "channels-queues", "sla", "satisfaction"):
        assert f'id="chart-{key}"' in _section(html, key)


def test_numbers_are_the_warehouses(page: Path, warehouse: Path, env: dict[str, str]) -> None:
    html = page.read_text(encoding="utf-8")
    queues = sql_rows(
        warehouse, "SELECT queue, count() AS n FROM tickets FINAL GROUP BY queue", env
    )
    section = _section(html, "channels-queues")
    for row in queues:
        assert re.search(
            rf"<td class='txt'>{re.escape(row['queue'])}</td><td class='num'>{row['n']}</td>",
            section,
        ), row
    total = sum(int(r["n"]) for r in queues)
    assert f"<span>tickets opened</span><b>{total}</b>" in html
    sla = sql_rows(
        warehouse,
        "SELECT policy, metric, sum(met) AS m, sum(breached) AS b FROM sla_achievement "
        "GROUP BY policy, metric",
        env,
    )
    section = _section(html, "sla")
    for row in sla:
        assert (
            f"<td class='txt'>{row['policy']}</td><td class='txt'>{row['metric']}</td>"
            f"<td class='num'>{row['m']}</td><td class='num'>{row['b']}</td>"
        ) in section, row
    risky = sql_rows(
        warehouse,
        "SELECT customer_id FROM customer_health WHERE churn_risk > 0 "
        "ORDER BY churn_risk DESC, customer_id LIMIT 1",
        env,
    )
    assert risky and risky[0]["customer_id"] in _section(html, "customers-at-risk")


def test_from_to_filter_by_reporting_day(warehouse: Path, env: dict[str, str]) -> None:
    days = sql_rows(
        warehouse,
        "SELECT opened_day AS day, count() AS n FROM tickets FINAL GROUP BY day ORDER BY day",
        env,
    )
    assert len(days) >= 5
    day = days[2]["day"]
    out = warehouse.parent / "one-day.html"
    done = run_cli(
        "report",
        "--warehouse",
        str(warehouse),
        "--out",
        str(out),
        "--from",
        day,
        "--to",
        day,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert f"<span>tickets opened</span><b>{days[2]['n']}</b>" in html
    assert f"{day} to {day}" in html
    chart = _section(html, "contact-reasons")
    assert f'"{day}"' in chart
    for other in (days[1]["day"], days[3]["day"]):
        assert f'"{other}"' not in chart
    # A period with nothing in it is a clear page, not an error.
    done = run_cli(
        "report",
        "--warehouse",
        str(warehouse),
        "--out",
        str(out),
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-31",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "No data yet: no tickets opened in 2020-01-01 to 2020-01-31" in html
    assert "No tickets, SLA cycles or surveys in" in html


def test_empty_and_missing_warehouses_give_a_clear_page(
    tmp_path: Path, env: dict[str, str]
) -> None:
    empty_input = tmp_path / "empty.jsonl"
    empty_input.write_text("")
    replay_cli(RULES, empty_input, tmp_path / "empty", env)
    for warehouse in (tmp_path / "empty", tmp_path / "nowhere"):
        out = tmp_path / f"{warehouse.name}.html"
        done = run_cli("report", "--warehouse", str(warehouse), "--out", str(out), env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        html = out.read_text(encoding="utf-8")
        assert html.count("No data yet") == len(SECTIONS)
        assert "Plotly" not in html  # no chart, so no need for plotly.js either
    assert not (tmp_path / "nowhere").exists()  # a report never creates a warehouse
    assert "There is no warehouse at" in (tmp_path / "nowhere.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "monday"), "--from: 'monday' is not a day"),
        (("--from", "2026-03-05", "--to", "2026-03-01"), "--from 2026-03-05 is after --to"),
    ],
)
def test_bad_days_are_usage_errors(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = run_cli("report", "--warehouse", str(tmp_path), *args, env=env)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run `make system-deps`")
def test_the_page_renders_in_a_real_browser(page: Path, warehouse: Path) -> None:
    shots = Path(os.environ.get("SUPPORTSTREAM_SCREENSHOTS", str(warehouse.parent)))
    shots.mkdir(parents=True, exist_ok=True)
    rendered = render(page, shots / "report.png")
    assert rendered.script_errors == ""
    marks = chart_marks(rendered.dom)
    html = page.read_text(encoding="utf-8")
    drawn = {f"chart-{k}" for k in SECTIONS if f'id="chart-{k}"' in html}
    assert drawn and set(marks) == drawn
    assert all(n > 0 for n in marks.values()), marks
    assert rendered.screenshot.stat().st_size > 50_000  # a page with charts, not a blank one


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run `make system-deps`")
def test_an_empty_page_renders_too(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "empty.html"
    assert (
        run_cli(
            "report", "--warehouse", str(tmp_path / "none"), "--out", str(out), env=env
        ).returncode
        == 0
    )
    rendered = render(out, tmp_path / "empty.png", height=1600)
    assert rendered.script_errors == ""
    assert "No data yet" in rendered.dom
    shutil.rmtree(tmp_path / "none", ignore_errors=True)


# Contract-shaped stand-ins (CONTRACT §7 columns) for what other parts of the project build:
# created only where the warehouse does not have the real thing yet, to show that the section
# appears as soon as the warehouse has it.
STAND_INS = {
    "promises_daily": (
        "CREATE TABLE supportstream.promises_daily (day Date, channel String, policy String, "
        "promises UInt64, kept UInt64, broken UInt64, pending UInt64, "
        "median_estimate_seconds Float64) ENGINE = MergeTree ORDER BY day",
        "INSERT INTO supportstream.promises_daily VALUES "
        "('2026-03-03', 'telegram', 'standard', 10, 7, 2, 1, 1800), "
        "('2026-03-04', 'email', 'standard', 4, 1, 3, 0, 3600)",
    ),
    "incidents": (
        "CREATE TABLE supportstream.incidents (incident_id String, category String, "
        "opened_at DateTime64(3, 'UTC'), closed_at Nullable(DateTime64(3, 'UTC')), "
        "tickets UInt64, customers UInt64, baseline Float64) ENGINE = MergeTree ORDER BY incident_id",
        "INSERT INTO supportstream.incidents VALUES "
        "('outage#1', 'outage', '2026-03-03 09:00:00', '2026-03-03 11:30:00', 9, 8, 0.5), "
        "('billing#1', 'billing', '2026-03-05 14:00:00', NULL, 6, 6, 1)",
    ),
    "agent_daily": (
        "CREATE TABLE supportstream.agent_daily (day Date, agent_id String, "
        "public_replies UInt64, first_responses UInt64, first_responses_breached UInt64, "
        "solved UInt64, reopened UInt64, handoffs_out UInt64, csat_responses UInt64, "
        "csat_positive UInt64, csat_negative UInt64, nps_responses UInt64, "
        "nps_promoters UInt64, nps_detractors UInt64) ENGINE = MergeTree ORDER BY day",
        "INSERT INTO supportstream.agent_daily VALUES "
        "('2026-03-03', 'a.ivanova', 20, 8, 2, 6, 1, 0, 4, 3, 1, 2, 1, 1), "
        "('2026-03-04', 'a.ivanova', 10, 4, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0)",
    ),
    "qa_reviews": (
        "CREATE TABLE supportstream.qa_reviews (ticket_id String, reviewer_id String, "
        "agent_id String, at DateTime64(3, 'UTC'), quality Nullable(Float64), "
        "critical_failed Bool, scores String) ENGINE = MergeTree ORDER BY ticket_id",
        "INSERT INTO supportstream.qa_reviews VALUES "
        "('t#1', 'lead', 'a.ivanova', '2026-03-03 12:00:00', 80, false, '{}'), "
        "('t#2', 'lead', 'a.ivanova', '2026-03-04 12:00:00', 90, false, '{}'), "
        "('t#3', 'lead', 'a.ivanova', '2026-03-04 13:00:00', NULL, false, '{}')",
    ),
}
SECTION_OF = {"promises_daily": "promises", "incidents": "incidents", "agent_daily": "agents"}


def test_sections_appear_as_soon_as_the_warehouse_has_their_data(
    warehouse: Path, env: dict[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / "warehouse"  # the same week, replayed again: this test adds tables
    replay_cli(RULES, warehouse.parent / "week.jsonl", copy, env)
    existing = _existing(copy, env)
    stood_in = set()
    for name, statements in STAND_INS.items():
        if name in existing:
            continue
        for statement in statements:
            done = run_cli("sql", "--warehouse", str(copy), statement, env=env)
            assert done.returncode == 0, done.stderr
        stood_in.add(name)
    out = tmp_path / "report.html"
    assert run_cli("report", "--warehouse", str(copy), "--out", str(out), env=env).returncode == 0
    html = out.read_text(encoding="utf-8")
    for name, key in SECTION_OF.items():
        section = _section(html, key)
        assert "has no `" not in section, section[:400]
        if name in stood_in:
            assert _has_data(html, key), key
    if "promises_daily" in stood_in:
        section = _section(html, "promises")
        assert 'id="chart-promises"' in section
        assert (
            "<td class='txt'>telegram</td><td class='num'>10</td><td class='num'>7</td>" in section
        )
        assert "77.8%" in section  # 7 kept of 9 decided
    if "incidents" in stood_in:
        section = _section(html, "incidents")
        assert 'id="chart-incidents"' in section and "still open" in section
        assert "2026-03-03 09:00" in section and "outage#1" in section
    if "agent_daily" in stood_in:
        section = _section(html, "agents")
        assert (
            "<td class='txt'>a.ivanova</td><td class='num'>30</td><td class='num'>12</td>"
            in section
        )
        assert "16.7%" in section  # 2 of 12 first responses breached
        if "qa_reviews" in stood_in:
            assert "85.0 (3)" in section  # the two scored reviews averaged, three made
    # --from/--to apply to them too: the 4th of March has one promise row and no incident start.
    done = run_cli(
        "report",
        "--warehouse",
        str(copy),
        "--out",
        str(out),
        "--from",
        "2026-03-04",
        "--to",
        "2026-03-04",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    if "promises_daily" in stood_in:
        assert "telegram</td>" not in _section(html, "promises")
    if "incidents" in stood_in:
        assert "No data yet: no incidents" in _section(html, "incidents")


def test_promises_incidents_and_agents_are_the_warehouses(
    page: Path, warehouse: Path, env: dict[str, str]
) -> None:
    """The week under rules.demo.yaml (promises, incidents, QA) fills every section from the
    warehouse's own §7 views, not from stand-ins: each number shown is the view's."""
    html = page.read_text(encoding="utf-8")
    for key in SECTIONS:
        assert _has_data(html, key), key
    for key in ("promises", "incidents"):
        assert f'id="chart-{key}"' in _section(html, key)

    def cells(*values: object) -> str:
        return "".join(
            f"<td class='{'txt' if isinstance(v, str) else 'num'}'>{v}</td>" for v in values
        )

    promises = sql_rows(
        warehouse,
        "SELECT channel, sum(promises) AS p, sum(kept) AS k, sum(broken) AS b, "
        "sum(pending) AS w FROM promises_daily GROUP BY channel HAVING p > 0",
        env,
    )
    assert promises
    section = _section(html, "promises")
    for row in promises:
        counts = (int(row["p"]), int(row["k"]), int(row["b"]), int(row["w"]))
        assert cells(row["channel"], *counts) in section, row

    incidents = sql_rows(
        warehouse, "SELECT incident_id, category, tickets, customers FROM incidents", env
    )
    assert incidents  # the generated week's outage spike
    section = _section(html, "incidents")
    for row in incidents:
        assert cells(row["incident_id"], row["category"]) in section, row
        assert cells(int(row["tickets"]), int(row["customers"])) + "</tr>" in section, row

    agents = sql_rows(
        warehouse,
        "SELECT agent_id, sum(public_replies) AS r, sum(first_responses) AS f, "
        "sum(solved) AS s FROM agent_daily WHERE agent_id != '' GROUP BY agent_id",
        env,
    )
    assert agents
    section = _section(html, "agents")
    for row in agents:
        assert cells(row["agent_id"], int(row["r"]), int(row["f"])) in section, row
    reviews = sql_rows(
        warehouse,
        "SELECT agent_id, count() AS n, avg(quality) AS q FROM qa_reviews "
        "WHERE agent_id != '' GROUP BY agent_id",
        env,
    )
    assert reviews
    for row in reviews:
        quality = "–" if row["q"] is None else f"{float(row['q']):.1f} ({row['n']})"
        assert quality in section, row

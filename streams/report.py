"""``supportstream report``: one self-contained HTML page of what analysts and team leads look at.

It reads the warehouse (the tables and views of CONTRACT §4 and §7, nothing else) and draws
each section with plotly, whose JavaScript is inlined once in the page: the file opens from a
disk, a mail attachment or a ticket with no network at all. Sections, in order: contact reasons
per day, tickets per channel and queue, SLA achievement per day and policy, CSAT / NPS / CSI,
promises kept per channel, incidents on a timeline, agents, customers most at risk.

Invariants (docs/REPORTS.md says why):
- Read-only. Every section probes for the table, view or column it needs; one that the
  warehouse does not have yet (a warehouse from before promises, incidents or agent views)
  or that has no rows in the period says so in words instead of failing the page.
- ``--from`` / ``--to`` are reporting days (the rules' ``reporting_timezone``), both inclusive,
  applied to each section's own day (the day a ticket opened, a cycle started, a survey was
  answered, an agent acted). Customers at risk are the warehouse's ``customer_health``, as of
  its latest event, and are not filtered.
- The page does not depend on the wall clock: the same warehouse and period give the same file.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from sinks.backend import DATABASE, Backend, SinkError

__all__ = [
    "Period",
    "Report",
    "Section",
    "build_report",
    "chart_div",
    "empty_report",
    "html_table",
    "page_shell",
    "style_figure",
    "write_report",
]

_MIN_DAY = dt.date(1970, 1, 1)
_MAX_DAY = dt.date(2149, 6, 6)  # the last day a ClickHouse Date holds
_TIMEZONE_IN_VIEW = re.compile(r"toDate\(started_at, '([^']+)'\)")
_CHART_CONFIG = {"displaylogo": False, "responsive": True}
_CHART_HEIGHT = 430


@dataclass(frozen=True)
class Period:
    """Reporting days ``first`` .. ``last``, both inclusive; ``None`` leaves that side open."""

    first: dt.date | None = None
    last: dt.date | None = None

    def params(self) -> dict[str, Any]:
        return {"lo": self.first or _MIN_DAY, "hi": self.last or _MAX_DAY}

    def describe(self) -> str:
        if self.first is None and self.last is None:
            return "all days in the warehouse"
        first = self.first.isoformat() if self.first else "the first day"
        last = self.last.isoformat() if self.last else "the last day"
        return f"{first} to {last} (reporting days, inclusive)"


@dataclass(frozen=True)
class Section:
    """One titled part of the page: a chart and/or a table, or a sentence saying why not."""

    key: str
    title: str
    about: str
    body: str = ""
    empty: str = ""  # non-empty: the section has no data, and this says why

    @property
    def has_data(self) -> bool:
        return not self.empty


@dataclass(frozen=True)
class Report:
    period: Period
    headline: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    notice: str = ""
    reporting_timezone: str = "UTC"

    def html(self) -> str:
        return _page(self)


class _Warehouse:
    """What the warehouse has: existence of tables / views and columns, asked once."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        rows = backend.query(
            "SELECT table, name FROM system.columns WHERE database = {db:String}",
            {"db": DATABASE},
        )
        self.columns: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            self.columns[str(row["table"])].add(str(row["name"]))
        self.engines = {
            str(row["name"]): str(row["engine"])
            for row in backend.query(
                "SELECT name, engine FROM system.tables WHERE database = {db:String}",
                {"db": DATABASE},
            )
        }

    def final(self, table: str) -> str:
        """``FINAL`` for a table that keeps one row per change (a Replacing / Collapsing /
        ... MergeTree), nothing for a plain table or a view."""
        engine = self.engines.get(table, "")
        return "FINAL" if engine.endswith("MergeTree") and engine != "MergeTree" else ""

    def has(self, table: str, *columns: str) -> bool:
        return table in self.columns and all(c in self.columns[table] for c in columns)

    def missing(self, table: str, *columns: str) -> str:
        if table not in self.columns:
            return f"the warehouse has no `{table}` yet"
        absent = [c for c in columns if c not in self.columns[table]]
        return f"`{table}` has no column {', '.join(f'`{c}`' for c in absent)} yet"

    def rows(self, sql: str, period: Period, **extra: Any) -> list[dict[str, Any]]:
        return self.backend.query(sql, {**period.params(), **extra})


def reporting_timezone(backend: Backend) -> str:
    """The time zone the daily views were created with (the rules' ``reporting_timezone``);
    UTC when the warehouse has none yet."""
    rows = backend.query(
        "SELECT create_table_query FROM system.tables "
        "WHERE database = {db:String} AND name = 'sla_achievement'",
        {"db": DATABASE},
    )
    if rows:
        match = _TIMEZONE_IN_VIEW.search(str(rows[0]["create_table_query"]))
        if match:
            return match.group(1)
    return "UTC"


def build_report(backend: Backend, period: Period = Period()) -> Report:
    """Every section of the page from ``backend`` for ``period``."""
    wh = _Warehouse(backend)
    tz = reporting_timezone(backend)
    if not wh.has("tickets"):
        return empty_report(period, "This warehouse holds no supportstream tables yet.")
    builders: tuple[Callable[[_Warehouse, Period, str], Section], ...] = (
        _contact_reasons,
        _channels_and_queues,
        _sla_achievement,
        _satisfaction,
        _promises,
        _incidents,
        _agents,
        _customers_at_risk,
    )
    sections = tuple(_guarded(build, wh, period, tz) for build in builders)
    notice = ""
    if not any(s.has_data for s in sections[:4]):
        notice = f"No tickets, SLA cycles or surveys in {period.describe()}."
    return Report(period, _headline(wh, period, tz), sections, notice, tz)


def empty_report(period: Period, notice: str) -> Report:
    """The page for a warehouse with nothing in it: every section says so."""
    sections = tuple(
        Section(key, title, about, empty="no data yet") for key, title, about in _SECTIONS
    )
    return Report(period, (), sections, notice + " Run `supportstream replay` or `demo` first.")


def write_report(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.html(), encoding="utf-8")
    return path


# -- sections ---------------------------------------------------------------------------------

_SECTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "contact-reasons",
        "Contact reasons per day",
        "Tickets opened per reporting day, stacked by contact reason (category).",
    ),
    (
        "channels-queues",
        "Tickets per channel and queue",
        "Tickets opened in the period per channel, stacked by the queue they were routed to.",
    ),
    (
        "sla",
        "SLA achievement per day and policy",
        "Share of SLA cycles met among those decided (met or breached), per reporting day "
        "the cycle started; one panel per metric, one line per policy.",
    ),
    (
        "satisfaction",
        "CSAT, NPS and CSI",
        "CSAT = share of answers 4..5 of 1..5; NPS = % promoters (9..10) − % detractors "
        "(0..6); CSI = NPS answers 8..10 ÷ answers 0..3, per quarter.",
    ),
    (
        "promises",
        "Promises kept per channel",
        "First-response promises made when tickets opened (CONTRACT §7), by outcome.",
    ),
    (
        "incidents",
        "Incidents",
        "Contact-reason spikes (CONTRACT §7) from opening to closing; an open one runs to "
        "the latest event.",
    ),
    (
        "agents",
        "Agents",
        "Per agent over the period: replies, first responses and their breaches, solves, "
        "reopens, handoffs, CSAT and NPS of the answers credited to them, QA quality.",
    ),
    (
        "customers-at-risk",
        "Customers most at risk",
        "Highest churn_risk in customer_health (docs/ANALYTICS.md): the 30 days up to the "
        "warehouse's latest event; not filtered by --from/--to.",
    ),
)
_ABOUT = {key: (title, about) for key, title, about in _SECTIONS}


def _section(key: str, *, body: str = "", empty: str = "") -> Section:
    title, about = _ABOUT[key]
    return Section(key, title, about, body, empty)


def _guarded(
    build: Callable[[_Warehouse, Period, str], Section], wh: _Warehouse, period: Period, tz: str
) -> Section:
    try:
        return build(wh, period, tz)
    except SinkError as error:
        # A view another version of the project defines differently must not take the whole
        # page down: the section says what went wrong and the rest is drawn.
        key = _KEYS[build]
        return _section(key, empty=f"could not be read from this warehouse: {error}")


def _contact_reasons(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "contact-reasons"
    if not wh.has("contact_reasons_daily"):
        return _section(key, empty=wh.missing("contact_reasons_daily"))
    rows = wh.rows(
        "SELECT day, category, sum(tickets) AS n FROM supportstream.contact_reasons_daily "
        "WHERE day BETWEEN {lo:Date} AND {hi:Date} GROUP BY day, category ORDER BY day, category",
        period,
    )
    if not rows:
        return _section(key, empty=f"no tickets opened in {period.describe()}")
    days = sorted({r["day"] for r in rows})
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        totals[r["category"]] += int(r["n"])
    fig = go.Figure()
    for category in sorted(totals, key=lambda c: (-totals[c], c)):
        per_day = {r["day"]: int(r["n"]) for r in rows if r["category"] == category}
        fig.add_bar(
            name=category,
            x=[d.isoformat() for d in days],
            y=[per_day.get(d, 0) for d in days],
            hovertemplate="%{x|%a %d %b}<br>" + html.escape(category) + ": %{y}<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    style_figure(
        fig, "Tickets opened per day by contact reason", "Reporting day", "Tickets", "Reason"
    )
    _day_axis(fig, days)
    return _section(key, body=chart_div(fig, key))


def _channels_and_queues(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "channels-queues"
    rows = wh.rows(
        "SELECT channel, queue, count() AS n FROM supportstream.tickets FINAL "
        "WHERE opened_day BETWEEN {lo:Date} AND {hi:Date} "
        "GROUP BY channel, queue ORDER BY channel, queue",
        period,
    )
    if not rows:
        return _section(key, empty=f"no tickets opened in {period.describe()}")
    by_channel: dict[str, int] = defaultdict(int)
    by_queue: dict[str, int] = defaultdict(int)
    for r in rows:
        by_channel[r["channel"]] += int(r["n"])
        by_queue[r["queue"]] += int(r["n"])
    channels = sorted(by_channel, key=lambda c: (-by_channel[c], c))
    fig = go.Figure()
    for queue in sorted(by_queue, key=lambda q: (-by_queue[q], q)):
        counts = {r["channel"]: int(r["n"]) for r in rows if r["queue"] == queue}
        fig.add_bar(
            name=queue,
            x=channels,
            y=[counts.get(c, 0) for c in channels],
            hovertemplate="%{x} → " + html.escape(queue) + ": %{y}<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    style_figure(fig, "Tickets per channel, by queue", "Channel", "Tickets", "Queue")
    table = html_table(
        ("queue", "tickets", "share"),
        [
            (q, by_queue[q], _pct(by_queue[q] / sum(by_queue.values())))
            for q in sorted(by_queue, key=lambda q: (-by_queue[q], q))
        ],
    )
    return _section(key, body=chart_div(fig, key) + table)


_METRICS = ("first_response", "next_response", "resolution")


def _sla_achievement(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "sla"
    if not wh.has("sla_achievement"):
        return _section(key, empty=wh.missing("sla_achievement"))
    rows = wh.rows(
        "SELECT day, policy, metric, sum(met) AS met_n, sum(breached) AS breached_n, "
        "sum(running) AS running_n FROM supportstream.sla_achievement "
        "WHERE day BETWEEN {lo:Date} AND {hi:Date} "
        "GROUP BY day, policy, metric ORDER BY day, policy, metric",
        period,
    )
    if not rows:
        return _section(key, empty=f"no SLA cycles started in {period.describe()}")
    days = sorted({r["day"] for r in rows})
    policies = sorted({r["policy"] for r in rows})
    metrics = [m for m in _METRICS if any(r["metric"] == m for r in rows)]
    metrics += sorted({r["metric"] for r in rows} - set(metrics))
    palette = pio.templates["plotly_white"].layout.colorway or ("#636efa",)
    fig = make_subplots(
        rows=1,
        cols=len(metrics),
        shared_yaxes=True,
        subplot_titles=[m.replace("_", " ") for m in metrics],
        horizontal_spacing=0.04,
    )
    for p_index, policy in enumerate(policies):
        colour = palette[p_index % len(palette)]
        for m_index, metric in enumerate(metrics, start=1):
            cells = {r["day"]: r for r in rows if r["policy"] == policy and r["metric"] == metric}
            if not cells:
                continue
            xs, ys, custom = [], [], []
            for day in days:
                cell = cells.get(day)
                decided = int(cell["met_n"]) + int(cell["breached_n"]) if cell else 0
                xs.append(day.isoformat())
                ys.append(100 * int(cell["met_n"]) / decided if cell and decided else None)
                custom.append([int(cell["met_n"]), int(cell["breached_n"])] if cell else [0, 0])
            fig.add_scatter(
                row=1,
                col=m_index,
                x=xs,
                y=ys,
                customdata=custom,
                mode="lines+markers",
                name=policy,
                legendgroup=policy,
                showlegend=m_index == 1,
                line={"color": colour},
                connectgaps=False,
                hovertemplate=(
                    "%{x|%a %d %b} · "
                    + html.escape(policy)
                    + "<br>%{y:.1f}% met (%{customdata[0]} met, %{customdata[1]} breached)"
                    "<extra></extra>"
                ),
            )
    style_figure(fig, "SLA achievement (% of decided cycles met)", "", "", "Policy")
    fig.update_yaxes(range=[0, 105], ticksuffix="%")
    fig.update_yaxes(title_text="% of cycles met", row=1, col=1)
    _day_axis(fig, days, narrow=len(metrics) > 1)
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        acc = totals[(r["policy"], r["metric"])]
        acc[0] += int(r["met_n"])
        acc[1] += int(r["breached_n"])
        acc[2] += int(r["running_n"])
    table = html_table(
        ("policy", "metric", "met", "breached", "running", "achievement"),
        [
            (p, m, met, breached, running, _pct(met / (met + breached)) if met + breached else "–")
            for (p, m), (met, breached, running) in sorted(totals.items())
        ],
    )
    return _section(key, body=chart_div(fig, key) + table)


def _satisfaction(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "satisfaction"
    csat = (
        wh.rows(
            "SELECT day, responses, positive FROM supportstream.csat_daily "
            "WHERE day BETWEEN {lo:Date} AND {hi:Date} ORDER BY day",
            period,
        )
        if wh.has("csat_daily")
        else []
    )
    nps = (
        wh.rows(
            "SELECT day, responses, promoters, passives, detractors "
            "FROM supportstream.nps_daily WHERE day BETWEEN {lo:Date} AND {hi:Date} ORDER BY day",
            period,
        )
        if wh.has("nps_daily")
        else []
    )
    # CSI is quarterly; computed here from the same answers so that it honours the period.
    csi = (
        wh.rows(
            "SELECT toStartOfQuarter(toDate(at, {tz:String})) AS quarter, "
            "countIf(s BETWEEN 8 AND 10) AS attract, countIf(s BETWEEN 0 AND 3) AS detract "
            "FROM (SELECT at, JSONExtractInt(data, 'score') AS s FROM supportstream.events FINAL "
            "WHERE event_type = 'survey.answered' AND JSONExtractString(data, 'kind') = 'nps' "
            "AND toDate(at, {tz:String}) BETWEEN {lo:Date} AND {hi:Date}) "
            "GROUP BY quarter ORDER BY quarter",
            period,
            tz=tz,
        )
        if wh.has("events", "data")
        else []
    )
    if not csat and not nps:
        return _section(key, empty=f"no survey answers in {period.describe()}")
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("CSAT per day (% positive)", "NPS per day", "CSI per quarter"),
        column_widths=[0.4, 0.4, 0.2],
        horizontal_spacing=0.07,
    )
    if csat:
        fig.add_bar(
            row=1,
            col=1,
            name="CSAT",
            x=[r["day"].isoformat() for r in csat],
            y=[100 * int(r["positive"]) / int(r["responses"]) for r in csat],
            customdata=[[int(r["responses"])] for r in csat],
            hovertemplate="%{x|%a %d %b}<br>CSAT %{y:.1f}% of %{customdata[0]} answers"
            "<extra></extra>",
        )
    if nps:
        fig.add_bar(
            row=1,
            col=2,
            name="NPS",
            x=[r["day"].isoformat() for r in nps],
            y=[_nps(r) for r in nps],
            customdata=[[int(r["responses"])] for r in nps],
            hovertemplate="%{x|%a %d %b}<br>NPS %{y:.0f} from %{customdata[0]} answers"
            "<extra></extra>",
        )
    if csi:
        fig.add_bar(
            row=1,
            col=3,
            name="CSI",
            x=[f"{r['quarter'].year} Q{(r['quarter'].month - 1) // 3 + 1}" for r in csi],
            y=[_csi(r) for r in csi],
            customdata=[[int(r["attract"]), int(r["detract"])] for r in csi],
            hovertemplate="%{x}<br>CSI %{y:.2f} (%{customdata[0]} attract / "
            "%{customdata[1]} detract)<extra></extra>",
        )
    style_figure(fig, "Customer satisfaction", "", "", None)
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title_text="% positive (4..5)", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text="NPS (−100..100)", range=[-100, 100], row=1, col=2)
    fig.update_yaxes(title_text="attract ÷ detract", row=1, col=3)
    fig.update_xaxes(tickformat="%d %b", row=1, col=1)
    fig.update_xaxes(tickformat="%d %b", row=1, col=2)
    csat_n = sum(int(r["responses"]) for r in csat)
    csat_pos = sum(int(r["positive"]) for r in csat)
    nps_total = {k: sum(int(r[k]) for r in nps) for k in ("responses", "promoters", "detractors")}
    attract = sum(int(r["attract"]) for r in csi)
    detract = sum(int(r["detract"]) for r in csi)
    table = html_table(
        ("measure", "value", "answers"),
        [
            ("CSAT (% positive)", _pct(csat_pos / csat_n) if csat_n else "none", csat_n),
            (
                "NPS",
                f"{_nps(nps_total):.0f}" if nps_total["responses"] else "none",
                nps_total["responses"],
            ),
            (
                "CSI (attract ÷ detract)",
                f"{attract / detract:.2f}" if detract else "– (no answer 0..3)",
                attract + detract,
            ),
        ],
    )
    return _section(key, body=chart_div(fig, key) + table)


def _promises(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "promises"
    needed = ("day", "channel", "promises", "kept", "broken", "pending")
    if not wh.has("promises_daily", *needed):
        return _section(key, empty=wh.missing("promises_daily", *needed))
    rows = wh.rows(
        "SELECT channel, sum(promises) AS made, sum(kept) AS kept_n, sum(broken) AS broken_n, "
        "sum(pending) AS pending_n FROM supportstream.promises_daily "
        "WHERE day BETWEEN {lo:Date} AND {hi:Date} GROUP BY channel ORDER BY made DESC, channel",
        period,
    )
    rows = [r for r in rows if int(r["made"])]
    if not rows:
        return _section(
            key,
            empty=f"no promises made in {period.describe()} (the rules file may have no "
            "`promises` section)",
        )
    channels = [r["channel"] for r in rows]
    fig = go.Figure()
    for outcome, column, colour in (
        ("kept", "kept_n", "#2ca02c"),
        ("broken", "broken_n", "#d62728"),
        ("pending", "pending_n", "#bbbbbb"),
    ):
        fig.add_bar(
            name=outcome,
            x=channels,
            y=[int(r[column]) for r in rows],
            marker_color=colour,
            hovertemplate="%{x}: %{y} " + outcome + "<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    style_figure(fig, "First-response promises per channel", "Channel", "Promises", "Outcome")
    table = html_table(
        ("channel", "promises", "kept", "broken", "pending", "kept of decided"),
        [
            (
                r["channel"],
                r["made"],
                r["kept_n"],
                r["broken_n"],
                r["pending_n"],
                _pct(int(r["kept_n"]) / (int(r["kept_n"]) + int(r["broken_n"])))
                if int(r["kept_n"]) + int(r["broken_n"])
                else "–",
            )
            for r in rows
        ],
    )
    return _section(key, body=chart_div(fig, key) + table)


def _incidents(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "incidents"
    needed = ("incident_id", "category", "opened_at", "closed_at", "tickets", "customers")
    if not wh.has("incidents", *needed):
        return _section(key, empty=wh.missing("incidents", *needed))
    latest = wh.backend.query("SELECT max(at) AS latest FROM supportstream.events")
    rows = wh.rows(
        "SELECT incident_id, category, opened_at, closed_at, tickets, customers "
        f"FROM supportstream.incidents {wh.final('incidents')} "
        "WHERE toDate(opened_at, {tz:String}) <= {hi:Date} "
        "AND toDate(ifNull(closed_at, opened_at), {tz:String}) >= {lo:Date} "
        "ORDER BY opened_at, incident_id",
        period,
        tz=tz,
    )
    if not rows:
        return _section(key, empty=f"no incidents in {period.describe()}")
    end_of_data: dt.datetime | None = latest[0]["latest"] if latest else None
    # The axis spans the period's tickets, so an incident of an hour shows where it fell in
    # the week; a label beside each bar keeps a short one readable at that scale.
    span = wh.rows(
        "SELECT min(opened_at) AS first, max(opened_at) AS last FROM supportstream.tickets "
        "FINAL WHERE opened_day BETWEEN {lo:Date} AND {hi:Date}",
        period,
    )
    categories = sorted({r["category"] for r in rows})
    palette = pio.templates["plotly_white"].layout.colorway or ("#636efa",)
    fig = go.Figure()
    for c_index, category in enumerate(categories):
        colour = palette[c_index % len(palette)]
        mine = [r for r in rows if r["category"] == category]
        starts = [r["opened_at"] for r in mine]
        ends = [r["closed_at"] or end_of_data or r["opened_at"] for r in mine]
        fig.add_bar(
            name=category,
            orientation="h",
            base=[s.isoformat() for s in starts],
            x=[
                max((e - s).total_seconds() * 1000, 60_000)
                for s, e in zip(starts, ends, strict=True)
            ],
            y=[r["incident_id"] for r in mine],
            marker_color=colour,
            legendgroup=category,
            customdata=[
                [
                    s.isoformat(timespec="minutes"),
                    "still open" if r["closed_at"] is None else e.isoformat(timespec="minutes"),
                    int(r["tickets"]),
                    int(r["customers"]),
                ]
                for r, s, e in zip(mine, starts, ends, strict=True)
            ],
            hovertemplate="%{y}<br>%{customdata[0]} → %{customdata[1]} (UTC)<br>"
            "%{customdata[2]} tickets, %{customdata[3]} customers<extra></extra>",
        )
        fig.add_scatter(
            x=[e.isoformat() for e in ends],
            y=[r["incident_id"] for r in mine],
            mode="text",
            text=[
                f"  {s:%a %H:%M}–{'now' if r['closed_at'] is None else format(e, '%H:%M')}"
                f" · {r['tickets']} tickets"
                for r, s, e in zip(mine, starts, ends, strict=True)
            ],
            textposition="middle right",
            textfont={"color": colour},
            legendgroup=category,
            showlegend=False,
            hoverinfo="skip",
        )
    style_figure(
        fig, "Incidents from opening to closing (UTC)", "Time (UTC)", "Incident", "Category"
    )
    fig.update_xaxes(type="date")
    if span and span[0]["first"] is not None:
        edges = [span[0]["first"], span[0]["last"], *(r["opened_at"] for r in rows)]
        edges += [r["closed_at"] or end_of_data or r["opened_at"] for r in rows]
        lo, hi = min(edges), max(edges)
        pad = max((hi - lo) * 0.02, dt.timedelta(minutes=30))
        room = max((hi - lo) * 0.15, dt.timedelta(hours=1))  # for the last bar's label
        fig.update_xaxes(range=[(lo - pad).isoformat(), (hi + room).isoformat()])
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(260, 120 + 28 * len(rows)))
    table = html_table(
        ("incident", "category", "opened (UTC)", "closed (UTC)", "tickets", "customers"),
        [
            (
                r["incident_id"],
                r["category"],
                _instant(r["opened_at"]),
                _instant(r["closed_at"]) if r["closed_at"] else "still open",
                r["tickets"],
                r["customers"],
            )
            for r in rows
        ],
    )
    return _section(key, body=chart_div(fig, key) + table)


_AGENT_COLUMNS = (
    "day",
    "agent_id",
    "public_replies",
    "first_responses",
    "first_responses_breached",
    "solved",
    "reopened",
    "handoffs_out",
    "csat_responses",
    "csat_positive",
    "nps_responses",
    "nps_promoters",
    "nps_detractors",
)


def _agents(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "agents"
    if not wh.has("agent_daily", *_AGENT_COLUMNS):
        return _section(key, empty=wh.missing("agent_daily", *_AGENT_COLUMNS))
    sums = ", ".join(f"sum({c}) AS {c}_n" for c in _AGENT_COLUMNS[2:])
    rows = wh.rows(
        f"SELECT agent_id, {sums} FROM supportstream.agent_daily "
        "WHERE day BETWEEN {lo:Date} AND {hi:Date} AND agent_id != '' "
        "GROUP BY agent_id ORDER BY public_replies_n DESC, agent_id",
        period,
    )
    if not rows:
        return _section(key, empty=f"no agent activity in {period.describe()}")
    quality: dict[str, tuple[float | None, int]] = {}
    if wh.has("qa_reviews", "agent_id", "at", "quality"):
        # The reviews themselves, by the reporting day they were made: exact for any period.
        review_rows = wh.rows(
            "SELECT agent_id, count() AS n, avg(quality) AS avg_q "
            f"FROM supportstream.qa_reviews {wh.final('qa_reviews')} "
            "WHERE toDate(at, {tz:String}) BETWEEN {lo:Date} AND {hi:Date} GROUP BY agent_id",
            period,
            tz=tz,
        )
    elif wh.has("qa_agent_weekly", "week", "agent_id", "reviews", "quality"):
        review_rows = wh.rows(
            "SELECT agent_id, sum(reviews) AS n, "
            "sum(quality * reviews) / nullIf(sumIf(reviews, quality IS NOT NULL), 0) AS avg_q "
            "FROM supportstream.qa_agent_weekly "
            "WHERE week BETWEEN toMonday({lo:Date}) AND {hi:Date} GROUP BY agent_id",
            period,
        )
    else:
        review_rows = []
    for row in review_rows:
        quality[row["agent_id"]] = (row["avg_q"], int(row["n"]))

    def ratio(num: Any, den: Any) -> str:
        return _pct(int(num) / int(den)) if int(den) else "–"

    table_rows = []
    for r in rows:
        avg_quality, reviews = quality.get(r["agent_id"], (None, 0))
        nps_n = int(r["nps_responses_n"])
        table_rows.append(
            (
                r["agent_id"],
                r["public_replies_n"],
                r["first_responses_n"],
                ratio(r["first_responses_breached_n"], r["first_responses_n"]),
                r["solved_n"],
                r["reopened_n"],
                r["handoffs_out_n"],
                ratio(r["csat_positive_n"], r["csat_responses_n"]),
                f"{100 * (int(r['nps_promoters_n']) - int(r['nps_detractors_n'])) / nps_n:.0f}"
                if nps_n
                else "–",
                f"{float(avg_quality):.1f} ({reviews})" if avg_quality is not None else "–",
            )
        )
    table = html_table(
        (
            "agent",
            "public replies",
            "first responses",
            "of them breached",
            "solved",
            "reopened",
            "handoffs out",
            "CSAT",
            "NPS",
            "QA quality (reviews)",
        ),
        table_rows,
    )
    return _section(key, body=table)


def _customers_at_risk(wh: _Warehouse, period: Period, tz: str) -> Section:
    key = "customers-at-risk"
    needed = ("customer_id", "tier", "churn_risk", "tickets_30d", "complaints_30d")
    if not wh.has("customer_health", *needed):
        return _section(key, empty=wh.missing("customer_health", *needed))
    rows = wh.backend.query(
        "SELECT customer_id, tier, status, tickets_30d, complaints_30d, breaches_30d, "
        "repeat_contacts_30d, last_csat, last_nps, churn_risk, as_of "
        "FROM supportstream.customer_health WHERE churn_risk > 0 "
        "ORDER BY churn_risk DESC, customer_id LIMIT 15"
    )
    if not rows:
        return _section(key, empty="no customer shows a churn signal")
    as_of = rows[0]["as_of"]
    table = html_table(
        (
            "customer",
            "tier",
            "status",
            "churn risk",
            "tickets 30d",
            "complaints 30d",
            "breaches 30d",
            "repeat contacts 30d",
            "last CSAT",
            "last NPS",
        ),
        [
            (
                r["customer_id"],
                r["tier"],
                r["status"],
                f"{float(r['churn_risk']):.2f}",
                r["tickets_30d"],
                r["complaints_30d"],
                r["breaches_30d"],
                r["repeat_contacts_30d"],
                "–" if r["last_csat"] is None else r["last_csat"],
                "–" if r["last_nps"] is None else r["last_nps"],
            )
            for r in rows
        ],
    )
    note = f"<p class='note'>As of {html.escape(_instant(as_of))} UTC.</p>" if as_of else ""
    return _section(key, body=note + table)


_KEYS: dict[Callable[[_Warehouse, Period, str], Section], str] = {
    _contact_reasons: "contact-reasons",
    _channels_and_queues: "channels-queues",
    _sla_achievement: "sla",
    _satisfaction: "satisfaction",
    _promises: "promises",
    _incidents: "incidents",
    _agents: "agents",
    _customers_at_risk: "customers-at-risk",
}


def _headline(wh: _Warehouse, period: Period, tz: str) -> tuple[tuple[str, str], ...]:
    tickets = wh.rows(
        "SELECT count() AS n, countIf(status = 'solved') AS solved, min(opened_day) AS first, "
        "max(opened_day) AS last FROM supportstream.tickets FINAL "
        "WHERE opened_day BETWEEN {lo:Date} AND {hi:Date}",
        period,
    )[0]
    items: list[tuple[str, str]] = [
        ("tickets opened", str(tickets["n"])),
        ("of them solved", str(tickets["solved"])),
    ]
    if int(tickets["n"]):
        items.insert(0, ("days", f"{tickets['first']} – {tickets['last']}"))
    if wh.has("sla_achievement"):
        sla = wh.rows(
            "SELECT sum(met) AS m, sum(breached) AS b FROM supportstream.sla_achievement "
            "WHERE day BETWEEN {lo:Date} AND {hi:Date}",
            period,
        )[0]
        decided = int(sla["m"] or 0) + int(sla["b"] or 0)
        items.append(("SLA cycles met", _pct(int(sla["m"]) / decided) if decided else "none"))
        items.append(("SLA breaches", str(int(sla["b"] or 0))))
    if wh.has("dead_letters"):
        tz_rows = wh.rows(
            "SELECT count() AS n FROM supportstream.dead_letters FINAL "
            "WHERE toDate(at, {tz:String}) BETWEEN {lo:Date} AND {hi:Date}",
            period,
            tz=tz,
        )
        items.append(("dead letters", str(tz_rows[0]["n"])))
    return tuple(items)


# -- rendering --------------------------------------------------------------------------------


def style_figure(
    fig: go.Figure, title: str, x_title: str, y_title: str, legend_title: str | None
) -> None:
    """The house style of every chart: a title, axis titles, a titled legend, one font."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01, "font": {"size": 16}},
        height=_CHART_HEIGHT,
        margin={"l": 60, "r": 20, "t": 70, "b": 60},
        font={"family": "DejaVu Sans, Arial, sans-serif", "size": 13},
        legend={"title": {"text": legend_title or ""}},
        hoverlabel={"namelength": -1},
    )
    if x_title:
        fig.update_xaxes(title_text=x_title)
    if y_title:
        fig.update_yaxes(title_text=y_title)


def _day_axis(fig: go.Figure, days: Sequence[dt.date], *, narrow: bool = False) -> None:
    # One tick per day for up to five weeks (up to two in narrow panels); plotly's own
    # choice beyond that.
    if len(days) <= (14 if narrow else 35):
        tickformat = "%a<br>%d" if narrow else "%a<br>%d %b"
        fig.update_xaxes(type="date", tickformat=tickformat, dtick=86_400_000, tickangle=0)
    else:
        fig.update_xaxes(type="date")


def chart_div(fig: go.Figure, key: str) -> str:
    """The figure as a ``div#chart-{key}`` and the call that draws it (plotly.js comes once,
    from :func:`page_shell`)."""
    return str(
        pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{key}",
            config=_CHART_CONFIG,
            default_height=f"{fig.layout.height or _CHART_HEIGHT}px",
        )
    )


def html_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain table, every value escaped; numbers right-aligned."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'num' if isinstance(v, int | float) else 'txt'}'>"
            f"{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _nps(row: Mapping[str, Any]) -> float:
    n = int(row["responses"])
    return 100 * (int(row["promoters"]) - int(row["detractors"])) / n if n else 0.0


def _csi(row: Mapping[str, Any]) -> float | None:
    detract = int(row["detract"])
    return int(row["attract"]) / detract if detract else None


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


_CSS = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 32px 48px; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.kpi { background: #fff; border-radius: 6px; padding: 10px 16px; min-width: 130px;
       box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.kpi b { display: block; font-size: 22px; }
.kpi span { font-size: 12px; color: #555; text-transform: uppercase; letter-spacing: .04em; }
section { background: #fff; border-radius: 6px; padding: 16px 20px; margin: 18px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { margin: 0 0 4px 0; font-size: 19px; }
section p.about { margin: 0 0 10px 0; color: #555; font-size: 14px; }
p.empty { font-size: 15px; color: #8a5a00; background: #fff7e0; padding: 10px 14px;
          border-radius: 4px; margin: 6px 0; }
p.notice { font-size: 16px; background: #fff7e0; padding: 12px 16px; border-radius: 6px; }
p.note { color: #555; font-size: 13px; margin: 4px 0; }
table { border-collapse: collapse; margin-top: 10px; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; }
th { text-align: left; background: #f0f2f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
nav a { color: #1f3a5f; margin-right: 14px; font-size: 14px; }
"""


def _page(report: Report) -> str:
    kpis = "".join(
        f"<div class='kpi'><span>{html.escape(label)}</span><b>{html.escape(value)}</b></div>"
        for label, value in report.headline
    )
    nav = "".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in report.sections)
    notice = f"<p class='notice'>{html.escape(report.notice)}</p>" if report.notice else ""
    sections = []
    for s in report.sections:
        inner = (
            s.body if s.has_data else f"<p class='empty'>No data yet: {html.escape(s.empty)}.</p>"
        )
        sections.append((s.key, s.title, f"<p class='about'>{html.escape(s.about)}</p>{inner}"))
    return page_shell(
        "supportstream report",
        f"{report.period.describe()} · days in {report.reporting_timezone}",
        sections,
        before=f"{notice}<div class='kpis'>{kpis}</div><nav>{nav}</nav>",
        has_data={s.key: s.has_data for s in report.sections},
    )


def page_shell(
    title: str,
    subtitle: str,
    sections: Sequence[tuple[str, str, str]],
    *,
    before: str = "",
    has_data: Mapping[str, bool] | None = None,
) -> str:
    """A whole self-contained page: ``sections`` are (id, title, body HTML). plotly.js is
    inlined once, and only when a chart is drawn, so an empty page stays small."""
    parts = []
    for key, heading, body in sections:
        flag = "" if has_data is None else f" data-has-data='{str(has_data[key]).lower()}'"
        parts.append(f"<section id='{key}'{flag}><h2>{html.escape(heading)}</h2>{body}</section>")
    script = (
        f"<script type='text/javascript'>{get_plotlyjs()}</script>"
        if any("plotly-graph-div" in body for _, _, body in sections)
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style>{script}</head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main>{before}{''.join(parts)}</main></body></html>"
    )

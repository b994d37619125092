"""``supportstream whatif``: the same history replayed under the current and a new rules file.

An event-sourced desk can answer "what would change if we switched?" before anyone switches:
the input is replayed twice, deterministically, each time into its own temporary embedded
warehouse (exactly what ``supportstream replay`` would build), and the two warehouses are
compared through the same tables and views analysts query (CONTRACT §4):

- tickets per queue and priority;
- SLA cycles met and breached, and the achievement, per policy and metric (``sla_achievement``);
- first-response promises per channel and policy (``ticket.acknowledged`` events), when either
  rules file makes promises;
- tickets whose classification or routing changed (language, category, kind, priority, queue,
  SLA policy), counted per field and transition, with examples; tickets that exist under only
  one of the files (a changed ``reopen_within`` splits or merges tickets) are counted apart.

The result goes to stdout as text and to ``whatif.json`` and ``whatif.html`` in ``--out``. Both
files depend only on the input and the two rules files (no wall-clock stamp), so a rerun is
byte-identical. docs/REPORTS.md explains how to read them.
"""

from __future__ import annotations

import contextlib
import html
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import plotly.graph_objects as go

from processors.ids import Pseudonymizer
from processors.model import Millis
from processors.rules import Rules, load_rules
from processors.timeutil import to_rfc3339
from sinks.backend import DATABASE, Backend
from streams.local import LocalRunner, embedded_warehouse, replay_file
from streams.report import chart_div, html_table, page_shell, style_figure

__all__ = ["CLASSIFICATION_FIELDS", "Snapshot", "compare", "run_whatif", "snapshot"]

CLASSIFICATION_FIELDS = ("language", "category", "kind", "priority", "queue", "sla_policy")
EXAMPLES = 10


@dataclass(frozen=True)
class Snapshot:
    """What one replay left in its warehouse, as far as whatif compares it."""

    tickets: dict[str, dict[str, str]]  # ticket_id -> classification fields
    sla: dict[tuple[str, str], dict[str, int]]  # (policy, metric) -> met, breached, cycles
    promises: dict[tuple[str, str], dict[str, Any]]  # (channel, policy) -> summary
    records: int
    dead_letters: int


def snapshot(backend: Backend) -> Snapshot:
    columns = {
        str(r["name"])
        for r in backend.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'tickets'",
            {"db": DATABASE},
        )
    }
    fields = [f for f in CLASSIFICATION_FIELDS if f in columns]
    rows = backend.query(
        f"SELECT ticket_id, channel, {', '.join(fields)} FROM {DATABASE}.tickets FINAL "
        "ORDER BY ticket_id"
    )
    tickets = {str(r["ticket_id"]): {f: str(r[f]) for f in ("channel", *fields)} for r in rows}
    sla = {
        (str(r["policy"]), str(r["metric"])): {
            "met": int(r["met_n"]),
            "breached": int(r["breached_n"]),
            "cycles": int(r["cycles_n"]),
        }
        for r in backend.query(
            "SELECT policy, metric, sum(met) AS met_n, sum(breached) AS breached_n, "
            f"sum(cycles) AS cycles_n FROM {DATABASE}.sla_achievement "
            "GROUP BY policy, metric ORDER BY policy, metric"
        )
    }
    promises = {
        (str(r["channel"]), str(r["policy"])): {
            "promises": int(r["n"]),
            "median_estimate_seconds": _number(r["median_estimate"]),
            "max_estimate_seconds": _number(r["max_estimate"]),
            "from_history": int(r["history"]),
        }
        for r in backend.query(
            "SELECT t.channel AS channel, t.sla_policy AS policy, count() AS n, "
            "quantileExactLow(0.5)(JSONExtractFloat(e.data, 'estimate_seconds')) "
            "AS median_estimate, max(JSONExtractFloat(e.data, 'estimate_seconds')) "
            "AS max_estimate, countIf(JSONExtractString(e.data, 'basis') = 'history') AS history "
            f"FROM {DATABASE}.events AS e FINAL INNER JOIN "
            f"(SELECT ticket_id, channel, sla_policy FROM {DATABASE}.tickets FINAL) AS t "
            "ON t.ticket_id = e.ticket_id WHERE e.event_type = 'ticket.acknowledged' "
            "GROUP BY channel, policy ORDER BY channel, policy"
        )
    }
    dead = backend.query(f"SELECT count() AS n FROM {DATABASE}.dead_letters FINAL")
    return Snapshot(tickets, sla, promises, 0, int(dead[0]["n"]))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@contextlib.contextmanager
def replayable(input_path: Path, stdin: IO[bytes] | None = None) -> Iterator[Path]:
    """The input as a file both replays can read: a regular file as it is; standard input
    (``-``) or a FIFO (``--input <(zcat history.jsonl.gz)``) copied once to a temporary file,
    deleted afterwards, since either can be read only once."""
    if str(input_path) != "-" and input_path.is_file():
        yield input_path
        return
    with tempfile.TemporaryDirectory(prefix="supportstream-whatif-input-") as tmp:
        copy = Path(tmp) / "input.jsonl"
        source = (
            contextlib.nullcontext(stdin if stdin is not None else sys.stdin.buffer)
            if str(input_path) == "-"
            else input_path.open("rb")
        )
        with source as handle, copy.open("wb") as out:
            shutil.copyfileobj(handle, out, 1 << 20)
        yield copy


def replay_into_snapshot(
    rules: Rules, input_path: Path, until: Millis | None, pseudo: Pseudonymizer
) -> Snapshot:
    """``supportstream replay`` of ``input_path`` under ``rules`` into a temporary warehouse,
    read back and thrown away."""
    with (
        tempfile.TemporaryDirectory(prefix="supportstream-whatif-") as tmp,
        embedded_warehouse(Path(tmp) / "warehouse", rules) as writer,
    ):
        stats = replay_file(LocalRunner(rules, pseudo, writer), input_path, until=until)
        writer.compact()
        shot = snapshot(writer.backend)
    return Snapshot(shot.tickets, shot.sla, shot.promises, stats.records, shot.dead_letters)


def compare(baseline: Snapshot, new: Snapshot) -> dict[str, Any]:
    """The differences of CONTRACT §5, as plain JSON-ready data (sorted, deterministic)."""
    return {
        "tickets": {"baseline": len(baseline.tickets), "new": len(new.tickets)},
        "queues_priorities": _queue_priority(baseline, new),
        "sla": _sla(baseline, new),
        "promises": _promises(baseline, new),
        "changed": _changed(baseline, new),
    }


def _queue_priority(baseline: Snapshot, new: Snapshot) -> list[dict[str, Any]]:
    def counts(shot: Snapshot) -> Counter[tuple[str, str]]:
        return Counter((t["queue"], t["priority"]) for t in shot.tickets.values())

    old, now = counts(baseline), counts(new)
    return [
        {
            "queue": q,
            "priority": p,
            "baseline": old[(q, p)],
            "new": now[(q, p)],
            "change": now[(q, p)] - old[(q, p)],
        }
        for q, p in sorted(set(old) | set(now))
    ]


def _achievement(cell: Mapping[str, int]) -> float | None:
    decided = cell["met"] + cell["breached"]
    return None if decided == 0 else round(cell["met"] / decided, 4)


def _sla(baseline: Snapshot, new: Snapshot) -> list[dict[str, Any]]:
    zero = {"met": 0, "breached": 0, "cycles": 0}
    result = []
    for key in sorted(set(baseline.sla) | set(new.sla)):
        old, now = baseline.sla.get(key, zero), new.sla.get(key, zero)
        a_old, a_new = _achievement(old), _achievement(now)
        result.append(
            {
                "policy": key[0],
                "metric": key[1],
                "baseline": {**old, "achievement": a_old},
                "new": {**now, "achievement": a_new},
                "change": {
                    "met": now["met"] - old["met"],
                    "breached": now["breached"] - old["breached"],
                    "achievement_points": None
                    if a_old is None or a_new is None
                    else round(100 * (a_new - a_old), 2),
                },
            }
        )
    return result


def _promises(baseline: Snapshot, new: Snapshot) -> list[dict[str, Any]]:
    empty = {
        "promises": 0,
        "median_estimate_seconds": None,
        "max_estimate_seconds": None,
        "from_history": 0,
    }
    return [
        {
            "channel": key[0],
            "policy": key[1],
            "baseline": baseline.promises.get(key, empty),
            "new": new.promises.get(key, empty),
        }
        for key in sorted(set(baseline.promises) | set(new.promises))
    ]


def _changed(baseline: Snapshot, new: Snapshot) -> dict[str, Any]:
    both = sorted(set(baseline.tickets) & set(new.tickets))
    fields = [
        f
        for f in CLASSIFICATION_FIELDS
        if any(f in t for t in baseline.tickets.values())
        and any(f in t for t in new.tickets.values())
    ]
    per_field: Counter[str] = Counter()
    transitions: Counter[tuple[str, str, str]] = Counter()
    changed: list[dict[str, Any]] = []
    for ticket_id in both:
        old, now = baseline.tickets[ticket_id], new.tickets[ticket_id]
        diff = {f: [old[f], now[f]] for f in fields if old.get(f) != now.get(f)}
        if not diff:
            continue
        per_field.update(diff.keys())
        transitions.update((f, a, b) for f, (a, b) in diff.items())
        changed.append({"ticket_id": ticket_id, "channel": old["channel"], "changes": diff})
    only_old = sorted(set(baseline.tickets) - set(new.tickets))
    only_new = sorted(set(new.tickets) - set(baseline.tickets))
    return {
        "tickets": len(changed),
        "compared": len(both),
        "per_field": {f: per_field[f] for f in fields if per_field[f]},
        "transitions": [
            {"field": f, "from": a, "to": b, "tickets": n}
            for (f, a, b), n in sorted(transitions.items(), key=lambda i: (-i[1], i[0]))
        ],
        "examples": changed[:EXAMPLES],
        "only_in_baseline": {"tickets": len(only_old), "examples": only_old[:EXAMPLES]},
        "only_in_new": {"tickets": len(only_new), "examples": only_new[:EXAMPLES]},
    }


# -- the command --------------------------------------------------------------------------------


def run_whatif(
    *,
    baseline_path: Path,
    rules_path: Path,
    input_path: Path,
    until: Millis | None,
    out: Path,
    pseudo: Pseudonymizer,
    stdout: TextIO | None = None,
) -> int:
    stdout = stdout if stdout is not None else sys.stdout
    # Both files are checked before anything runs: a refused one exits 2 (CONTRACT §5).
    baseline_rules = load_rules(baseline_path)
    new_rules = load_rules(rules_path)
    with replayable(input_path) as path:
        print(f"whatif: replaying {input_path} under {baseline_path} (baseline)", file=sys.stderr)
        old = replay_into_snapshot(baseline_rules, path, until, pseudo)
        print(f"whatif: replaying {input_path} under {rules_path} (new)", file=sys.stderr)
        now = replay_into_snapshot(new_rules, path, until, pseudo)
    result = {
        "input": str(input_path),
        "until": None if until is None else to_rfc3339(until),
        "baseline_rules": str(baseline_path),
        "new_rules": str(rules_path),
        "records": old.records,
        **compare(old, now),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "whatif.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out / "whatif.html").write_text(render_html(result), encoding="utf-8")
    stdout.write(render_text(result))
    stdout.write(f"\nwritten: {out / 'whatif.json'} and {out / 'whatif.html'}\n")
    return 0


# -- text -------------------------------------------------------------------------------------


def _columns(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header]] + [["–" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join("  " + line for line in lines)


def _signed(n: float | None, suffix: str = "") -> str:
    if n is None:
        return "–"
    return f"{n:+g}{suffix}" if n else "0"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = seconds / 60
    return f"{minutes:.0f}m" if minutes < 120 else f"{minutes / 60:.1f}h"


def render_text(result: Mapping[str, Any]) -> str:
    t = result["tickets"]
    parts = [
        f"What would change: {result['new_rules']} instead of {result['baseline_rules']}",
        f"input {result['input']}"
        + (f" up to {result['until']}" if result["until"] else "")
        + f"; tickets {t['baseline']} -> {t['new']}",
        "",
        "== Tickets per queue and priority ==",
    ]
    moved = [r for r in result["queues_priorities"] if r["change"]]
    parts.append(
        _columns(
            ("queue", "priority", "baseline", "new", "change"),
            [
                (r["queue"], r["priority"], r["baseline"], r["new"], _signed(r["change"]))
                for r in moved
            ],
        )
        if moved
        else "  none changed"
    )
    parts += ["", "== SLA per policy and metric =="]
    sla_rows = [
        (
            r["policy"],
            r["metric"],
            f"{r['baseline']['met']}/{r['baseline']['breached']}",
            f"{r['new']['met']}/{r['new']['breached']}",
            _pct(r["baseline"]["achievement"]),
            _pct(r["new"]["achievement"]),
            _signed(r["change"]["achievement_points"], " pt"),
        )
        for r in result["sla"]
    ]
    parts.append(
        _columns(
            (
                "policy",
                "metric",
                "met/breached before",
                "after",
                "achievement before",
                "after",
                "change",
            ),
            sla_rows,
        )
        if sla_rows
        else "  none (neither rules file has SLA policies that apply)"
    )
    parts += ["", "== Promise estimates (first response) =="]
    promise_rows = [
        (
            r["channel"],
            r["policy"],
            r["baseline"]["promises"],
            r["new"]["promises"],
            _duration(r["baseline"]["median_estimate_seconds"]),
            _duration(r["new"]["median_estimate_seconds"]),
        )
        for r in result["promises"]
    ]
    parts.append(
        _columns(
            ("channel", "policy", "promises before", "after", "median estimate before", "after"),
            promise_rows,
        )
        if promise_rows
        else "  none (neither rules file makes promises)"
    )
    changed = result["changed"]
    parts += [
        "",
        f"== Tickets whose classification or routing changed: {changed['tickets']} "
        f"of {changed['compared']} ==",
    ]
    if changed["tickets"]:
        parts.append(
            "  by field: " + ", ".join(f"{f} {n}" for f, n in changed["per_field"].items())
        )
        parts.append(
            _columns(
                ("field", "from", "to", "tickets"),
                [(r["field"], r["from"], r["to"], r["tickets"]) for r in changed["transitions"]],
            )
        )
        parts.append("  examples:")
        for example in changed["examples"]:
            what = "; ".join(f"{f} {a} -> {b}" for f, (a, b) in example["changes"].items())
            parts.append(f"    {example['ticket_id']}: {what}")
    else:
        parts.append("  none")
    for side, label in (("only_in_baseline", "baseline"), ("only_in_new", "new rules")):
        if changed[side]["tickets"]:
            parts.append(
                f"  {changed[side]['tickets']} tickets exist only under the {label} "
                f"(e.g. {', '.join(changed[side]['examples'][:3])})"
            )
    return "\n".join(parts) + "\n"


# -- HTML -------------------------------------------------------------------------------------


def render_html(result: Mapping[str, Any]) -> str:
    sections: list[tuple[str, str, str]] = []
    qp = result["queues_priorities"]
    queues = sorted({r["queue"] for r in qp})
    per_queue = {
        side: [sum(r[side] for r in qp if r["queue"] == q) for q in queues]
        for side in ("baseline", "new")
    }
    body = ""
    if queues:
        fig = go.Figure()
        fig.add_bar(name="baseline", x=queues, y=per_queue["baseline"], marker_color="#8c9fb8")
        fig.add_bar(name="new rules", x=queues, y=per_queue["new"], marker_color="#1f77b4")
        fig.update_layout(barmode="group")
        style_figure(fig, "Tickets per queue", "Queue", "Tickets", "Rules")
        body = chart_div(fig, "whatif-queues")
    body += html_table(
        ("queue", "priority", "baseline", "new", "change"),
        [(r["queue"], r["priority"], r["baseline"], r["new"], _signed(r["change"])) for r in qp],
    )
    sections.append(("queues", "Tickets per queue and priority", body))

    sla = result["sla"]
    body = ""
    if sla:
        labels = [f"{r['policy']} · {r['metric']}" for r in sla]
        fig = go.Figure()
        for side, name, colour in (
            ("baseline", "baseline", "#8c9fb8"),
            ("new", "new rules", "#1f77b4"),
        ):
            fig.add_bar(
                name=name,
                x=labels,
                y=[
                    None if r[side]["achievement"] is None else 100 * r[side]["achievement"]
                    for r in sla
                ],
                marker_color=colour,
                hovertemplate="%{x}: %{y:.1f}% met<extra>" + name + "</extra>",
            )
        fig.update_layout(barmode="group")
        style_figure(
            fig, "SLA achievement (% of decided cycles met)", "Policy · metric", "% met", "Rules"
        )
        fig.update_yaxes(range=[0, 105], ticksuffix="%")
        body = chart_div(fig, "whatif-sla")
        body += html_table(
            (
                "policy",
                "metric",
                "met before",
                "breached before",
                "met after",
                "breached after",
                "achievement before",
                "after",
                "change",
            ),
            [
                (
                    r["policy"],
                    r["metric"],
                    r["baseline"]["met"],
                    r["baseline"]["breached"],
                    r["new"]["met"],
                    r["new"]["breached"],
                    _pct(r["baseline"]["achievement"]),
                    _pct(r["new"]["achievement"]),
                    _signed(r["change"]["achievement_points"], " pt"),
                )
                for r in sla
            ],
        )
    else:
        body = "<p class='empty'>None: neither rules file has SLA policies that apply.</p>"
    sections.append(("sla", "SLA achievement and breaches per policy and metric", body))

    promises = result["promises"]
    if promises:
        body = html_table(
            (
                "channel",
                "policy",
                "promises before",
                "after",
                "median estimate before",
                "after",
                "from history before",
                "after",
            ),
            [
                (
                    r["channel"],
                    r["policy"],
                    r["baseline"]["promises"],
                    r["new"]["promises"],
                    _duration(r["baseline"]["median_estimate_seconds"]),
                    _duration(r["new"]["median_estimate_seconds"]),
                    r["baseline"]["from_history"],
                    r["new"]["from_history"],
                )
                for r in promises
            ],
        )
    else:
        body = "<p class='empty'>None: neither rules file makes promises.</p>"
    sections.append(("promises", "Promise estimates (first response)", body))

    changed = result["changed"]
    if changed["tickets"]:
        body = (
            f"<p>{changed['tickets']} of {changed['compared']} tickets change: "
            + html.escape(", ".join(f"{f} {n}" for f, n in changed["per_field"].items()))
            + "</p>"
            + html_table(
                ("field", "from", "to", "tickets"),
                [(r["field"], r["from"], r["to"], r["tickets"]) for r in changed["transitions"]],
            )
            + "<h3>Examples</h3>"
            + html_table(
                ("ticket", "channel", "what changes"),
                [
                    (
                        e["ticket_id"],
                        e["channel"],
                        "; ".join(f"{f}: {a} → {b}" for f, (a, b) in e["changes"].items()),
                    )
                    for e in changed["examples"]
                ],
            )
        )
    else:
        body = f"<p class='empty'>None of {changed['compared']} tickets change.</p>"
    for side, label in (("only_in_baseline", "the baseline"), ("only_in_new", "the new rules")):
        if changed[side]["tickets"]:
            body += (
                f"<p class='note'>{changed[side]['tickets']} tickets exist only under {label}: "
                f"{html.escape(', '.join(changed[side]['examples']))}</p>"
            )
    sections.append(("changed", "Tickets whose classification or routing changed", body))

    t = result["tickets"]
    subtitle = (
        f"{result['new_rules']} instead of {result['baseline_rules']} · input {result['input']}"
        + (f" up to {result['until']}" if result["until"] else "")
        + f" · tickets {t['baseline']} → {t['new']}"
    )
    return page_shell("supportstream what-if", subtitle, sections)

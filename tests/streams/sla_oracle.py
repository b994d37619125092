"""A deliberately simple, independent reading of CONTRACT §3 (and docs/SLA.md where §3 is silent),
used only by tests to say what ``sla_metrics`` must hold for an input file.

Nothing here imports the processors: calendars come from the rules YAML through PyYAML, local time
through ``zoneinfo``, conversations are worked out from the input records with the rules of §1, and
business time is the overlap of a span with a list of open intervals (in UTC milliseconds).

Timers are evaluated lazily, which §3 allows because a timer's instant never depends on when it
is processed: before a record at ``t`` touches a cycle, the cycle's timers with an instant ``< t``
have fired (records at an instant are applied before that instant's timers); ``--until T`` fires
those ``<= T``.
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email import policy as email_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
METRICS = ("first_response", "next_response", "resolution")


def to_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def duration_ms(text: str) -> int:
    units = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000}
    parts = re.findall(r"(\d+)([dhms])", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(int(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------------------------------------
# Calendars: open intervals, business time, due instants
# ---------------------------------------------------------------------------------------------


def _instant(day: date, hhmm: str, zone: ZoneInfo) -> int:
    """A wall time of a local day as UTC ms; 24:00 is the next day's midnight. The test calendar
    has no interval edge inside a DST gap or overlap, which this check makes sure of."""
    hours, minutes = map(int, hhmm.split(":"))
    wall = datetime.combine(day, time()) + timedelta(hours=hours, minutes=minutes)
    local = wall.replace(tzinfo=zone)
    back = local.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
    assert back == wall, f"{wall} does not exist in {zone}"
    assert local.utcoffset() == wall.replace(tzinfo=zone, fold=1).utcoffset(), (
        f"{wall} is ambiguous"
    )
    return int(local.timestamp() * 1000)


@dataclass
class Calendar:
    intervals: list[tuple[int, int]]  # open [start, end) in UTC ms, sorted, not overlapping

    @classmethod
    def from_yaml(cls, spec: dict[str, Any], first: date, last: date) -> Calendar:
        zone = ZoneInfo(spec.get("timezone", "UTC"))
        holidays = {date.fromisoformat(d) for d in spec.get("holidays", [])}
        out: list[tuple[int, int]] = []
        day = first
        while day <= last:
            if day not in holidays:
                for span in spec["week"].get(DAYS[day.weekday()], []):
                    start, end = span.split("-")
                    out.append((_instant(day, start, zone), _instant(day, end, zone)))
            day += timedelta(days=1)
        out.sort()
        merged: list[tuple[int, int]] = []
        for a, b in out:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return cls(merged)

    def business(self, t0: int, t1: int) -> int:
        """Length of [t0, t1) inside open hours, in ms."""
        return sum(max(0, min(b, t1) - max(a, t0)) for a, b in self.intervals)

    def due(self, t0: int, d: int) -> int:
        """The earliest t with business(t0, t) == d; due(t0, 0) is t0 itself."""
        if d <= 0:
            return t0
        left = d
        for a, b in self.intervals:
            if b <= t0:
                continue
            s = max(a, t0)
            if s + left <= b:
                return s + left
            left -= b - s
        raise AssertionError("calendar span too short for this test")

    def is_open(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.intervals)


@dataclass
class Policy:
    name: str
    calendar: Calendar
    targets: dict[str, int]  # metric -> ms
    warn_at: float


def load_policies(rules_path: Path, first: date, last: date) -> dict[str, Policy]:
    rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    calendars = {
        name: Calendar.from_yaml(spec, first, last) for name, spec in rules["calendars"].items()
    }
    return {
        p["name"]: Policy(
            p["name"],
            calendars[p["calendar"]],
            {m: duration_ms(v) for m, v in p["targets"].items()},
            float(p.get("warn_at", 0.8)),
        )
        for p in rules["sla_policies"]
    }


# ---------------------------------------------------------------------------------------------
# Cycles
# ---------------------------------------------------------------------------------------------


@dataclass
class Cycle:
    ticket_id: str
    metric: str
    number: int
    policy: Policy
    started_at: int
    target: int
    warn: int  # business ms of the warning: floor(warn_at x target)
    status: str = "active"  # active paused met breached cancelled
    running: bool = True  # started, not fulfilled or cancelled (a breached cycle still runs)
    clock_on: bool = True  # business time is accruing (not paused, not stopped by a solve)
    segment: int = 0  # when the clock last (re)started
    banked: int = 0  # business ms before ``segment``
    due_at: int = 0
    warned_at: int | None = None
    breached_at: int | None = None
    fulfilled_at: int | None = None
    business_ms: int | None = None

    def __post_init__(self) -> None:
        self.segment = self.started_at
        self.due_at = self.policy.calendar.due(self.started_at, self.target)

    def spent(self, t: int) -> int:
        extra = self.policy.calendar.business(self.segment, t) if self.clock_on else 0
        return self.banked + extra

    def settle(self, t: int, *, inclusive: bool = False) -> None:
        """Fires the timers this cycle has before ``t`` (at or before, with ``inclusive``)."""
        if not (self.running and self.clock_on) or self.status == "breached":
            return
        cal = self.policy.calendar

        def passed(instant: int) -> bool:
            return instant <= t if inclusive else instant < t

        if self.warned_at is None:
            warn_instant = cal.due(self.segment, self.warn - self.banked)
            if passed(warn_instant):
                self.warned_at = warn_instant
        due = cal.due(self.segment, self.target - self.banked)
        if passed(due):
            self.status, self.breached_at, self.due_at = "breached", due, due

    def fulfil(self, t: int) -> None:
        self.fulfilled_at, self.business_ms = t, self.spent(t)
        if self.status != "breached":
            self.status = "met"
        self.stop(t)
        self.running = False

    def cancel(self, t: int) -> None:
        if self.status != "breached":
            self.status = "cancelled"
        self.stop(t)
        self.running = False

    def stop(self, t: int) -> None:
        if self.clock_on:
            self.banked = self.spent(t)
            self.clock_on = False

    def pause(self, t: int) -> None:
        self.stop(t)
        if self.status != "breached":
            self.status = "paused"  # due_at keeps the value from before the pause

    def resume(self, t: int) -> None:
        """The clock restarts at ``t``; a met or paused cycle becomes active with a new due."""
        self.running = True
        if not self.clock_on:
            self.clock_on, self.segment = True, t
        if self.status != "breached":
            self.status = "active"
            self.due_at = self.policy.calendar.due(t, self.target - self.banked)

    def row(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "metric": self.metric,
            "cycle": self.number,
            "policy": self.policy.name,
            "status": self.status,
            "started_at": self.started_at,
            "due_at": self.due_at,
            "warned_at": self.warned_at,
            "breached_at": self.breached_at,
            "fulfilled_at": self.fulfilled_at,
            "business_ms": self.business_ms,
            "target_seconds": self.target / 1000,
        }


@dataclass
class Ticket:
    ticket_id: str
    policy: Policy | None
    opened_at: int
    status: str = "new"
    solved_at: int | None = None
    replied: bool = False
    reopens: int = 0
    pauses: int = 0
    cycles: list[Cycle] = field(default_factory=list)

    def running(self, metric: str) -> Cycle | None:
        return next((c for c in self.cycles if c.metric == metric and c.running), None)

    def resolution(self) -> Cycle | None:
        return next((c for c in self.cycles if c.metric == "resolution"), None)

    def start(self, metric: str, t: int) -> None:
        if self.policy is None or metric not in self.policy.targets:
            return
        target = self.policy.targets[metric]
        number = 1 + sum(1 for c in self.cycles if c.metric == metric)
        warn = math.floor(self.policy.warn_at * target)  # docs/SLA.md: rounded down to whole ms
        self.cycles.append(Cycle(self.ticket_id, metric, number, self.policy, t, target, warn))

    def settle(self, t: int, *, inclusive: bool = False) -> None:
        for cycle in self.cycles:
            cycle.settle(t, inclusive=inclusive)

    # -- what records do (CONTRACT §1 Tickets, §3) ----------------------------------------------

    def inbound(self, t: int) -> None:
        if self.status == "solved":
            self.reopen(t, "open")
        elif self.status == "pending":
            self.status = "open"
            if (res := self.resolution()) is not None:
                res.resume(t)
        # next_response: the ticket has had a public reply and none is running (docs/SLA.md: an
        # inbound contact that reopens starts one only if the ticket was replied to)
        if self.replied and self.running("next_response") is None:
            self.start("next_response", t)

    def public_reply(self, t: int) -> None:
        if self.status == "solved":
            self.replied = True  # docs/SLA.md: only records that the ticket was replied to
            return
        for metric in ("first_response", "next_response"):
            if (cycle := self.running(metric)) is not None:
                cycle.fulfil(t)
        self.replied = True
        if self.status == "new":
            self.status = "open"

    def set_status(self, t: int, status: str) -> None:
        if status == self.status:
            return  # setting the status a ticket already has changes nothing
        res = self.resolution()
        if status == "solved":
            for metric in ("first_response", "next_response"):
                if (cycle := self.running(metric)) is not None:
                    cycle.cancel(t)
            if res is not None:
                res.fulfil(t)
            self.status, self.solved_at = "solved", t
        elif self.status == "solved":
            self.reopen(t, status)
        elif status == "pending":
            self.pauses += 1
            self.status = "pending"
            if res is not None:
                res.pause(t)
        else:  # open, from new or pending
            if self.status == "pending" and res is not None:
                res.resume(t)
            self.status = "open"

    def reopen(self, t: int, status: str) -> None:
        """A solved ticket reopened (inbound contact in the window, or agent open/pending):
        resolution resumes (to ``open``) or stays stopped but counts as paused (``pending``)."""
        self.reopens += 1
        self.status = status
        res = self.resolution()
        if res is None:
            return
        if status == "open":
            res.resume(t)
        else:
            res.running = True
            res.pause(t)
            self.pauses += 1


# ---------------------------------------------------------------------------------------------
# From input records to ticket signals (CONTRACT §1)
# ---------------------------------------------------------------------------------------------


class Keyed:
    def __init__(self, key: str) -> None:
        self.key = key.encode()

    def h(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()[:20]


def _ids(header: str | None) -> list[str]:
    return [x.strip().lower() for x in re.findall(r"<([^<>]+)>", header or "")]


@dataclass(frozen=True)
class Signal:
    """What one record does to one conversation: ``inbound``, ``reply``, ``status:<s>``."""

    at: int
    conversation_id: str
    what: str


class Signals:
    """Turns records (in processing order) into signals; e-mails threaded as §1 says."""

    def __init__(self, key: str) -> None:
        self.keyed = Keyed(key)
        self.known_mail: dict[str, str] = {}  # message id -> conversation

    def of(self, record: dict[str, Any]) -> Iterator[Signal]:
        h = self.keyed.h
        at, source, p = to_ms(record["at"]), record["source"], record["payload"]
        if source == "telegram":
            message = p.get("message")
            if message and not message.get("from", {}).get("is_bot", False):
                yield Signal(at, f"telegram:{h(str(message['chat']['id']))}", "inbound")
        elif source == "whatsapp":
            for entry in p["entry"]:
                for change in entry["changes"]:
                    for message in change["value"].get("messages", []):
                        yield Signal(at, f"whatsapp:{h(message['from'])}", "inbound")
        elif source == "email":
            mail = email.message_from_string(p, policy=email_policy.compat32)
            own = _ids(mail["Message-ID"])
            refs, reply_to = _ids(mail["References"]), _ids(mail["In-Reply-To"])
            conversation = next(
                (self.known_mail[i] for i in refs + reply_to if i in self.known_mail), None
            )
            if conversation is None:
                conversation = f"email:{h((refs or reply_to or own)[0])}"
            for i in own:
                self.known_mail[i] = conversation
            yield Signal(at, conversation, "inbound")
        elif source == "chat":
            yield Signal(at, f"chat:{p['session_id']}", "inbound")
        elif source == "form":
            yield Signal(at, f"form:{p['submission_id']}", "inbound")
        elif source == "vk":
            obj = p["object"]
            if p["type"] == "message_new":
                yield Signal(at, f"vk:dm:{h(str(obj['message']['from_id']))}", "inbound")
            elif p["type"] == "wall_reply_new":
                place = f"{obj['post_owner_id']}_{obj['post_id']}"
                yield Signal(at, f"vk:wall:{place}:{h(str(obj['from_id']))}", "inbound")
        elif source == "phone":
            conversation = f"phone:{h(p['caller'])}"  # the generator's callers are E.164 already
            yield Signal(at, conversation, "inbound")
            if p["status"] == "answered":
                yield Signal(at, conversation, "reply")
        elif source == "agent" and p["type"] != "presence":  # presence moves no SLA clock
            conversation = p["conversation_id"]
            if p["type"] == "reply" and p.get("public", True):
                if p.get("message_id"):
                    self.known_mail[p["message_id"].strip("<> ").lower()] = conversation
                yield Signal(at, conversation, "reply")
            elif p["type"] == "status":
                yield Signal(at, conversation, f"status:{p['status']}")


@dataclass
class Outcome:
    tickets: dict[str, Ticket]
    rows: list[dict[str, Any]]
    reopens_by_contact: int = 0
    reopens_by_agent: int = 0
    followups: int = 0  # tickets opened after the reopen window on a conversation


def expected_sla(
    records: Iterable[dict[str, Any]],
    *,
    key: str,
    policy_of: dict[str, str | None],
    policies: dict[str, Policy],
    reopen_within_ms: int,
    until: int,
) -> Outcome:
    """Every cycle of every ticket with a policy. ``records`` are the well-formed input records;
    ``policy_of`` names the policy of each ticket that opens (from the test's own ledger)."""
    ordered = sorted(enumerate(records), key=lambda item: (to_ms(item[1]["at"]), item[0]))
    signals = Signals(key)
    latest: dict[str, Ticket] = {}
    tickets: dict[str, Ticket] = {}
    numbers: dict[str, int] = {}
    outcome = Outcome(tickets, [])
    for _, record in ordered:
        for s in signals.of(record):
            ticket = latest.get(s.conversation_id)
            if s.what == "inbound" and (
                ticket is None
                or (
                    ticket.status == "solved"
                    and ticket.solved_at is not None
                    and s.at - ticket.solved_at > reopen_within_ms
                )
            ):
                numbers[s.conversation_id] = numbers.get(s.conversation_id, 0) + 1
                if numbers[s.conversation_id] > 1:
                    outcome.followups += 1
                ticket_id = f"{s.conversation_id}#{numbers[s.conversation_id]}"
                name = policy_of[ticket_id]
                ticket = Ticket(ticket_id, policies[name] if name else None, s.at)
                latest[s.conversation_id] = tickets[ticket_id] = ticket
                ticket.start("first_response", s.at)
                ticket.start("resolution", s.at)
                continue
            assert ticket is not None, s  # agent records name conversations that have a ticket
            ticket.settle(s.at)
            if s.what == "inbound":
                outcome.reopens_by_contact += ticket.status == "solved"
                ticket.inbound(s.at)
            elif s.what == "reply":
                ticket.public_reply(s.at)
            else:
                status = s.what.split(":")[1]
                outcome.reopens_by_agent += ticket.status == "solved" and status != "solved"
                ticket.set_status(s.at, status)
    for ticket in tickets.values():
        ticket.settle(until, inclusive=True)
        outcome.rows.extend(c.row() for c in ticket.cycles)
    return outcome


def read_jsonl(path: Path, skip: set[str]) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line and line not in skip]

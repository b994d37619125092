"""The analyst views, each checked against values worked out by hand from hand-built rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from processors.model import CycleState, DomainEvent, TicketState
from sinks.backend import Backend
from sinks.writer import ProjectionWriter
from tests.sinks.builders import DAY, HOUR, cycle, event, ms, survey, ticket

D = dt.date


def write(
    backend: Backend,
    events: Sequence[DomainEvent] = (),
    tickets: Sequence[TicketState] = (),
    cycles: Sequence[CycleState] = (),
) -> None:
    writer = ProjectionWriter(backend)
    writer.add_events(events)
    writer.add_tickets(tickets)
    writer.add_cycles(cycles)
    writer.flush()


def q(backend: Backend, sql: str) -> list[dict[str, Any]]:
    return backend.query(sql)


def test_csat_daily_counts_responses_and_positive_scores(warehouse: Backend) -> None:
    day1, day2 = ms("2026-03-01T10:00:00Z"), ms("2026-03-02T23:59:59.999Z")
    write(
        warehouse,
        events=[
            survey("s1", day1, "csat", 5),
            survey("s2", day1 + 1, "csat", 4),
            survey("s3", day1 + 2, "csat", 3),
            survey("s4", day1 + 3, "csat", 1),
            survey("s5", day2, "csat", 2),
            survey("n1", day1, "nps", 10),  # not a CSAT answer
        ],
    )
    rows = q(
        warehouse,
        "SELECT day, responses, positive, negative, csat "
        "FROM supportstream.csat_daily ORDER BY day",
    )
    assert rows == [
        {"day": D(2026, 3, 1), "responses": 4, "positive": 2, "negative": 1, "csat": 0.5},
        {"day": D(2026, 3, 2), "responses": 1, "positive": 0, "negative": 1, "csat": 0.0},
    ]


def test_nps_daily_buckets_scores(warehouse: Backend) -> None:
    day1, day2 = ms("2026-03-01T10:00:00Z"), ms("2026-03-03T00:00:00Z")
    scores = [10, 9, 8, 7, 6, 0]
    write(
        warehouse,
        events=[survey(f"n{i}", day1 + i, "nps", s) for i, s in enumerate(scores)]
        + [survey("m1", day2, "nps", 10), survey("c1", day2, "csat", 1)],
    )
    rows = q(
        warehouse,
        "SELECT day, responses, promoters, passives, detractors, nps "
        "FROM supportstream.nps_daily ORDER BY day",
    )
    assert rows == [
        {
            "day": D(2026, 3, 1),
            "responses": 6,
            "promoters": 2,
            "passives": 2,
            "detractors": 2,
            "nps": 0.0,
        },
        {
            "day": D(2026, 3, 3),
            "responses": 1,
            "promoters": 1,
            "passives": 0,
            "detractors": 0,
            "nps": 100.0,
        },
    ]


def test_csi_quarterly_is_attract_over_detract_and_null_without_detractors(
    warehouse: Backend,
) -> None:
    q1, q2 = ms("2026-02-10T00:00:00Z"), ms("2026-04-01T00:00:00Z")
    write(
        warehouse,
        events=[survey(f"a{i}", q1 + i, "nps", s) for i, s in enumerate([8, 9, 10, 3, 0, 5])]
        + [survey("b1", q2, "nps", 9), survey("b2", q2 + 1, "nps", 4)],
    )
    rows = q(
        warehouse,
        "SELECT quarter, attract, detract, csi FROM supportstream.csi_quarterly ORDER BY quarter",
    )
    assert rows == [
        {"quarter": D(2026, 1, 1), "attract": 3, "detract": 2, "csi": 1.5},
        {"quarter": D(2026, 4, 1), "attract": 1, "detract": 0, "csi": None},
    ]


def test_repeat_contacts_use_a_seven_day_window_inclusive(warehouse: Backend) -> None:
    solved = ms("2026-03-01T12:00:00Z")
    tickets = [
        # X: B opens exactly 7 days after A was solved -> a repeat contact (168 h).
        ticket(ticket_id="A#1", customer_id="X", opened_at=solved - DAY, solved_at=solved),
        ticket(ticket_id="B#1", customer_id="X", opened_at=solved + 7 * DAY),
        # Y: one millisecond later than 7 days -> not a repeat contact.
        ticket(ticket_id="D#1", customer_id="Y", opened_at=solved - DAY, solved_at=solved),
        ticket(ticket_id="E#1", customer_id="Y", opened_at=solved + 7 * DAY + 1),
        # Z: G opened before F was solved -> not a repeat contact (of F).
        ticket(ticket_id="F#1", customer_id="Z", opened_at=solved - DAY, solved_at=solved),
        ticket(ticket_id="G#1", customer_id="Z", opened_at=solved - 1),
        # W: H solved, then reopened and solved again 10 days later; I opened 2 days after
        # the first solve -> a repeat contact found through the ticket.solved event.
        ticket(
            ticket_id="H#1", customer_id="W", opened_at=solved - DAY, solved_at=solved + 10 * DAY
        ),
        ticket(ticket_id="I#1", customer_id="W", opened_at=solved + 2 * DAY),
        # V: another customer's solve does not count.
        ticket(ticket_id="J#1", customer_id="V", opened_at=solved + HOUR),
    ]
    events = [
        event("h-solved-1", "ticket.solved", solved, ticket_id="H#1", customer_id="W"),
        event("h-solved-2", "ticket.solved", solved + 10 * DAY, ticket_id="H#1", customer_id="W"),
    ]
    write(warehouse, events=events, tickets=tickets)
    rows = q(
        warehouse,
        "SELECT ticket_id, customer_id, previous_ticket_id, previous_solved_at, gap_hours "
        "FROM supportstream.repeat_contacts ORDER BY ticket_id",
    )
    utc = dt.UTC
    assert rows == [
        {
            "ticket_id": "B#1",
            "customer_id": "X",
            "previous_ticket_id": "A#1",
            "previous_solved_at": dt.datetime(2026, 3, 1, 12, tzinfo=utc),
            "gap_hours": 168.0,
        },
        {
            "ticket_id": "I#1",
            "customer_id": "W",
            "previous_ticket_id": "H#1",
            "previous_solved_at": dt.datetime(2026, 3, 1, 12, tzinfo=utc),
            "gap_hours": 48.0,
        },
    ]


def test_sla_achievement_counts_outcomes_per_day_policy_metric(warehouse: Backend) -> None:
    day1, day2 = ms("2026-03-01T10:00:00Z"), ms("2026-03-02T00:00:00Z")
    breach = day1 + HOUR
    cycles = [
        cycle(ticket_id="t1", started_at=day1, status="met", version=2),
        cycle(ticket_id="t2", started_at=day1, status="met"),
        cycle(ticket_id="t3", started_at=day1, status="breached", breached_at=breach),
        # breached, then fulfilled late: still a breach
        cycle(
            ticket_id="t4",
            metric="next_response",
            started_at=day1,
            status="breached",
            breached_at=breach,
        ),
        cycle(ticket_id="t5", started_at=day1, status="active"),
        cycle(ticket_id="t6", started_at=day1, status="cancelled"),
        cycle(ticket_id="t7", started_at=day2, status="met", policy="vip"),
        cycle(ticket_id="t8", started_at=day1, status="met", policy=""),  # no policy: ignored
    ]
    # t1 was active first: FINAL keeps its last version only.
    write(warehouse, cycles=[cycle(ticket_id="t1", started_at=day1, status="active", version=1)])
    write(warehouse, cycles=cycles)
    rows = q(
        warehouse,
        "SELECT day, policy, metric, met, breached, running, cancelled, achievement "
        "FROM supportstream.sla_achievement ORDER BY day, policy, metric",
    )
    assert rows == [
        {
            "day": D(2026, 3, 1),
            "policy": "standard",
            "metric": "first_response",
            "met": 2,
            "breached": 1,
            "running": 1,
            "cancelled": 1,
            "achievement": 2 / 3,
        },
        {
            "day": D(2026, 3, 1),
            "policy": "standard",
            "metric": "next_response",
            "met": 0,
            "breached": 1,
            "running": 0,
            "cancelled": 0,
            "achievement": 0.0,
        },
        {
            "day": D(2026, 3, 2),
            "policy": "vip",
            "metric": "first_response",
            "met": 1,
            "breached": 0,
            "running": 0,
            "cancelled": 0,
            "achievement": 1.0,
        },
    ]


def test_customer_health_scores_recent_signals(warehouse: Backend) -> None:
    latest = ms("2026-03-31T12:00:00Z")
    recent, old = latest - 5 * DAY, latest - 31 * DAY
    tickets = [
        # R: one complaint in the window, one outside it, one breach in the window,
        # last CSAT 1 (after a 5), last NPS 3.
        ticket(ticket_id="r1", customer_id="R", kind="complaint", opened_at=recent, tier="vip"),
        ticket(ticket_id="r2", customer_id="R", kind="complaint", opened_at=old, tier="active"),
        # H: happy: CSAT 5, NPS 10, no problems.
        ticket(ticket_id="h1", customer_id="H", opened_at=recent),
    ]
    cycles = [
        cycle(ticket_id="r1", status="breached", breached_at=recent + HOUR),
        cycle(ticket_id="r2", status="breached", breached_at=old + HOUR),
    ]
    events = [
        survey("r-c1", recent, "csat", 5, ticket_id="r1", customer_id="R"),
        survey("r-c2", recent + HOUR, "csat", 1, ticket_id="r1", customer_id="R"),
        survey("r-n1", recent + HOUR, "nps", 3, ticket_id="r1", customer_id="R"),
        survey("h-c1", recent, "csat", 5, ticket_id="h1", customer_id="H"),
        survey("h-n1", recent, "nps", 10, ticket_id="h1", customer_id="H"),
        # C: a CRM profile says churned; no tickets at all.
        event(
            "c-up",
            "customer.upserted",
            latest,
            ticket_id="",
            customer_id="C",
            tier="active",
            status="churned",
            mrr=None,
            identities="",
        ),
    ]
    write(warehouse, events=events, tickets=tickets, cycles=cycles)
    rows = q(
        warehouse,
        "SELECT customer_id, tier, status, tickets_30d, complaints_30d, breaches_30d, "
        "repeat_contacts_30d, last_csat, last_nps, churn_risk "
        "FROM supportstream.customer_health ORDER BY customer_id",
    )
    assert rows == [
        {
            "customer_id": "C",
            "tier": "active",
            "status": "churned",
            "tickets_30d": 0,
            "complaints_30d": 0,
            "breaches_30d": 0,
            "repeat_contacts_30d": 0,
            "last_csat": None,
            "last_nps": None,
            "churn_risk": 1.0,
        },
        {
            "customer_id": "H",
            "tier": "active",
            "status": "active",
            "tickets_30d": 1,
            "complaints_30d": 0,
            "breaches_30d": 0,
            "repeat_contacts_30d": 0,
            "last_csat": 5,
            "last_nps": 10,
            "churn_risk": 0.0,
        },
        # 0.15 (1 complaint) + 0.10 (1 breach) + 0.25 (CSAT <= 2) + 0.20 (NPS <= 6)
        {
            "customer_id": "R",
            "tier": "vip",
            "status": "active",
            "tickets_30d": 1,
            "complaints_30d": 1,
            "breaches_30d": 1,
            "repeat_contacts_30d": 0,
            "last_csat": 1,
            "last_nps": 3,
            "churn_risk": 0.7,
        },
    ]

"""The projection writer on the embedded warehouse: row conversion, current state under FINAL,
and idempotence under replay and at-least-once redelivery (the design in sinks/writer.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.model import DomainEvent, Output
from processors.rows import DataNotJson, event_data_json
from sinks.backend import Backend, SinkError
from sinks.writer import (
    _CYCLES,
    _DEAD_LETTERS,
    _EVENTS,
    _TICKETS,
    TABLES,
    ProjectionWriter,
    dead_letter_id,
    instant,
)
from tests.sinks.builders import DAY, cycle, dead_letter, event, ms, survey, ticket

UTC = dt.UTC


def counts(backend: Backend, final: bool = False) -> dict[str, int]:
    suffix = " FINAL" if final else ""
    return {
        t: int(backend.query(f"SELECT count() AS n FROM supportstream.{t}{suffix}")[0]["n"])
        for t in TABLES
    }


def replay_outputs() -> list[Output]:
    """A small deterministic 'run': steps of processor output, with tickets and cycles changing
    several times, events across a month boundary, a dead letter."""
    t1, t2 = "chat:s1#1", "telegram:abc#1"
    steps = [
        Output(
            events=(
                event("e1", "ticket.opened", ms("2026-02-28T23:59:59.999Z"), channel="chat"),
                event("e2", "contact.received", ms("2026-02-28T23:59:59.999Z"), channel="chat"),
            ),
            tickets=(ticket(ticket_id=t1, version=1),),
            cycles=(cycle(ticket_id=t1, version=1),),
        ),
        Output(
            events=(event("e3", "agent.replied", ms("2026-03-01T00:10:00Z"), agent_id="a.iv"),),
            tickets=(ticket(ticket_id=t1, status="open", agent_reply_count=1, version=2),),
            cycles=(
                cycle(
                    ticket_id=t1,
                    status="met",
                    fulfilled_at=ms("2026-03-01T00:10:00Z"),
                    business_seconds=600.0,
                    version=2,
                ),
            ),
            dead_letters=(dead_letter("in.jsonl:3"),),
        ),
        Output(
            events=(
                event("e4", "ticket.opened", ms("2026-03-01T01:00:00Z"), ticket_id=t2),
                survey("e5", ms("2026-03-01T02:00:00Z"), "csat", 5),
            ),
            tickets=(
                ticket(ticket_id=t2, channel="telegram", version=1),
                ticket(ticket_id=t1, status="solved", csat=5, version=3),
            ),
        ),
    ]
    return steps


def run(backend: Backend, batch_size: int, *, compact: bool = False) -> ProjectionWriter:
    writer = ProjectionWriter(backend, batch_size=batch_size)
    for step in replay_outputs():
        writer.add_output(step)
    writer.flush()
    if compact:
        writer.compact()
    return writer


def test_rows_are_converted_for_their_columns(warehouse: Backend) -> None:
    writer = ProjectionWriter(warehouse)
    writer.add_events(
        [
            event(
                "e1",
                "contact.received",
                ms("2026-03-01T12:00:00.123Z"),
                channel="telegram",
                text='Ёжик "в" тумане\n',
                duplicate=False,
                zeta=1,
                alpha=None,
            )
        ]
    )
    writer.add_tickets([ticket(solved_at=None, csat=4, nps=None)])
    writer.add_cycles([cycle(warned_at=ms("2026-03-02T09:48:00.001Z"), business_seconds=None)])
    writer.flush()

    (ev,) = warehouse.query("SELECT * FROM supportstream.events")
    assert ev["at"] == dt.datetime(2026, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    assert ev["data"] == (
        '{"alpha":null,"channel":"telegram","duplicate":false,'
        '"text":"Ёжик \\"в\\" тумане\\n","zeta":1}'
    )
    assert json.loads(ev["data"])["text"] == 'Ёжик "в" тумане\n'
    assert ev["channel"] == "telegram"  # convenience column filled from data
    assert ev["agent_id"] == ""

    (tk,) = warehouse.query("SELECT * FROM supportstream.tickets")
    assert tk["solved_at"] is None and tk["nps"] is None and tk["csat"] == 4
    assert tk["opened_day"] == dt.date(2026, 3, 2)
    assert tk["opened_at"] == instant(ms("2026-03-02T09:00:00Z"))

    (cy,) = warehouse.query(
        "SELECT warned_at, toUnixTimestamp64Milli(warned_at) AS w, business_seconds "
        "FROM supportstream.sla_metrics"
    )
    assert cy["w"] == ms("2026-03-02T09:48:00.001Z")
    assert cy["business_seconds"] is None
    assert writer.rows_written == {"events": 1, "sla_metrics": 1, "tickets": 1, "dead_letters": 0}


def test_tickets_final_shows_the_latest_version_per_ticket(warehouse: Backend) -> None:
    writer = ProjectionWriter(warehouse)
    # Separate flushes: three physical rows for one ticket, FINAL keeps version 3.
    for version, status in ((1, "new"), (3, "solved"), (2, "open")):
        writer.add_tickets([ticket(version=version, status=status)])
        writer.flush()
    writer.add_tickets([ticket(ticket_id="other#1", version=7, status="pending")])
    writer.flush()

    rows = warehouse.query(
        "SELECT ticket_id, status, version FROM supportstream.tickets FINAL ORDER BY ticket_id"
    )
    assert rows == [
        {"ticket_id": "chat:s1#1", "status": "solved", "version": 3},
        {"ticket_id": "other#1", "status": "pending", "version": 7},
    ]


def test_a_batch_keeps_only_the_highest_version_of_each_key(warehouse: Backend) -> None:
    writer = ProjectionWriter(warehouse)
    writer.add_tickets([ticket(version=1), ticket(version=3, status="open"), ticket(version=2)])
    writer.add_cycles([cycle(version=1), cycle(version=2, status="met")])
    writer.flush()
    assert counts(warehouse)["tickets"] == 1
    assert warehouse.query("SELECT status FROM supportstream.tickets") == [{"status": "open"}]
    assert warehouse.query("SELECT status FROM supportstream.sla_metrics") == [{"status": "met"}]


def test_replaying_the_same_input_leaves_every_count_unchanged(warehouse: Backend) -> None:
    run(warehouse, batch_size=2)
    first = counts(warehouse)
    assert all(n > 0 for n in first.values())

    run(warehouse, batch_size=2)

    # Same input, same flush points, same batches, same tokens: nothing new, even without FINAL.
    assert counts(warehouse) == first


def test_each_tables_sorting_key_is_the_one_its_ddl_declares(warehouse: Backend) -> None:
    declared = {
        row["name"]: row["sorting_key"]
        for row in warehouse.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = 'supportstream'"
        )
    }
    for table in (_EVENTS, _TICKETS, _CYCLES, _DEAD_LETTERS):
        assert ", ".join(table.sorting_key) == declared[table.name], table.name


def _parts(backend: Backend, table: str) -> int:
    return int(
        backend.query(
            "SELECT count() AS n FROM system.parts "
            f"WHERE database = 'supportstream' AND table = '{table}' AND active"
        )[0]["n"]
    )


def test_compact_leaves_a_table_with_one_row_per_key_as_it_is(warehouse: Backend) -> None:
    """A clean run's events are one row per key in several parts: compact() has nothing to
    merge there and does not rewrite them; the tickets, several versions each, it merges."""
    run(warehouse, batch_size=2)
    events_parts = _parts(warehouse, "events")
    assert (
        events_parts > 1 and counts(warehouse)["events"] == counts(warehouse, final=True)["events"]
    )
    assert counts(warehouse)["tickets"] > counts(warehouse, final=True)["tickets"]

    ProjectionWriter(warehouse).compact()

    assert _parts(warehouse, "events") == events_parts
    assert counts(warehouse) == counts(warehouse, final=True)
    assert _parts(warehouse, "tickets") == 1


def test_redelivery_with_other_batch_boundaries_is_undone_by_compact(warehouse: Backend) -> None:
    """The case tokens cannot catch: a redelivery cut into different batches. ReplacingMergeTree
    keys make it harmless under FINAL, and compact() makes count() right again."""
    run(warehouse, batch_size=2, compact=True)
    compacted = counts(warehouse)
    assert compacted == counts(warehouse, final=True)
    assert compacted == {"events": 5, "sla_metrics": 1, "tickets": 2, "dead_letters": 1}

    run(warehouse, batch_size=3)  # different boundaries: some rows are written again
    assert counts(warehouse)["events"] > compacted["events"]  # tokens could not help here
    assert counts(warehouse, final=True) == compacted

    ProjectionWriter(warehouse).compact()
    assert counts(warehouse) == compacted

    run(warehouse, batch_size=2, compact=True)  # the normal replay: unchanged
    assert counts(warehouse) == compacted


def test_events_across_partitions_deduplicate_as_one_batch(warehouse: Backend) -> None:
    evs = [
        event("jan", "contact.received", ms("2026-01-31T23:59:59.999Z")),
        event("feb", "contact.received", ms("2026-02-01T00:00:00Z")),
        event("mar", "contact.received", ms("2026-03-01T00:00:00Z")),
    ]
    for _ in range(2):
        writer = ProjectionWriter(warehouse)
        writer.add_events(evs)
        writer.flush()
    assert counts(warehouse)["events"] == 3


def test_a_full_batch_is_written_at_once(warehouse: Backend) -> None:
    writer = ProjectionWriter(warehouse, batch_size=2)
    writer.add_dead_letters([dead_letter("in:1"), dead_letter("in:2")])
    assert counts(warehouse)["dead_letters"] == 2
    writer.add_dead_letters([dead_letter("in:3")])
    assert writer.pending == 1
    assert writer.flush() == 1
    assert writer.pending == 0
    assert writer.rows_written["dead_letters"] == 3


def test_an_event_whose_data_is_not_json_fails_the_flush_naming_it(warehouse: Backend) -> None:
    writer = ProjectionWriter(warehouse)
    writer.add_events(
        [event("e-ok", "ticket.opened", DAY), event("e-bad", "x", DAY, day=dt.date(2026, 3, 2))]
    )

    with pytest.raises(SinkError, match="event e-bad has data that is not JSON"):
        writer.flush()
    assert writer.rows_written["events"] == 0
    assert writer.pending == 2  # kept for the next flush, nothing half-written


def test_dead_letter_ids_are_deterministic(warehouse: Backend) -> None:
    a, b = dead_letter("in:1"), dead_letter("in:2")
    assert dead_letter_id(a) == dead_letter_id(dead_letter("in:1")) != dead_letter_id(b)
    writer = ProjectionWriter(warehouse)
    writer.add_dead_letters([a, a, b])
    writer.flush()
    rows = warehouse.query(
        "SELECT dead_letter_id, ref FROM supportstream.dead_letters ORDER BY ref"
    )
    assert rows == [
        {"dead_letter_id": dead_letter_id(a), "ref": "in:1"},
        {"dead_letter_id": dead_letter_id(b), "ref": "in:2"},
    ]


class FlakyBackend:
    """Delegates to a real backend; the first insert succeeds on the server but reports a
    timeout, like a connection dropped after the server committed (UNKNOWN_STATUS_OF_INSERT)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.failures = 1
        self.tokens: list[str | None] = []

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        self.tokens.append(dedup_token)
        self.inner.insert(table, columns, rows, dedup_token)
        if self.failures:
            self.failures -= 1
            raise SinkError("Code: 319. unknown status of insert", retryable=True, code=319)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_retried_flush_resends_the_same_batch_with_the_same_token(warehouse: Backend) -> None:
    flaky = FlakyBackend(warehouse)
    writer = ProjectionWriter(flaky)
    writer.add_tickets([ticket(version=1)])
    with pytest.raises(SinkError) as caught:
        writer.flush()
    assert caught.value.retryable
    assert writer.pending == 1 and writer.rows_written["tickets"] == 0

    writer.add_tickets([ticket(ticket_id="later#1")])  # arrives meanwhile: a new batch
    writer.flush()

    assert flaky.tokens[0] == flaky.tokens[1]  # the sealed batch went again, unchanged
    assert len(flaky.tokens) == 3
    assert counts(warehouse)["tickets"] == 2  # the uncertain insert did not duplicate
    assert writer.pending == 0


def test_contact_reasons_daily_sums_survive_replays(warehouse: Backend) -> None:
    tickets = [
        ticket(ticket_id="a#1", opened_day="2026-03-01", category="billing", channel="chat"),
        ticket(ticket_id="b#1", opened_day="2026-03-01", category="billing", channel="chat"),
        ticket(ticket_id="c#1", opened_day="2026-03-01", category="access", channel="email"),
        ticket(ticket_id="d#1", opened_day="2026-03-02", category="billing", channel="chat"),
    ]
    query = (
        "SELECT day, category, channel, tier, sum(tickets) AS n "
        "FROM supportstream.contact_reasons_daily GROUP BY day, category, channel, tier "
        "ORDER BY day, category"
    )
    expected = [
        {
            "day": dt.date(2026, 3, 1),
            "category": "access",
            "channel": "email",
            "tier": "active",
            "n": 1,
        },
        {
            "day": dt.date(2026, 3, 1),
            "category": "billing",
            "channel": "chat",
            "tier": "active",
            "n": 2,
        },
        {
            "day": dt.date(2026, 3, 2),
            "category": "billing",
            "channel": "chat",
            "tier": "active",
            "n": 1,
        },
    ]
    for batch_size in (2, 3, 2):  # same input three times, cut differently once
        writer = ProjectionWriter(warehouse, batch_size=batch_size)
        for version in (1, 2):  # every ticket changes once more
            writer.add_tickets([replace(t, version=version) for t in tickets])
        writer.flush()
        assert warehouse.query(query) == expected


def test_batch_size_must_be_positive(warehouse: Backend) -> None:
    with pytest.raises(ValueError):
        ProjectionWriter(warehouse, batch_size=0)


def test_day_boundaries_are_exact() -> None:
    assert instant(ms("2026-03-01T00:00:00Z") - 1) < instant(ms("2026-03-01T00:00:00Z"))
    assert instant(DAY) == dt.datetime(1970, 1, 2, tzinfo=UTC)


def test_the_batch_token_ignores_row_order(warehouse: Backend) -> None:
    """ClickHouse alone (window, no token) dedups only byte-identical blocks; the writer's
    token names the batch by its keys and versions, so a redelivery in another order within
    the same batch writes nothing either."""
    a, b = ticket(ticket_id="a#1"), ticket(ticket_id="b#1")
    for order in ([a, b], [b, a]):
        writer = ProjectionWriter(warehouse)
        writer.add_tickets(order)
        writer.flush()
    assert counts(warehouse)["tickets"] == 2


# -- the events' data text: orjson where it writes what the json module writes ------------------

# The oracle: how the writer encoded every event's data before orjson.
_JSON_DATA = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))

_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
_SCALARS = st.one_of(
    _TEXT,
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(),
    st.floats(1e-6, 1e18),
    st.sampled_from([1e-4, 9.999e-5, 1e16, 9.999999999999998e15, -0.0, 0.0, 5e-324]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _data_outcome(data: dict[Any, Any]) -> str:
    one = DomainEvent("e1", "ticket.opened", 0, "chat:s1#1", "chat:s1", "cust-a", data)
    try:
        return event_data_json(one)
    except DataNotJson:
        return "not JSON"


@settings(max_examples=500)
@given(
    data=st.dictionaries(_TEXT, _VALUES, max_size=6)
    | st.dictionaries(st.integers(), _SCALARS, max_size=2)
)
def test_event_data_is_the_text_the_json_module_writes(data: dict[Any, Any]) -> None:
    try:
        expected = _JSON_DATA.encode(data)
    except (TypeError, ValueError):
        expected = "not JSON"
    assert _data_outcome(data) == expected


def test_event_data_values_orjson_and_json_write_apart_take_the_json_way() -> None:
    for value in (1e-5, 1e16, -2.5e20, float("nan"), float("inf"), 2**64, "\ud800"):
        data = {"b": value, "a": "Ёжик \x00\u2028"}
        assert _data_outcome(data) == _JSON_DATA.encode(data)
    assert _data_outcome({1: "x", "a": 2}) == "not JSON"  # keys json cannot sort

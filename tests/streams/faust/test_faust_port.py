"""Contract suite of ``streams.faust_port``: the framework internals it relies on are where
it expects them, and each workaround does what it says. A Faust or aiokafka upgrade that moves
one of them fails here, by name."""

from __future__ import annotations

import asyncio
import inspect
import uuid
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import faust
import orjson
import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.streams import _current_event
from faust.transport.consumer import Consumer
from faust.types import TP

from streams import faust_port
from streams.faust_app import desk_table
from streams.faust_port import RecordBatches, TableWrites
from streams.faust_runner import encode_value
from tests.support.broker import Broker


def test_aiokafka_fetcher_reports_whether_a_fetch_added_records() -> None:
    method = Fetcher._proc_fetch_request
    assert inspect.iscoroutinefunction(inspect.unwrap(method))
    source = inspect.getsource(inspect.unwrap(method))
    assert "needs_wakeup" in source and "return needs_wakeup" in source


def test_fetch_backoff_pauses_only_after_an_empty_fetch_and_installs_once() -> None:
    calls: list[str] = []

    class FakeFetcher:
        async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
            calls.append(request)
            return bool(request == "records")

    faust_port.install_fetch_backoff(FakeFetcher, delay_s=0.2)
    wrapped = FakeFetcher._proc_fetch_request
    faust_port.install_fetch_backoff(FakeFetcher, delay_s=0.2)  # idempotent
    assert FakeFetcher._proc_fetch_request is wrapped

    async def timed(request: str) -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        added = await FakeFetcher()._proc_fetch_request(None, 1, request)
        return added, loop.time() - started

    added, took = asyncio.run(timed("records"))
    assert added is True and took < 0.1
    added, took = asyncio.run(timed("empty"))
    assert added is False and took >= 0.2
    assert calls == ["records", "empty"]


def test_a_fetch_cancelled_during_its_pause_ends_quietly() -> None:
    """aiokafka's ``Fetcher.close`` cancels its fetch tasks and awaits them: the pause must
    end them as the original does (returning), or every worker's shutdown prints a
    CancelledError traceback."""

    class FakeFetcher:
        async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
            return False

    faust_port.install_fetch_backoff(FakeFetcher, delay_s=10)

    async def close_while_paused() -> bool:
        task = asyncio.ensure_future(FakeFetcher()._proc_fetch_request(None, 1, None))
        await asyncio.sleep(0.05)
        task.cancel()
        result: bool = await task
        return result

    assert asyncio.run(close_while_paused()) is False


def test_the_real_fetcher_takes_the_backoff() -> None:
    faust_port.install_fetch_backoff()
    assert getattr(Fetcher._proc_fetch_request, faust_port.PATCHED) is True


def test_faust_consumer_keeps_its_committed_offsets() -> None:
    assert "_committed_offset" in inspect.getsource(Consumer.__init__)

    class App:
        class consumer:
            _committed_offset: ClassVar[dict[TP, int]] = {TP("raw", 0): 42}

    assert faust_port.committed_offset(App(), TP("raw", 0)) == 42
    assert faust_port.committed_offset(App(), TP("raw", 1)) == 0


def test_highwater_is_none_when_the_broker_does_not_answer() -> None:
    class App:
        class consumer:
            @staticmethod
            async def highwaters(tp: TP) -> dict[TP, int]:
                await asyncio.sleep(10)
                return {tp: 1}

    assert asyncio.run(faust_port.highwater(App(), TP("raw", 0), timeout_s=0.05)) is None


def test_faust_perform_seek_is_the_body_the_port_replaces() -> None:
    """The port replaces ``Consumer.perform_seek`` with Faust 0.15's body plus the fix; an
    upgrade that changes the body must be looked at again."""
    assert not getattr(Consumer.perform_seek, faust_port.PATCHED, False)  # Faust's own
    source = inspect.getsource(Consumer.perform_seek)
    assert "await self.seek_to_committed()" in source
    assert "read_offset.update(" in source and "self._committed_offset.update(" in source
    assert source.count("await ") == 1  # nothing else the replacement would have to keep


def test_a_partition_without_a_committed_offset_is_sought_to_its_start() -> None:
    """Raw partition 0 has a committed offset (seeking it is Faust's job); partition 1 has
    none and its position ran ahead while Faust discarded what it fetched: it goes back to
    its earliest offset, and a remembered commit for it is forgotten. The changelog is left
    to recovery."""
    seeks: list[tuple[TP, int]] = []

    class FakeConsumer:
        def __init__(self) -> None:
            self._read_offset: dict[Any, Any] = {}
            self._committed_offset: dict[TP, Any] = {TP("raw", 1): 124}

            class Tables:
                changelog_topics: ClassVar[set[str]] = {"desk-changelog"}

            class App:
                tables = Tables()

            self.app = App()

        async def perform_seek(self) -> None:  # replaced below
            raise AssertionError

        async def seek_to_committed(self) -> dict[TP, int | None]:
            return {TP("raw", 0): 40, TP("raw", 1): None, TP("desk-changelog", 0): None}

        def assignment(self) -> set[TP]:
            return {TP("raw", 0), TP("raw", 1), TP("desk-changelog", 0)}

        async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
            return dict.fromkeys(tps, 3)

        async def seek(self, tp: TP, offset: int) -> None:
            seeks.append((tp, offset))

    faust_port.install_seek_to_start_without_commit(FakeConsumer)
    replaced = FakeConsumer.perform_seek
    faust_port.install_seek_to_start_without_commit(FakeConsumer)  # idempotent
    assert FakeConsumer.perform_seek is replaced

    consumer = FakeConsumer()
    asyncio.run(consumer.perform_seek())

    assert seeks == [(TP("raw", 1), 3)]
    assert consumer._committed_offset == {TP("raw", 0): 40, TP("raw", 1): None}
    assert consumer._read_offset[TP("raw", 0)] == 40


def test_aiokafka_resets_its_generation_only_where_the_error_is_in_error_type() -> None:
    """The member-id patch reads the handled error from the caller's ``error_type``: every
    call of ``reset_generation`` in aiokafka's coordinator is in a function binding that name,
    except leaving the group, where forgetting the id is right."""
    import ast

    from aiokafka.consumer import group_coordinator

    tree = ast.parse(inspect.getsource(group_coordinator))
    callers: dict[str, bool] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
        calls = [
            n
            for n in ast.walk(function)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "reset_generation"
        ]
        if calls:
            callers[function.name] = "error_type" in names
    assert callers.pop("_maybe_leave_group") is False
    assert callers and all(callers.values()), callers


def test_the_member_id_is_kept_on_illegal_generation_and_forgotten_otherwise() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import IllegalGenerationError, UnknownMemberIdError

    class Coordinator(GroupCoordinator):  # type: ignore[misc]
        def __init__(self) -> None:  # only what reset_generation touches
            self.generation, self.member_id, self.rejoins = 4, "member-1", 0

        def request_rejoin(self) -> None:
            self.rejoins += 1

    faust_port.install_member_id_kept_on_illegal_generation(Coordinator)
    patched = Coordinator.reset_generation
    faust_port.install_member_id_kept_on_illegal_generation(Coordinator)  # idempotent
    assert Coordinator.reset_generation is patched
    assert GroupCoordinator.reset_generation is not patched  # the subclass only

    def handle(coordinator: Coordinator, error_type: type | None) -> None:
        coordinator.reset_generation()

    kept = Coordinator()
    handle(kept, IllegalGenerationError)
    assert (kept.generation, kept.member_id, kept.rejoins) == (-1, "member-1", 1)
    for error in (UnknownMemberIdError, None):
        forgotten = Coordinator()
        handle(forgotten, error)
        assert (forgotten.generation, forgotten.member_id, forgotten.rejoins) == (-1, "", 1)


def test_aiokafka_joins_again_when_the_group_join_returns_none() -> None:
    """The empty-assignment patch relies on ``_do_rejoin_group`` taking None from
    ``perform_group_join`` as "back off and join again"."""
    from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator

    source = inspect.getsource(GroupCoordinator._do_rejoin_group)
    assert "assignment = await rebalance.perform_group_join()" in source
    assert "if assignment is None:" in source and "return False" in source
    assert inspect.iscoroutinefunction(inspect.unwrap(CoordinatorGroupRebalance.perform_group_join))


def test_an_empty_assignment_is_a_failed_join_that_asks_for_a_rejoin() -> None:
    class Coordinator:
        generation, rejoins = 3, 0

        def request_rejoin(self) -> None:
            self.rejoins += 1

    class Rebalance:
        answer: ClassVar[tuple[str, bytes] | None] = None

        def __init__(self) -> None:
            self.group_id, self._coordinator = "g", Coordinator()

        async def perform_group_join(self) -> tuple[str, bytes] | None:
            return self.answer

    faust_port.install_rejoin_on_empty_assignment(Rebalance)
    patched = Rebalance.perform_group_join
    faust_port.install_rejoin_on_empty_assignment(Rebalance)  # idempotent
    assert Rebalance.perform_group_join is patched

    for answer, expected, rejoins in (
        (("faust", b""), None, 1),
        (("faust", b"\x00\x04assignment"), ("faust", b"\x00\x04assignment"), 0),
        (None, None, 0),
    ):
        Rebalance.answer = answer
        rebalance = Rebalance()
        assert asyncio.run(rebalance.perform_group_join()) == expected
        assert rebalance._coordinator.rejoins == rejoins


def test_faust_recovery_keeps_what_the_watchdog_reads() -> None:
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery)
    for name in (
        "self.in_recovery",
        "self.active_tps",
        "self.active_offsets",
        "self.active_highwaters",
        "self._recovery_started_at",
        "self._active_events_received_at",
    ):
        assert name in source, name
    # it applies only offsets above what it has seen: a needless seek back costs a fetch
    assert "if seen_offset is None or offset > seen_offset:" in source


def test_a_stalled_recovery_is_sought_back_to_what_it_has_read() -> None:
    changelog, other, done = TP("desk-changelog", 0), TP("other-changelog", 0), TP("c", 1)

    recovery = SimpleNamespace(
        in_recovery=True,
        active_tps={changelog, other, done},
        active_offsets={changelog: -1, other: 4, done: 9},
        active_highwaters={changelog: 10, other: 7, done: 9},
        _recovery_started_at=100.0,
        _active_events_received_at={other: 101.5},
    )

    class App:
        def __init__(self) -> None:
            self.tables = SimpleNamespace(recovery=recovery)
            self.consumer = self
            self.seeks: list[dict[TP, int]] = []

        async def seek_wait(self, partitions: dict[TP, int]) -> None:
            self.seeks.append(dict(partitions))

    app, sought = App(), dict[TP, float]()
    now = [102.0]

    def run() -> list[TP]:
        return asyncio.run(
            faust_port.reseek_stalled_recovery(app, sought, stall_s=3.0, clock=lambda: now[0])
        )

    assert run() == []  # 2 s since the recovery started
    now[0] = 103.0
    assert run() == [changelog] and app.seeks == [{changelog: 0}]  # from its first offset
    now[0] = 105.0
    assert run() == [other] and app.seeks[-1] == {other: 5}  # the changelog was just sought
    now[0] = 106.0
    assert run() == [changelog]  # 3 s after its last seek, still nothing
    recovery.in_recovery = False
    now[0] = 200.0
    assert run() == []  # nothing while no recovery runs


def test_awaits_follows_coroutines_async_generators_and_awaitables_to_the_future() -> None:
    async def deepest(event: asyncio.Event) -> None:
        await event.wait()

    async def ticks(event: asyncio.Event) -> Any:
        await deepest(event)
        yield 1

    class Awaitable:
        def __init__(self, event: asyncio.Event) -> None:
            self.event = event

        def __await__(self) -> Any:
            return deepest(self.event).__await__()

    async def agent(event: asyncio.Event) -> None:
        async for _ in ticks(event):
            pass

    async def actor(event: asyncio.Event) -> None:
        await Awaitable(event)

    async def look() -> list[list[str]]:
        event = asyncio.Event()
        tasks = [asyncio.create_task(f(event)) for f in (agent, actor)]
        await asyncio.sleep(0)
        chains = [faust_port.awaits(task) for task in tasks]
        event.set()
        await asyncio.gather(*tasks)
        return chains

    by_agent, by_actor = asyncio.run(look())
    for chain, names in (
        (by_agent, ["agent", "ticks", "deepest", "wait"]),
        (by_actor, ["actor", "deepest", "wait"]),
    ):
        assert [line.split(" ", 1)[1] for line in chain[:-1]] == names, chain
        assert chain[0].startswith(__file__) and chain[-1].startswith("awaiting Future")


def test_faust_table_manager_starts_after_a_one_second_sleep_then_two_steps() -> None:
    # What install_tables_start_without_pause replaces (faust-streaming 0.15).
    from faust.tables.manager import TableManager

    source = inspect.getsource(TableManager.on_start)
    assert "await self.sleep(1.0)" in source
    assert "await self._update_channels()" in source
    assert "await self.recovery.start()" in source


def test_tables_start_without_pause_keeps_the_steps_and_drops_the_sleep() -> None:
    calls: list[str] = []

    class Recovery:
        async def start(self) -> None:
            calls.append("recovery")

    class FakeManager:
        should_stop = False
        recovery = Recovery()

        async def on_start(self) -> None:
            await asyncio.sleep(1.0)

        async def _update_channels(self) -> None:
            calls.append("channels")

    faust_port.install_tables_start_without_pause(FakeManager)
    faust_port.install_tables_start_without_pause(FakeManager)  # idempotent

    async def start_within_a_tenth_of_a_second() -> None:
        await asyncio.wait_for(FakeManager().on_start(), timeout=0.1)

    asyncio.run(start_within_a_tenth_of_a_second())
    assert calls == ["channels", "recovery"]
    FakeManager.should_stop = True
    asyncio.run(FakeManager().on_start())
    assert calls == ["channels", "recovery"]  # a manager stopping starts nothing


def test_faust_drains_each_message_through_wait_first_with_the_flow_suspension() -> None:
    # What install_drain_without_a_task_per_message replaces (faust-streaming 0.15): its
    # replacement repeats this body with the one wait_first changed.
    source = inspect.getsource(Consumer._drain_messages)
    assert source.count("wait_first(") == 1
    assert "callback(message), self.suspend_flow.wait()" in source
    assert source.count("await ") == 6  # sleep(0) twice, the gap, commit, wait_first, the loop
    for step in (
        "getmany(timeout=1.0)",
        "num_since_yield > yield_every",
        "offset >= r_offset",
        "await self._add_gap(tp, r_offset + 1, offset)",
        "self._n_acked >= commit_every",
        "set_read_offset(tp, offset)",
        "except self.consumer_stopped_errors:",
    ):
        assert step in source, step


class _Flow:
    """A consumer as ``_deliver`` sees it: mode's wait_first and a flow that can suspend."""

    def __init__(self) -> None:
        from mode import Service

        self.service = Service()
        self.suspend_flow = asyncio.Event()

    def wait_first(self, *coros: Any) -> Any:
        return self.service.wait_first(*coros)


def test_a_delivery_that_needs_no_wait_runs_without_a_task() -> None:
    async def main() -> tuple[list[str], int]:
        flow, done = _Flow(), []
        made = 0
        loop = asyncio.get_running_loop()

        def count(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            nonlocal made
            made += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(count)

        async def deliver(n: int) -> None:
            done.append(f"m{n}")

        for n in range(3):
            await faust_port._deliver(flow, deliver(n))
        return done, made

    done, made = asyncio.run(main())
    assert done == ["m0", "m1", "m2"] and made == 0


def test_a_delivery_that_waits_ends_when_it_is_done_or_is_cancelled_by_a_suspension() -> None:
    async def main() -> list[str]:
        flow, seen = _Flow(), []
        room = asyncio.get_running_loop().create_future()

        async def deliver(name: str, wait_for: asyncio.Future[str]) -> None:
            seen.append(f"{name} waits")
            try:
                seen.append(f"{name} got {await wait_for}")
            except asyncio.CancelledError:
                seen.append(f"{name} cancelled")
                raise

        # Waits, then finishes once what it waits for comes: the drain loop waits for it.
        asyncio.get_running_loop().call_later(0.01, room.set_result, "room")
        await faust_port._deliver(flow, deliver("a", room))
        seen.append("a delivered")
        # Waits for ever; the flow is suspended (a rebalance): the delivery is cancelled.
        never = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, flow.suspend_flow.set)
        await asyncio.wait_for(faust_port._deliver(flow, deliver("b", never)), timeout=2)
        seen.append(f"b's wait cancelled: {never.cancelled()}")
        return seen

    assert asyncio.run(main()) == [
        "a waits",
        "a got room",
        "a delivered",
        "b waits",
        "b cancelled",
        "b's wait cancelled: True",
    ]


def test_a_delivery_s_error_reaches_the_drain_loop_before_or_after_a_wait() -> None:
    async def main() -> list[str]:
        flow, errors = _Flow(), []

        async def fails_at_once() -> None:
            raise ValueError("at once")

        async def fails_later() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("later")

        for delivery in (fails_at_once(), fails_later()):
            try:
                await faust_port._deliver(flow, delivery)
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    assert asyncio.run(main()) == ["at once", "later"]


def test_the_drain_replacement_installs_once_and_is_marked() -> None:
    class FakeConsumer:
        async def _drain_messages(self, fetcher: Any) -> None:
            raise AssertionError("the original")

    faust_port.install_drain_without_a_task_per_message(FakeConsumer)
    first = FakeConsumer._drain_messages
    faust_port.install_drain_without_a_task_per_message(FakeConsumer)  # idempotent
    assert FakeConsumer._drain_messages is first
    assert getattr(first, faust_port.PATCHED) is True


# --- A standby copy follows its changelog per fetched batch (install_lean_standby) ---------


def test_faust_getmany_starts_with_the_fetch_the_standby_path_wraps() -> None:
    """``follow_standby_changelogs`` runs inside ``_wait_next_records``, between the fetch and
    ``getmany``'s own checks, which it repeats: the flow, the partitions fetched or buffered.
    Nothing is awaited between the two, so its checks hold for what getmany then sees."""
    getmany = inspect.getsource(Consumer.getmany)
    fetch = "records, active_partitions = await self._wait_next_records(timeout)\n"
    assert fetch in getmany
    after = getmany.split(fetch, 1)[1]
    assert after.lstrip().startswith("generation_id = self.app.consumer_generation_id")
    assert after.count("await ") == 1  # only perform_seek, when the flow is off
    for step in (
        "if self.flow_active:",
        "or tp in active_partitions",
        "or tp in self._buffered_partitions",
        "yield tp, to_message(tp, record)",
    ):
        assert step in after, step
    assert "return records, active_partitions" in inspect.getsource(Consumer._wait_next_records)


def test_faust_recovery_applies_a_standby_event_as_the_standby_path_does() -> None:
    """What ``Recovery._slurp_changelogs`` does with a standby partition's event is what the
    lean path does with a fetch of them; and a rebalance seeks every standby partition to its
    standby offset and clears the changelog queue (``clear_on_resume``), which ends any
    hand-over between the two paths."""
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery

    slurp = inspect.getsource(Recovery._slurp_changelogs.fun)  # a mode ServiceTask
    standby_branch = slurp.split("elif tp in standby_tps:", 1)[1].split("else:", 1)[0]
    assert "offsets = standby_offsets" in standby_branch
    assert "bufsize = buffer_sizes[tp] = table.standby_buffer_size" in standby_branch
    for step in (
        "if tp in active_tps:",
        "seen_offset = offsets.get(tp, None)",
        "if seen_offset is None or offset > seen_offset:",
        "offsets[tp] = offset",
        "buf.append(event)",
        "await table.on_changelog_event(event)",
        "table.apply_changelog_batch(buf)",
        "self._last_flush_at = now",
        "self._standbys_span is None and self.tables.standbys_ready",
        "not self.standby_remaining_total()",
        "self.tables.on_standbys_ready()",
    ):
        assert step in slurp, step
    recovery = " ".join(inspect.getsource(Recovery).split())  # whitespace as one space
    for name in (
        "self._generation_id = generation_id",
        "self.standby_tps",
        "self.tp_to_table",
        "self.buffers",
        "self._standby_events_received_at",
        '_seek_offsets)( consumer, standby_tps, standby_offsets, "standby" )',
    ):
        assert name in recovery, name
    assert "clear_on_resume=True" in inspect.getsource(TableManager)
    from faust.tables.base import Collection

    assert "self._on_changelog_event = on_changelog_event" in inspect.getsource(Collection)


def _event_attributes(function: Any) -> set[str]:
    """Attributes a store's changelog code reads of an event (``event.x``, ``event.message.x``,
    ``msg.x`` for ``msg = event.message``)."""
    import ast
    import textwrap

    read: set[str] = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "event":
                read.add(f"event.{node.attr}")
            elif node.value.id == "msg":
                read.add(f"message.{node.attr}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "event"
            and node.value.attr == "message"
        ):
            read.add(f"message.{node.attr}")
    return read


def test_the_stores_read_of_a_changelog_event_only_what_the_standby_path_gives() -> None:
    from faust.stores import memory, rocksdb

    given = {f"event.{name}" for name in faust_port._ChangelogEvent.__slots__} | {
        f"message.{name}" for name in faust_port._ChangelogMessage.__slots__
    }
    memory_reads = _event_attributes(memory.Store._create_batch_iterator)
    rocksdb_reads = _event_attributes(rocksdb.Store.apply_changelog_batch)
    assert memory_reads == {"event.key", "event.value", "event.message", "message.value",
                            "message.partition"}  # fmt: skip
    assert {"message.tp", "message.offset", "message.key"} <= rocksdb_reads
    assert memory_reads | rocksdb_reads <= given, (memory_reads | rocksdb_reads) - given


def _consumer_fetching(app: Any, fetched: list[dict[Any, list[Any]]]) -> Any:
    """Faust's own aiokafka consumer for ``app``, with the lean path installed on it, whose
    fetch (``_getmany``, aiokafka's in a consumer thread) hands out ``fetched`` in turn:
    records a plain aiokafka consumer read from the broker. Everything from
    ``_wait_next_records`` on is Faust's code."""
    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer_

    class FetchedConsumer(AIOKafkaConsumer_):  # type: ignore[misc]
        async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
            return fetched.pop(0) if fetched else {}

        def _get_active_partitions(self) -> set[TP]:
            return self.fetching

        def highwater(self, tp: TP) -> int:
            return 0

    faust_port.install_lean_standby(FetchedConsumer)

    async def nothing(*args: Any) -> None:
        return None

    consumer = FetchedConsumer(
        app.transport, callback=nothing, on_partitions_revoked=nothing,
        on_partitions_assigned=nothing,
    )  # fmt: skip
    consumer.fetching = set()
    return consumer


def _record(tp: TP, offset: int, key: str, value: bytes | None) -> Any:
    from aiokafka.structs import ConsumerRecord

    key_bytes = orjson.dumps(key)
    size = -1 if value is None else len(value)
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key_bytes, value, None,
                          len(key_bytes), size, ())  # fmt: skip


def _standby(app: Any, tp: TP, generation: int) -> tuple[Any, Any]:
    """The desk's table of ``app`` and its recovery holding ``tp`` as standby, as
    ``Recovery.on_rebalance`` and ``_build_offsets`` leave them for an empty store."""
    table = desk_table(app)
    recovery = app.tables.recovery
    recovery.add_standby(table, tp)
    recovery.standby_offsets[tp] = -1  # the changelog's start: nothing read yet
    app.consumer_generation_id = recovery._generation_id = generation
    app.flow_control.resume()  # as the recovery leaves it once the standbys are resumed
    return table, recovery


async def _through(consumer: Any) -> list[tuple[TP, int]]:
    """One round of Faust's ``getmany``: what it hands on to the streams and the tables'
    changelog queue (Faust's path), by partition and offset (sorted: it interleaves topics)."""
    return sorted([(TP(tp.topic, tp.partition), m.offset) async for tp, m in consumer.getmany(1.0)])


def test_standby_records_take_faust_s_path_while_its_generation_or_order_says_so() -> None:
    """The lean path applies a fetch of standby records only for the recovery's current
    generation and after whatever Faust's path still holds of the partition; otherwise
    Faust's ``getmany`` hands them on as before. Faust's buffered events are applied first."""
    app = faust.App(f"gen-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    changelog = TP(f"{app.conf.id}-desk-state-changelog", 0)
    table, recovery = _standby(app, changelog, generation=4)
    other = TP("raw-contacts", 0)
    records = [_record(changelog, n, f"k{n % 4}", f"v{n}".encode()) for n in range(16)]
    fetches = [
        {changelog: records[0:5], other: [_record(other, 7, "x", b"raw")]},
        {changelog: records[5:10]},
        {changelog: records[10:13]},
        {changelog: records[13:14]},
        {changelog: records[14:15]},
    ]
    consumer = _consumer_fetching(app, fetches)
    consumer.fetching = {changelog, other}

    async def main() -> None:
        # A rebalance the recovery has not taken in yet: its standby_tps are the last
        # generation's. Faust's path gets the records (and the foreign one, as always).
        app.consumer_generation_id = 5
        assert await _through(consumer) == [(changelog, n) for n in range(5)] + [(other, 7)]
        # Taken in; Faust's path still has 0-4 to apply: 5-9 follow them there.
        recovery._generation_id = 5
        assert await _through(consumer) == [(changelog, n) for n in range(5, 10)]
        assert table.data.data == {}
        # Faust's recovery has read them (its loop's steps, events in its buffer).
        schema = table.changelog_topic.schema
        buffer = recovery.buffers[table]
        for record in records[:10]:
            message = consumer._to_message(changelog, record)
            buffer.append(await schema.decode(app, message, propagate=True))
        recovery.standby_offsets[changelog] = 9
        # The lean path again: Faust's buffered events first, then 10-12.
        assert await _through(consumer) == []
        assert buffer == [] and recovery.standby_offsets[changelog] == 12
        assert table.data.data == {"k0": b"v12", "k1": b"v9", "k2": b"v10", "k3": b"v11"}
        # The partition restored as active (a takeover): Faust's path.
        recovery.active_tps.add(changelog)
        assert await _through(consumer) == [(changelog, 13)]
        recovery.active_tps.clear()
        # Revoked (another worker holds the standby now): Faust's path, which drops it.
        recovery.standby_tps.clear()
        assert await _through(consumer) == [(changelog, 14)]
        assert recovery.standby_offsets[changelog] == 12
        # A suspended flow (a rebalance begins): getmany would drop the fetch; so does the
        # lean path, and nothing is left waiting for Faust's path afterwards.
        recovery.add_standby(table, changelog)
        consumer.flow_active = False
        assert faust_port.follow_standby_changelogs(consumer, {changelog: records[15:]}, None)
        consumer.flow_active = True
        app.consumer_generation_id = recovery._generation_id = 6
        assert not faust_port.follow_standby_changelogs(consumer, {changelog: records[13:]}, None)
        assert recovery.standby_offsets[changelog] == 15
        assert table.data.data["k3"] == b"v15" and table.data.data["k1"] == b"v13"
        # Records read again (a seek back to the standby offset): skipped, as Faust does.
        again = faust_port.follow_standby_changelogs(consumer, {changelog: records[10:12]}, None)
        assert not again and recovery.standby_offsets[changelog] == 15
        assert table.data.data == {"k0": b"v12", "k1": b"v13", "k2": b"v14", "k3": b"v15"}

    asyncio.run(main())


async def _follow_a_desk(bootstrap: str, store: str, datadir: Path) -> dict[str, Any]:
    """An active desk table writes its changelog (TableWrites, as the workers do); a standby
    worker's Faust consumer fetches it, with a foreign topic's message in the same fetches,
    through Faust's own ``getmany`` with the lean path installed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from structlog.testing import capture_logs

    app_id = f"standby-{uuid.uuid4().hex[:8]}"
    active_app = faust.App(app_id, broker=f"kafka://{bootstrap}")
    active = desk_table(active_app)
    changelog = TP(active.changelog_topic.get_topic_name(), 0)
    other = TP(f"other-{app_id}", 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog.topic, 1, 1), NewTopic(other.topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    try:
        app_like = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        writes = TableWrites(active, RecordBatches(app_like), 0)
        written = 0
        for step in range(15):  # inputs of the desk: new keys, keys written again, deletions
            for n in range(step, step + 6):
                writes[f"tickets\x1fT-{n}"] = encode_value({"step": step, "n": n, "é": "ü"})
            if step % 3 == 2:
                del writes[f"tickets\x1fT-{step}"]
            writes["meta\x1fdone"] = encode_value(step)
            written += len(writes.pending)
            await writes.flush()
        await producer.send_and_wait(other.topic, b"a raw contact", key=b"conversation")
    finally:
        await producer.stop()

    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        max_poll_records=20,
    )  # fmt: skip
    await reader.start()
    fetches: list[dict[Any, list[Any]]] = []
    try:
        reader.assign([TopicPartition(*changelog), TopicPartition(*other)])
        read = 0
        for _ in range(100):
            if read >= written + 1:
                break
            fetch = await reader.getmany(timeout_ms=300)
            if fetch:
                fetches.append(fetch)
                read += sum(len(records) for records in fetch.values())
    finally:
        await reader.stop()
    changelog_records = [r for f in fetches for tp, rs in f.items() if tp == changelog for r in rs]

    standby_app = faust.App(app_id, broker=f"kafka://{bootstrap}", store=store,
                            datadir=str(datadir))  # fmt: skip
    table, recovery = _standby(standby_app, changelog, generation=3)
    last = changelog_records[-1].offset
    recovery.standby_highwaters[changelog] = last  # as _build_highwaters sets it
    consumer = _consumer_fetching(standby_app, list(fetches))
    consumer.fetching = {changelog, other}
    handed_on: list[tuple[TP, int]] = []
    ready: list[bool] = []
    with capture_logs() as logs:
        for _ in fetches:
            handed_on += await _through(consumer)
            ready.append(standby_app.tables.standbys_ready)
    if store.startswith("rocksdb"):
        db = table.data._db_for_partition(0)
        offset_key = table.data.offset_key
        stored = {orjson.loads(k): v for k, v in db.items() if k != offset_key}
    else:
        stored = dict(table.data.data)

    # Faust's own path over the same records, in a third worker's table, for comparison.
    faust_app = faust.App(app_id, broker=f"kafka://{bootstrap}")
    faust_table = desk_table(faust_app)
    schema = faust_table.changelog_topic.schema
    events = [
        await schema.decode(faust_app, faust_app.consumer._to_message(changelog, r), propagate=True)
        for r in changelog_records
    ]
    faust_table.apply_changelog_batch(events)

    key_partitions = dict(getattr(table.data, "_key_partition", {}))
    takeover = recovery.active_offsets
    recovery.add_active(table, changelog)  # what a takeover's rebalance does first
    # What a standby keeps once a rebalance's recovery has completed (this worker active for
    # nothing, the partition still its standby).
    await table.on_recovery_completed(set(), {changelog})
    if store.startswith("rocksdb"):
        kept = {orjson.loads(k) for k, _ in db.items() if k != offset_key}
    else:
        kept = set(table.data.data)
    return {
        "kept": kept,
        "active": dict(active.data.data),
        "standby": stored,
        "faust": dict(faust_table.data.data),
        "key_partitions": (key_partitions, faust_table.data._key_partition),
        "written": written,
        "last": last,
        "fetches": len(fetches),
        "handed_on": handed_on,
        "other": other,
        "ready": ready,
        "standby_offset": recovery.standby_offsets[changelog],
        "persisted": table.persisted_offset(changelog),
        "takeover_from": takeover[changelog],
        "queued": standby_app.tables.changelog_queue.qsize(),
        "buffered": sum(len(b) for b in recovery.buffers.values()),
        "logs": [e for e in logs if "follows its changelog" in e["event"]],
    }


@pytest.mark.integration
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_standby_holds_the_active_s_state_after_every_fetch_of_its_changelog(
    kafka_broker: Broker, tmp_path: Path, store: str
) -> None:
    """Fails if the lean path is gone or wrong: Faust's own path would hand every changelog
    record on through ``getmany`` and apply them only once ``standby_buffer_size`` (1000)
    events waited. Here the standby's store equals the active's (and what Faust's own
    changelog path makes of the same records), its standby offset is the changelog's last,
    only the foreign record went on, and the store (RocksDB's, or the memory store with
    offsets) holds that offset, so a takeover's recovery reads only what follows it."""
    got = asyncio.run(_follow_a_desk(kafka_broker.bootstrap, store, tmp_path / "state"))

    assert got["written"] > 100 and got["fetches"] > 3  # several fetches, deletions among them
    assert got["standby"] == got["active"] == got["faust"]
    assert len(got["active"]) > 10
    assert got["handed_on"] == [(got["other"], 0)]  # the foreign record, to its stream
    assert got["standby_offset"] == got["last"] == got["written"] - 1
    assert got["queued"] == 0 and got["buffered"] == 0
    assert got["ready"][-1] is True and got["ready"][0] is False  # ready once caught up
    assert len(got["logs"]) == 1  # said once for the partition and generation
    # Both stores know the offset the copy holds (the memory store: MemoryStoreWithOffsets)
    # and keep a standby's copy when a rebalance's recovery completes: a takeover's recovery
    # reads only what follows (Faust's memory store kept no offset and dropped the copy).
    assert got["persisted"] == got["last"]
    assert got["takeover_from"] == got["last"]  # the recovery seeks there: the tail
    assert got["kept"] == set(got["active"])
    if store == "memory://":
        mine, faust_s = got["key_partitions"]
        assert mine == faust_s


def test_faust_recovery_starts_each_partition_at_what_its_store_says_it_holds() -> None:
    """What :class:`faust_port.MemoryStoreWithOffsets` relies on: Faust's recovery starts a
    partition it restores (active or standby) at the store's ``persisted_offset`` unless
    the changelog's start is later, and forgets its own offsets of a partition only when it
    is revoked; the table tells its store of a rebalance before the recovery asks
    (``TableManager.on_rebalance``), with ``revoked`` the partitions of the last assignment
    that are not in this one; and it hands its store the partitions active and standby on
    the worker when the recovery completes. The store is built as ``keep_changelog_offsets``
    builds it, and Faust's memory store keeps each key's partition and drops, once a
    recovery completes, every partition not active (standbys among them)."""
    from faust.app.base import App
    from faust.stores import memory
    from faust.tables.base import Collection
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery

    def flat(function: Any) -> str:
        return " ".join(inspect.getsource(function).split())

    add = flat(Recovery._add)
    assert "persisted_offset = table.persisted_offset(tp)" in add
    assert "offsets[tp] = persisted_offset" in add
    on_rebalance = flat(Recovery.on_rebalance)
    assert "for tp in revoked: self.revoke(tp)" in on_rebalance
    assert "self.add_standby(table, tp)" in on_rebalance
    assert "self.add_active(table, tp)" in on_rebalance
    assert "destination[tp] = max(last_value, new_value)" in flat(Recovery._build_offsets)
    assert "offset = offsets[tp] if offset == -1: offset = 0" in flat(Recovery._seek_offsets)
    completed = flat(Recovery.on_recovery_completed)
    assert "self.actives_for_table[table], self.standbys_for_table[table]," in completed
    assert "return self.data.persisted_offset(tp)" in flat(Collection.persisted_offset)
    assert "await self.data.on_rebalance(assigned, revoked, newly_assigned, generation_id)" in flat(
        Collection.on_rebalance
    )
    assert "await self.data.on_recovery_completed(active_tps, standby_tps)" in flat(
        Collection.on_recovery_completed
    )
    manager = flat(TableManager.on_rebalance)
    assert manager.index("await T(table.on_rebalance)(") < manager.index(
        "await T(self.recovery.on_rebalance)("
    )
    assert "revoked = self._assignment - assigned" in flat(App._update_assignment)
    new_store = flat(Collection._new_store_by_url)
    for argument in (
        "stores.by_url(url)( url, self.app, self,",
        "table_name=self.name,",
        "key_type=self.key_type,",
        "key_serializer=self.key_serializer,",
        "value_serializer=self.value_serializer,",
        "value_type=self.value_type,",
        "loop=self.loop,",
        "options=self.options,",
    ):
        assert argument in new_store, argument
    assert "if self._data is None: self._data = self._new_store()" in flat(Collection.data.fget)
    assert "self._key_partition" in flat(memory.Store.__post_init__)
    assert "self._key_partition[key] = event.message.partition" in flat(
        memory.Store._create_batch_iterator
    )
    assert "partitions = {partition for _, partition in active_tps}" in flat(
        memory.Store.on_recovery_completed
    )
    assert "return None" in flat(memory.Store.persisted_offset)


def _memory_table(partitions: int = 1) -> tuple[Any, Any, TP]:
    app = faust.App(f"mem-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    table = faust_port.keep_changelog_offsets(
        app.Table("desk-state", partitions=partitions, key_type=str, value_type=bytes)
    )
    return app, table, TP(table.changelog_topic.get_topic_name(), 0)


def test_the_memory_store_answers_the_offset_it_holds_and_forgets_a_partition_it_drops() -> None:
    app, table, tp = _memory_table(partitions=2)
    other = TP(tp.topic, 1)
    store = table.data
    assert isinstance(store, faust_port.MemoryStoreWithOffsets)
    desk_app = faust.App(f"desk-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9")
    assert isinstance(desk_table(desk_app).data, faust_port.MemoryStoreWithOffsets)
    recovery = app.tables.recovery
    writes = TableWrites(table, RecordBatches(app), 0)
    writes["a"], writes["b"] = b"1", b"2"
    del writes["b"]
    TableWrites(table, RecordBatches(app), 1)["c"] = b"3"
    assert store.key_partitions == {"a": 0, "c": 1}
    store.set_persisted_offset(tp, 41)  # what TableWrites.flush records once delivered
    store.set_persisted_offset(other, 7)

    async def main() -> None:
        # A rebalance that leaves both partitions here: the recovery resumes at the offsets.
        await table.on_rebalance({tp, other}, set(), set(), 2)
        recovery.add_active(table, tp)
        recovery.add_standby(table, other)
        assert recovery.active_offsets[tp] == 41 and recovery.standby_offsets[other] == 7
        await table.on_recovery_completed({tp}, {other})  # a standby's copy is kept
        assert dict(store.data) == {"a": b"1", "c": b"3"}
        # Partition 1 revoked: its keys and its offset go; partition 0 stays as it was.
        await table.on_rebalance({tp}, {other}, set(), 3)
        assert dict(store.data) == {"a": b"1"} and store.key_partitions == {"a": 0}
        assert store.persisted_offset(other) is None and store.persisted_offset(tp) == 41
        recovery.revoke(other)
        recovery.add_standby(table, other)
        assert recovery.standby_offsets[other] is None  # restored from the changelog's start
        store.set_persisted_offset(other, 9)  # a write in flight when it was dropped
        assert store.persisted_offset(other) is None
        # Assigned again: what it applies from the changelog counts again.
        await table.on_rebalance({tp, other}, set(), {other}, 4)
        store.set_persisted_offset(other, 9)
        assert store.persisted_offset(other) == 9
        # Neither active nor standby when a recovery completes: dropped, offset forgotten.
        await table.on_recovery_completed({tp}, set())
        assert store.persisted_offset(other) is None and store.persisted_offset(tp) == 41
        # Nothing of the table left here: the whole store goes, keys of unknown partition too.
        store.data["stray"] = b"?"
        await table.on_rebalance(set(), {tp, other}, set(), 5)
        assert dict(store.data) == {} and store.persisted_offset(tp) is None

    asyncio.run(main())


def test_only_a_memory_store_not_built_yet_is_replaced() -> None:
    app = faust.App(
        f"rocks-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9", store="rocksdb://"
    )
    table = faust_port.keep_changelog_offsets(app.Table("t", key_type=str, value_type=bytes))
    assert table._data is None  # Faust builds its RocksDB store, which keeps offsets itself
    _, built, _ = _memory_table()
    with pytest.raises(RuntimeError, match="built already"):
        faust_port.keep_changelog_offsets(built)


async def _rebalance(app: Any, table: Any, assigned: set[TP], revoked: set[TP], gen: int) -> None:
    """Faust's ``TableManager.on_rebalance`` for a worker given ``assigned`` (the table's
    changelog partitions, all active) and losing ``revoked``: the table (its store) first,
    then the recovery, which sets its offsets up from the store's."""
    from faust.assignor.client_assignment import ClientAssignment

    actives: dict[str, list[int]] = {}
    for tp in assigned:
        actives.setdefault(tp.topic, []).append(tp.partition)
    app.assignor._assignment = ClientAssignment(actives=actives, standbys={})
    app.consumer_generation_id = gen
    newly = assigned - set(app.tables.recovery.active_tps)
    await table.on_rebalance(assigned, revoked, newly, gen)
    await app.tables.recovery.on_rebalance(assigned, revoked, newly, gen)


async def _recover(app: Any, table: Any, tp: TP, bootstrap: str) -> int:
    """What Faust's recovery then does for the active partition ``tp``: its start offset
    (``_build_offsets`` over the broker's earliest offset, ``_seek_offsets``), the changelog
    read from there to its end, the records above that offset applied to the table. Returns
    how many it applied."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    recovery = app.tables.recovery
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(tp.topic, tp.partition)

        class Offsets:
            async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
                found = await consumer.beginning_offsets([TopicPartition(*t) for t in tps])
                return {TP(t.topic, t.partition): offset for t, offset in found.items()}

        await recovery._build_offsets(Offsets(), {tp}, recovery.active_offsets, "active")
        seen = recovery.active_offsets[tp]
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.assign([partition])
        consumer.seek(partition, max(seen, 0))
        schema = table.changelog_topic.schema
        events = []
        while await consumer.position(partition) < end:
            for record in (await consumer.getmany(partition, timeout_ms=500)).get(partition, []):
                if record.offset > seen:
                    message = app.consumer._to_message(tp, record)
                    events.append(await schema.decode(app, message, propagate=True))
        table.apply_changelog_batch(events)
        return len(events)
    finally:
        await consumer.stop()


class _InPartition:
    def __init__(self, message: Any) -> None:
        self.message = message


def _stored(table: Any) -> dict[str, bytes]:
    return {key: table.data[key] for key in table.data}


async def _leave_and_come_back(bootstrap: str, store: str, datadir: Path) -> dict[str, Any]:
    """A worker holds the desk's table (its store written through TableWrites, as the desk
    does), a rebalance leaves it the partition, a later one revokes it, another worker
    writes meanwhile (keys written again, one deleted), and a third gives it back."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    app_id = f"back-{uuid.uuid4().hex[:8]}"
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", store=store, datadir=str(datadir))
    table = desk_table(app)
    tp = TP(table.changelog_topic.get_topic_name(), 0)
    other_app = faust.App(app_id, broker=f"kafka://{bootstrap}")
    other = desk_table(other_app)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(tp.topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    got: dict[str, Any] = {}
    # A RocksDB store takes a write's partition from the event being processed, as in the
    # desk's stream iteration.
    event = _InPartition(SimpleNamespace(partition=0))
    _current_event.set(weakref.ref(event))
    try:
        app_like = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        await _rebalance(app, table, {tp}, set(), 1)
        got["first"] = await _recover(app, table, tp, bootstrap)  # an empty changelog
        writes = TableWrites(table, RecordBatches(app_like), 0)
        for step in range(20):
            for n in range(step, step + 5):
                writes[f"tickets\x1fT-{n}"] = encode_value({"step": step, "n": n})
            await writes.flush()
        got["written"] = 20 * 5
        mine = _stored(table)
        # A second worker joins; this one keeps the partition.
        await _rebalance(app, table, {tp}, set(), 2)
        got["kept"] = await _recover(app, table, tp, bootstrap)
        got["kept_state"] = _stored(table) == mine
        # Revoked: the other worker takes over (from the changelog) and writes.
        await _rebalance(app, table, set(), {tp}, 3)
        got["after_revoke"] = _stored(table)
        other_writes = TableWrites(other, RecordBatches(app_like), 0)
        for key, value in mine.items():
            other.data[key] = value  # its recovery's result
        for n in range(0, 24, 2):
            other_writes[f"tickets\x1fT-{n}"] = encode_value({"other": n})
        del other_writes["tickets\x1fT-1"]
        await other_writes.flush()
        got["expected"] = _stored(other)
        # Assigned back.
        await _rebalance(app, table, {tp}, set(), 4)
        got["back"] = await _recover(app, table, tp, bootstrap)
        got["back_state"] = _stored(table)
    finally:
        await producer.stop()
    return got


@pytest.mark.integration
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_partition_kept_is_not_read_again_and_one_given_back_holds_what_others_wrote(
    kafka_broker: Broker, tmp_path: Path, store: str
) -> None:
    """Fails without ``MemoryStoreWithOffsets``: Faust's memory store answers no offset, so
    the rebalance that leaves the worker its partition reads the whole changelog again
    (100 messages here). A partition revoked and given back must not be trusted as it was:
    the memory store dropped it and reads it all again; RocksDB's kept its offset on disk and
    reads from there, the other worker's writes included. Both end as the other worker's."""
    got = asyncio.run(_leave_and_come_back(kafka_broker.bootstrap, store, tmp_path / "state"))

    assert got["first"] == 0
    assert got["kept"] == 0 and got["kept_state"]
    assert len(got["expected"]) > 10 and "tickets\x1fT-1" not in got["expected"]
    assert got["back_state"] == got["expected"]
    written_by_other = 12 + 1
    if store == "memory://":
        assert got["after_revoke"] == {}  # dropped with its offset
        assert got["back"] == got["written"] + written_by_other  # the whole changelog
    else:
        assert got["back"] == written_by_other  # what followed its offset on disk

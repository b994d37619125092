"""Contract suite of ``streams.faust_port``: the framework internals it relies on are where
it expects them, and each workaround does what it says. A Faust or aiokafka upgrade that moves
one of them fails here, by name."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, ClassVar

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from faust.types import TP

from streams import faust_port


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
    assert getattr(Fetcher._proc_fetch_request, faust_port._MARK) is True


def test_faust_producer_buffer_has_a_size_a_flush_and_a_warning_limit() -> None:
    assert "size" in dir(ProducerBuffer)
    assert inspect.iscoroutinefunction(ProducerBuffer.flush)
    assert ProducerBuffer.max_messages == 100
    assert "self.max_messages" in inspect.getsource(ProducerBuffer.wait_until_ebb)

    class App:
        class producer:
            buffer = ProducerBuffer()

    faust_port.allow_large_inputs(App(), 5000)
    assert App.producer.buffer.max_messages == 5000


def test_changelog_handed_over_flushes_until_the_buffer_is_empty() -> None:
    class Buffer:
        def __init__(self) -> None:
            self.size = 3

        async def flush(self) -> None:
            self.size -= 1  # a flush that gives up early, as Faust's can

    class App:
        class producer:
            buffer = Buffer()

    asyncio.run(faust_port.changelog_handed_over(App()))
    assert App.producer.buffer.size == 0


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

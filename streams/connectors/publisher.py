"""Publishing to Kafka with an answer only after the broker acknowledged.

``KafkaPublisher`` wraps aiokafka's ``AIOKafkaProducer`` with ``enable_idempotence=True`` and
``acks="all"``: a record is acknowledged once every in-sync replica has it, and the producer's
own retries never write it twice. Its batches are compressed with ``compression`` (the
connectors pass ``SUPPORTSTREAM_KAFKA_COMPRESSION``; ``None``: uncompressed). ``publish``
returns only after that acknowledgement, or raises ``PublishError`` (the broker is
unreachable, or did not acknowledge within the timeout); the HTTP connector then answers 503
so the channel retries.

Delivery is at-least-once at the edge: a record whose acknowledgement did not arrive in time may
still be written by the producer's retries after the caller was told "503", and the channel
will deliver it again. The copy carries the same channel message id (the payload is
byte-exact), and the desk records a repeated ``(channel, channel_message_id)`` as a duplicate
without counting it.

When the producer fails in a way its retries cannot mend (the broker lost the producer id
across a restart, a fatal idempotence error), it is closed and a fresh one is started on the
next publish. ``Publisher`` is the port tests replace (a slow or failing fake).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = structlog.get_logger("supportstream.connectors.publisher")


class PublishError(Exception):
    """The record was not acknowledged by the broker (it may or may not be written)."""


class Publisher(Protocol):
    async def publish(self, topic: str, key: str, value: bytes) -> None:
        """Return once the broker acknowledged ``value``; raise ``PublishError`` otherwise."""

    async def close(self) -> None: ...


class KafkaPublisher:
    """An idempotent, acks=all producer, started on first use and restarted after failures."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "supportstream-connect",
        timeout_s: float = 10.0,
        max_request_size: int = 1_048_576,
        compression: str | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._compression = compression
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                # The request must fail within the caller's patience, not aiokafka's 40 s.
                request_timeout_ms=max(1000, int(self._timeout_s * 1000)),
                max_request_size=self._max_request_size,
                linger_ms=0,
                compression_type=self._compression,
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout_s)
            except (TimeoutError, KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise PublishError(f"broker unavailable: {type(exc).__name__}") from None
            self._producer = producer
            return producer

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        producer = await self._started()
        if not await self._reachable(producer):
            # Refused before the record enters the producer: during an outage a 503 then
            # means "not written", instead of "written later by the producer's retries".
            raise PublishError("broker unavailable")
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, value=value, key=key.encode("utf-8")),
                self._timeout_s,
            )
        except TimeoutError:
            # Not acknowledged in time. The record stays in the producer and may still be
            # written (see the module docstring): the producer is kept so that it is.
            raise PublishError("broker did not acknowledge in time") from None
        except KafkaError as exc:
            log.warning("producer failed, restarting it", error=type(exc).__name__)
            await self._discard(producer)
            raise PublishError(f"broker refused the record: {type(exc).__name__}") from None

    async def _reachable(self, producer: AIOKafkaProducer) -> bool:
        client = producer.client
        for broker in client.cluster.brokers():
            with contextlib.suppress(Exception):
                if await asyncio.wait_for(client.ready(broker.nodeId), self._timeout_s):
                    return True
        return False

    async def _discard(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), self._timeout_s)

    async def close(self) -> None:
        """Flush what is pending (bounded by the timeout) and stop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self._timeout_s)

"""Fixtures shared across the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Kafka-protocol broker (noida-db) on a free loopback port, stopped afterwards."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

"""Fixtures shared across the test packages, and the guard against stale compiled modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors import native
from tests.support.broker import Broker


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a tree whose compiled modules (processors.native) are older than the
    sources: Python imports an extension module before the ``.py`` beside it, so the tests
    would run the code as it was built, not as it is (docs/DEVELOPING.md)."""
    if os.environ.get(native.INTERPRETED_ENV) == "1":
        return  # the sources run: nothing compiled is imported
    problems = native.build_problems()
    if problems:
        raise pytest.UsageError(
            "\n".join(problems)
            + "\nrun `make unit` (or `.venv/bin/pip install -e '.[dev]'`) to build them again,"
            f" or set {native.INTERPRETED_ENV}=1 to test the sources interpreted"
        )


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Kafka-protocol broker (noida-db) on a free loopback port, stopped afterwards."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

"""Fixtures for the sink tests: a fresh embedded warehouse per test.

chdb serves one data directory per process, so each fixture closes its warehouse before the
next test opens another; a warehouse left open would make the next open fail loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.backend import Backend
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate


@pytest.fixture
def chdb_backend(tmp_path: Path) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path / "warehouse")
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def warehouse(chdb_backend: ChdbBackend) -> Backend:
    """The embedded warehouse with the full projection schema."""
    migrate(chdb_backend)
    return chdb_backend

"""The embedded adapter: the shared backend contract, plus what only chdb does (one directory
per process, a lock against other processes, URL forms)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.backend import SinkError, open_backend
from sinks.chdb_backend import ChdbBackend
from sinks.native_backend import NativeBackend
from tests.sinks.contract import *  # noqa: F403  (the contract suite, run on chdb)
from tests.support.warehouse import held_warehouse


@pytest.fixture
def backend(chdb_backend: ChdbBackend) -> Iterator[ChdbBackend]:
    yield chdb_backend


def test_open_backend_reads_chdb_urls_and_bare_paths(tmp_path: Path) -> None:
    for url in (f"chdb://{tmp_path}/a", str(tmp_path / "b"), f"chdb:{tmp_path}/c"):
        backend = open_backend(url)
        try:
            assert isinstance(backend, ChdbBackend)
            assert backend.query("SELECT currentDatabase() AS db") == [{"db": "supportstream"}]
        finally:
            backend.close()
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir() and (tmp_path / "c").is_dir()


def test_open_backend_reads_clickhouse_urls_without_connecting() -> None:
    backend = open_backend("clickhouse://reader:s3cret@db.example:9000/default")
    assert isinstance(backend, NativeBackend)
    assert "s3cret" not in repr(backend)
    backend.close()


def test_open_backend_refuses_other_schemes() -> None:
    with pytest.raises(SinkError, match="unsupported warehouse URL"):
        open_backend("http://localhost:8123")


def test_a_second_warehouse_in_one_process_is_a_clear_error(
    chdb_backend: ChdbBackend, tmp_path: Path
) -> None:
    with pytest.raises(SinkError, match="one directory per process"):
        ChdbBackend(tmp_path / "other")
    assert chdb_backend.query("SELECT 1 AS one") == [{"one": 1}]


def test_a_warehouse_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked"
    with held_warehouse(path) as holder:
        with pytest.raises(SinkError, match="in use by another process") as caught:
            ChdbBackend(path)
        assert not caught.value.retryable
        assert f"pid {holder}" in str(caught.value)
    # Released with the other process: now it opens.
    ChdbBackend(path).close()


def test_binary_formats_survive_query_formatted(chdb_backend: ChdbBackend) -> None:
    text = chdb_backend.query_formatted("SELECT 'é' AS s", "Parquet")
    raw = text.encode("utf-8", "surrogateescape")
    assert raw.startswith(b"PAR1") and raw.endswith(b"PAR1")


def test_ad_hoc_sql_runs_in_the_supportstream_database_with_utc_days(
    chdb_backend: ChdbBackend,
) -> None:
    (row,) = chdb_backend.query(
        "SELECT currentDatabase() AS db, timezone() AS tz, "
        "toDate(toDateTime64('2026-03-01 23:30:00', 3, 'UTC')) AS d"
    )
    assert row["db"] == "supportstream" and row["tz"] == "UTC"
    assert str(row["d"]) == "2026-03-01"


def test_opening_a_warehouse_leaves_pyarrow_unloaded_but_importable(tmp_path: Path) -> None:
    # chdb loads pyarrow and numpy for its Arrow results only; the adapter skips that import.
    script = f"""
        import sys
        from sinks.chdb_backend import ChdbBackend
        backend = ChdbBackend({str(tmp_path / "w")!r})
        assert backend.query("SELECT 1 AS one") == [{{"one": 1}}]
        assert "pyarrow" not in sys.modules and "numpy" not in sys.modules, "loaded"
        import pyarrow
        backend.close()
        print("ok")
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

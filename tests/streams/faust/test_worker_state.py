"""A worker's local table store after a crash: kept only when the last worker there stopped
cleanly (``streams.faust_app._discard_state_of_an_unclean_stop``). A ``rocksdb://`` store is
written before its changelog, so after a crash it can hold writes the changelog never got;
rebuilt from the changelog, the table is a consistent prefix again."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.ids import Pseudonymizer
from processors.rules import load_rules
from streams.faust_app import (
    CLEAN_STOP,
    WorkerConfig,
    _discard_state_of_an_unclean_stop,
    build_app,
)
from streams.settings import Settings, SettingsError

RULES = Path(__file__).resolve().parents[3] / "examples" / "rules.demo.yaml"


def _config(state_dir: Path, store: str) -> WorkerConfig:
    settings = Settings.from_env({})
    return WorkerConfig(
        settings=settings,
        rules=load_rules(RULES),
        pseudo=Pseudonymizer.from_text("k"),
        store=store,
        state_dir=state_dir,
    )


def _tables(state_dir: Path) -> Path:
    table = state_dir / "v1" / "tables" / "desk-state-0.db"
    table.mkdir(parents=True)
    (table / "CURRENT").write_text("MANIFEST-000001\n")
    return table


def test_rocksdb_state_left_by_a_crash_is_discarded(tmp_path: Path) -> None:
    table = _tables(tmp_path)  # no clean-stop marker: the last worker died
    _discard_state_of_an_unclean_stop(_config(tmp_path, "rocksdb://"))
    assert not table.exists()


def test_rocksdb_state_of_a_clean_stop_is_kept_once(tmp_path: Path) -> None:
    table = _tables(tmp_path)
    (tmp_path / CLEAN_STOP).touch()
    config = _config(tmp_path, "rocksdb://")
    _discard_state_of_an_unclean_stop(config)
    assert table.exists()
    # The marker is consumed: if this worker now dies, its successor discards the state.
    assert not (tmp_path / CLEAN_STOP).exists()
    _discard_state_of_an_unclean_stop(config)
    assert not table.exists()


@pytest.mark.parametrize("store", ["memory://"])
def test_other_stores_are_left_alone(tmp_path: Path, store: str) -> None:
    table = _tables(tmp_path)
    _discard_state_of_an_unclean_stop(_config(tmp_path, store))
    assert table.exists()


def test_the_producer_compresses_with_zstd_unless_told_otherwise() -> None:
    """``SUPPORTSTREAM_KAFKA_COMPRESSION``: Zstandard by default, any codec Kafka clients know, or
    ``none``; anything else is refused by name before the worker starts."""
    import aiokafka.codec

    rules, pseudo = load_rules(RULES), Pseudonymizer.from_text("k")

    def compression(env: dict[str, str]) -> str | None:
        return WorkerConfig.from_env(
            Settings.from_env(env), rules, pseudo, env
        ).producer_compression

    assert compression({}) == "zstd"
    assert aiokafka.codec.has_lz4()  # the producer can (cramjam is a dependency)
    assert compression({"SUPPORTSTREAM_KAFKA_COMPRESSION": "none"}) is None
    assert compression({"SUPPORTSTREAM_KAFKA_COMPRESSION": "GZIP"}) == "gzip"
    with pytest.raises(ValueError, match="SUPPORTSTREAM_KAFKA_COMPRESSION='brotli'"):
        compression({"SUPPORTSTREAM_KAFKA_COMPRESSION": "brotli"})


def test_standby_replicas_and_replication_are_whole_numbers_from_the_environment() -> None:
    """``SUPPORTSTREAM_STANDBY_REPLICAS`` (default 1: a hot copy of the desk's table on another
    worker) reaches Faust's app; 0 is allowed, a failover then restores the table from its
    changelog. Anything that is not a whole number in range is refused by name."""
    settings, rules, pseudo = Settings.from_env({}), load_rules(RULES), Pseudonymizer.from_text("k")

    def config(env: dict[str, str]) -> WorkerConfig:
        return WorkerConfig.from_env(settings, rules, pseudo, env)

    assert config({}).standby_replicas == 1
    assert config({}).replication_factor == 1
    assert config({"SUPPORTSTREAM_STANDBY_REPLICAS": " 0 "}).standby_replicas == 0
    assert config({"SUPPORTSTREAM_REPLICATION_FACTOR": "3"}).replication_factor == 3
    assert (
        build_app(config({"SUPPORTSTREAM_STANDBY_REPLICAS": "0"})).conf.table_standby_replicas == 0
    )
    assert build_app(config({})).conf.table_standby_replicas == 1
    for name, value in [
        ("SUPPORTSTREAM_STANDBY_REPLICAS", "-1"),
        ("SUPPORTSTREAM_STANDBY_REPLICAS", "one"),
        ("SUPPORTSTREAM_STANDBY_REPLICAS", "1.5"),
        ("SUPPORTSTREAM_REPLICATION_FACTOR", "0"),
        ("SUPPORTSTREAM_REPLICATION_FACTOR", "²"),
    ]:
        with pytest.raises(
            SettingsError, match=f"{name}='{value}' (is not a whole number|must be at least)"
        ):
            config({name: value})


def test_the_rebalance_timeout_is_a_positive_number_of_seconds() -> None:
    """``SUPPORTSTREAM_REBALANCE_TIMEOUT`` reaches Faust's app; a value that is not a positive
    number of seconds is refused by name, not turned into a traceback or a 0-second timeout."""
    settings, rules, pseudo = Settings.from_env({}), load_rules(RULES), Pseudonymizer.from_text("k")

    def config(env: dict[str, str]) -> WorkerConfig:
        return WorkerConfig.from_env(settings, rules, pseudo, env)

    assert config({}).rebalance_timeout_s == 60.0
    timeout = config({"SUPPORTSTREAM_REBALANCE_TIMEOUT": "6.5"}).rebalance_timeout_s
    assert timeout == 6.5
    assert (
        build_app(config({"SUPPORTSTREAM_REBALANCE_TIMEOUT": "6.5"})).conf.broker_rebalance_timeout
        == 6.5
    )
    for value in ["soon", "0", "-3", "inf", "nan"]:
        with pytest.raises(
            SettingsError,
            match=f"SUPPORTSTREAM_REBALANCE_TIMEOUT='{value}' (is not a|must be a positive) number",
        ):
            config({"SUPPORTSTREAM_REBALANCE_TIMEOUT": value})

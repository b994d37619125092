"""``faust_runner.TableStore``: the write-back, decoded view of one namespace of the desk
table keeps the values it decoded or committed, and what it keeps is what the table holds."""

from __future__ import annotations

from typing import Any

import pytest

from streams.faust_runner import Namespace, TableStore, ValueCodec
from tests.support.tables import CodecTable


def _counting_store(table: CodecTable) -> tuple[TableStore[tuple[str, ...]], list[Any]]:
    decoded: list[Any] = []

    def decode(value: Any) -> tuple[str, ...]:
        decoded.append(value)
        return tuple(value)

    codec: ValueCodec[tuple[str, ...]] = ValueCodec(list, decode)
    return TableStore(Namespace(table, "tickets"), codec), decoded


def _commit(store: TableStore[Any], table: CodecTable) -> None:
    # What PartitionDesk.commit does with one store's writes.
    for key, value in store.changes():
        if value is None:
            del table[key]
        else:
            table[key] = value
    store.committed()


def test_a_value_is_decoded_once_and_committed_values_are_not_decoded_again() -> None:
    table = CodecTable()
    table["tickets\x1fT-1"] = ["a", "b"]
    store, decoded = _counting_store(table)
    assert store["T-1"] == ("a", "b")
    assert store["T-1"] == ("a", "b")
    assert decoded == [["a", "b"]]  # the second read took the kept value
    store["T-2"] = ("c",)
    store["T-1"] = ("d",)
    _commit(store, table)
    assert table["tickets\x1fT-1"] == ["d"] and table["tickets\x1fT-2"] == ["c"]
    assert store["T-1"] == ("d",) and store["T-2"] == ("c",)
    assert decoded == [["a", "b"]]  # committed values are kept as written


def test_a_deleted_key_is_gone_from_what_is_kept_and_from_the_table() -> None:
    table = CodecTable()
    table["tickets\x1fT-1"] = ["a"]
    store, _ = _counting_store(table)
    assert "T-1" in store and store["T-1"] == ("a",)
    del store["T-1"]
    assert "T-1" not in store
    _commit(store, table)
    assert "T-1" not in store and "tickets\x1fT-1" not in table
    with pytest.raises(KeyError):
        store["T-1"]


def test_what_is_kept_starts_over_beyond_its_bound() -> None:
    table = CodecTable()
    for n in range(5):
        table[f"tickets\x1fT-{n}"] = [str(n)]
    store, decoded = _counting_store(table)
    store.KEPT = 3
    for n in range(5):
        assert store[f"T-{n}"] == (str(n),)
    assert len(store._kept) <= 3
    assert store["T-4"] == ("4",)  # still right, whether kept or decoded again
    assert len(decoded) in (5, 6)

"""``faust_runner.TableStore``: the write-back, decoded view of one namespace of the desk
table keeps the values it decoded or committed, and what it keeps is what the table holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    table.put("tickets\x1fT-1", ["a", "b"])
    store, decoded = _counting_store(table)
    assert store["T-1"] == ("a", "b")
    assert store["T-1"] == ("a", "b")
    assert decoded == [["a", "b"]]  # the second read took the kept value
    store["T-2"] = ("c",)
    store["T-1"] = ("d",)
    _commit(store, table)
    assert table.value("tickets\x1fT-1") == ["d"] and table.value("tickets\x1fT-2") == ["c"]
    assert store["T-1"] == ("d",) and store["T-2"] == ("c",)
    assert decoded == [["a", "b"]]  # committed values are kept as written


def test_a_deleted_key_is_gone_from_what_is_kept_and_from_the_table() -> None:
    table = CodecTable()
    table.put("tickets\x1fT-1", ["a"])
    store, _ = _counting_store(table)
    assert "T-1" in store and store["T-1"] == ("a",)
    del store["T-1"]
    assert "T-1" not in store
    _commit(store, table)
    assert "T-1" not in store and "tickets\x1fT-1" not in table
    with pytest.raises(KeyError):
        store["T-1"]


def test_get_answers_absent_keys_without_raising_and_decodes_a_stored_value_once() -> None:
    table = CodecTable()
    table.put("tickets\x1fT-1", ["a"])
    store, decoded = _counting_store(table)
    assert store.get("T-1") == ("a",) and store.get("T-1") == ("a",)
    assert decoded == [["a"]]
    assert store.get("T-9") is None and store.get("T-9", ()) == ()
    store["T-2"] = ("b",)
    del store["T-1"]
    assert store.get("T-2") == ("b",) and store.get("T-1", "gone") == "gone"
    _commit(store, table)
    list(store)  # the listing kept from here on answers absent keys
    assert store.get("T-1") is None and store.get("T-2") == ("b",)


def test_what_is_kept_starts_over_beyond_its_bound() -> None:
    table = CodecTable()
    for n in range(5):
        table.put(f"tickets\x1fT-{n}", [str(n)])
    store, decoded = _counting_store(table)
    store.KEPT = 3
    for n in range(5):
        assert store[f"T-{n}"] == (str(n),)
    assert len(store._kept) <= 3
    assert store["T-4"] == ("4",)  # still right, whether kept or decoded again
    assert len(decoded) in (5, 6)


class _ListingCountingTable(CodecTable):
    """The desk table, counting how often all of its keys are listed."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    def __iter__(self) -> Iterator[str]:
        self.listings += 1
        return super().__iter__()


def test_the_table_is_listed_once_however_often_the_store_is_iterated() -> None:
    # The desk iterates its held tickets at every agent going offline: each listing of the
    # table reads every key of every namespace, a cost that grew with the desk's state.
    table = _ListingCountingTable()
    table.put("tickets\x1fT-1", ["a"])
    table.put("other\x1fX", ["x"])
    store, _ = _counting_store(table)
    for _ in range(5):
        assert list(store) == ["T-1"]
    store["T-2"] = ("b",)
    del store["T-1"]
    assert list(store) == ["T-2"]
    _commit(store, table)
    assert list(store) == ["T-2"] and "T-1" not in store and "T-2" in store
    assert table.listings == 1


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from("abcdef"), st.sampled_from("xyz")),
        st.tuples(st.just("del"), st.sampled_from("abcdef"), st.just("")),
        st.tuples(st.just("commit"), st.just(""), st.just("")),
        st.tuples(st.just("iter"), st.just(""), st.just("")),
    ),
    max_size=60,
)


@given(initial=st.lists(st.sampled_from("abcdef"), unique=True), ops=_OPS)
def test_the_kept_listing_is_what_a_fresh_listing_of_the_table_gives(
    initial: list[str], ops: list[tuple[str, str, str]]
) -> None:
    # The oracle: a store built afresh over the same table with the same pending writes,
    # which lists the table itself (what every iteration did before the listing was kept).
    table = CodecTable()
    for key in initial:
        table.put(f"tickets\x1f{key}", ["0"])
    table.put("other\x1fa", ["not tickets"])
    store, _ = _counting_store(table)
    for op, key, value in ops:
        if op == "set":
            store[key] = (value,)
        elif op == "del" and key in store:
            del store[key]
        elif op == "commit":
            _commit(store, table)
        elif op == "iter":
            list(store)
        fresh, _ = _counting_store(table)
        fresh.dirty = dict(store.dirty)
        assert list(store) == list(fresh)
        assert all((k in store) == (k in fresh) for k in "abcdef")
        # get against what Mapping.get would answer from the fresh store's reads
        oracle = [fresh[k] if k in fresh else "-" for k in "abcdef"]  # noqa: SIM401
        assert [store.get(k, "-") for k in "abcdef"] == oracle

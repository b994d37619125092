"""The compiled flat Avro writer (processors.avro) writes exactly fastavro's bytes, and hands
back to fastavro every record it cannot be sure of, so ``Codec.encode`` gives the same bytes or
the same ``CodecError`` as fastavro alone (schemas/README.md, "Wire format")."""

from __future__ import annotations

import collections
import datetime as dt
import inspect
import io
import json
import math
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.bench import desk_outputs
from loadtest.generator import generate_week
from processors import native
from processors.avro import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, FlatWriter, flat_writer
from schemas.codec import (
    CODEC,
    CYCLE_STATE,
    SCHEMA_DIR,
    TICKET_STATE,
    Codec,
    CodecError,
    event_record,
    load_schema_files,
    schema_name_for_event,
    state_record,
)

SCHEMAS = load_schema_files(SCHEMA_DIR)
NAMES = sorted(SCHEMAS)
REFERENCE = Codec(flat_writers=False)
"""fastavro alone: what every record encoded to before the flat writers."""


def fastavro_bytes(name: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, CODEC.schema(name), record, strict=True, strict_allow_default=True
    )
    return out.getvalue()


def writer(name: str) -> FlatWriter:
    found = CODEC.flat_writer(name)
    assert found is not None, f"{name} has no flat writer"
    return found


def body(name: str, record: dict[str, Any]) -> bytes | None:
    """What the flat writer writes after the header (None: it hands the record back)."""
    written = writer(name).write(record)
    if written is None:
        return None
    header = CODEC.fingerprint(name)
    assert written[:2] == b"\xc3\x01" and written[2:10] == header
    return written[10:]


def assert_same_as_before(name: str, record: Any) -> None:
    """``CODEC.encode`` gives what fastavro alone gives: the same bytes or the same error."""
    try:
        expected = REFERENCE.encode(name, record)
    except CodecError as error:
        with pytest.raises(CodecError) as raised:
            CODEC.encode(name, record)
        assert str(raised.value) == str(error)
    else:
        assert CODEC.encode(name, record) == expected


# -- the schemas --------------------------------------------------------------------------------


def _base(field_type: Any) -> tuple[str, bool]:
    """A field's primitive type and whether it is nullable."""
    if isinstance(field_type, list):
        (other,) = [t for t in field_type if t != "null"]
        return _base(other)[0], True
    if isinstance(field_type, dict):
        return field_type["type"], False
    return field_type, False


def fields(name: str) -> list[tuple[str, str, bool]]:
    return [(f["name"], *_base(f["type"])) for f in SCHEMAS[name]["fields"]]


@pytest.mark.parametrize("name", NAMES)
def test_every_current_schema_has_a_flat_writer(name: str) -> None:
    assert CODEC.flat_writer(name) is not None
    assert REFERENCE.flat_writer(name) is None


def test_the_schemas_use_only_the_types_the_writer_writes() -> None:
    used = {base for name in NAMES for _, base, _ in fields(name)}
    assert used <= {"boolean", "int", "long", "double", "string"}


# -- byte for byte --------------------------------------------------------------------------


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "boolean": st.booleans(),
    "int": st.integers(INT_MIN, INT_MAX),
    "long": st.integers(LONG_MIN, LONG_MAX),
    "double": st.floats(allow_nan=True, allow_infinity=True),
    "string": st.text(),  # every code point but surrogates, astral planes included
}


@cache
def records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            field: (_VALUES[base] | st.none()) if nullable else _VALUES[base]
            for field, base, nullable in fields(name)
        }
    )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_records_are_fastavros_bytes(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    assert body(name, record) == fastavro_bytes(name, record)
    assert CODEC.decode(CODEC.encode(name, record))[0] == name


@cache
def _apache_reader(name: str) -> avro.io.DatumReader:
    plain = json.loads(json.dumps(SCHEMAS[name]).replace('"logicalType"', '"_no_logical_type"'))
    return avro.io.DatumReader(avro.schema.parse(json.dumps(plain)))


@pytest.mark.parametrize("name", [TICKET_STATE, CYCLE_STATE, "ticket_opened", "qa_reviewed"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_apache_implementation_reads_back_what_the_writer_wrote(
    name: str, data: st.DataObject
) -> None:
    """A second reader, independent of fastavro: the ``avro`` package (the specification's
    Python implementation). NaN is left out: it reads back as a NaN, which is not equal."""
    record = data.draw(records(name).filter(lambda r: not any(v != v for v in r.values())))
    written = body(name, record)
    assert written is not None
    decoder = avro.io.BinaryDecoder(io.BytesIO(written))
    assert _apache_reader(name).read(decoder) == record
    assert decoder.reader.read() == b""  # nothing left over


EDGES: dict[str, list[Any]] = {
    "boolean": [True, False],
    "int": [0, -1, 1, 63, -64, 64, -65, 8191, -8192, 8192, INT_MIN, INT_MAX],
    "long": [
        *(0, -1, 1, INT_MIN, INT_MAX, -(2**31) - 1, 2**31, LONG_MIN, LONG_MAX, -LONG_MAX),
        *(2**62 - 1, 2**62, -(2**62), -(2**62) - 1),  # where compiled ints stop being unboxed
        1_772_409_600_000,  # an instant
    ],
    "double": [
        0.0,
        -0.0,
        1.5,
        -1.0,
        math.nan,
        -math.nan,
        struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0],  # a NaN with a payload
        math.inf,
        -math.inf,
        5e-324,
        1.7976931348623157e308,
    ],
    "string": ["", "a", "ç", "Привет", "日本", "😀 astral 𝄞", "\x00", "x" * 200, "я" * 100],
}


def _filled(name: str, pick: Callable[[str], Any]) -> dict[str, Any]:
    return {field: pick(base) for field, base, _ in fields(name)}


@pytest.mark.parametrize("name", NAMES)
def test_edge_values_in_every_field_are_fastavros_bytes(name: str) -> None:
    plain = _filled(name, lambda base: EDGES[base][0])
    checked = 0
    for field, base, nullable in fields(name):
        for value in [*EDGES[base], *([None] if nullable else [])]:
            record = {**plain, field: value}
            assert body(name, record) == fastavro_bytes(name, record), (field, value)
            checked += 1
    assert checked >= len(SCHEMAS[name]["fields"]) * 2


@pytest.mark.parametrize("name", [n for n in NAMES if any(f[2] for f in fields(n))])
def test_none_in_every_nullable_field_at_once(name: str) -> None:
    record = _filled(name, lambda base: EDGES[base][1])
    for field, _, nullable in fields(name):
        if nullable:
            record[field] = None
    assert body(name, record) == fastavro_bytes(name, record)


# -- the encoding itself, against the Avro specification (not fastavro) ----------------------

LONGS = {
    0: b"\x00",
    -1: b"\x01",
    1: b"\x02",
    -2: b"\x03",
    2: b"\x04",
    -64: b"\x7f",
    64: b"\x80\x01",
    8191: b"\xfe\x7f",
    -8193: b"\x81\x80\x01",
    LONG_MAX: b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    LONG_MIN: b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
}


def _one_field(field_type: Any, default: Any = ...) -> FlatWriter:
    field: dict[str, Any] = {"name": "v", "type": field_type}
    if default is not ...:
        field["default"] = default
    found = flat_writer({"type": "record", "name": "r", "fields": [field]})
    assert found is not None
    return found


@pytest.mark.parametrize(("value", "encoded"), LONGS.items())
def test_longs_are_zig_zag_varints_as_the_specification_shows(value: int, encoded: bytes) -> None:
    assert _one_field("long").write({"v": value}) == encoded


def test_the_other_types_as_the_specification_writes_them() -> None:
    assert _one_field("boolean").write({"v": True}) == b"\x01"
    assert _one_field("boolean").write({"v": False}) == b"\x00"
    assert _one_field("double").write({"v": 1.0}) == b"\x00\x00\x00\x00\x00\x00\xf0\x3f"
    assert _one_field("string").write({"v": "foo"}) == b"\x06foo"
    assert _one_field("string").write({"v": "é"}) == b"\x04\xc3\xa9"
    assert _one_field("int").write({"v": -3}) == b"\x05"
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    assert _one_field(stamp).write({"v": 1_772_409_600_000}) == _one_field("long").write(
        {"v": 1_772_409_600_000}
    )


@pytest.mark.parametrize(
    ("union", "null_bytes", "value_bytes"),
    [
        (["null", "long"], b"\x00", b"\x02\x54"),
        (["long", "null"], b"\x02", b"\x00\x54"),
        (["null", "string"], b"\x00", b"\x02\x02x"),
        (["string", "null"], b"\x02", b"\x00\x02x"),
    ],
)
def test_a_union_writes_its_branch_index_first(
    union: list[str], null_bytes: bytes, value_bytes: bytes
) -> None:
    one = _one_field(union, None if union[0] == "null" else ...)
    value = 42 if "long" in union else "x"
    assert one.write({"v": None}) == null_bytes
    assert one.write({"v": value}) == value_bytes
    schema = fastavro.parse_schema(
        {"type": "record", "name": "r", "fields": [{"name": "v", "type": union}]}
    )
    for datum in (None, value):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, {"v": datum}, strict=True)
        assert one.write({"v": datum}) == out.getvalue()


def test_fields_are_written_in_the_schemas_order_whatever_the_records() -> None:
    two = flat_writer(
        {
            "type": "record",
            "name": "r",
            "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
        },
        prefix=b"HDR",
    )
    assert two is not None
    assert two.write({"b": "z", "a": 1}) == b"HDR\x02\x02z"


@pytest.mark.parametrize(
    "field_type",
    [
        "float",
        "bytes",
        "null",
        {"type": "enum", "name": "e", "symbols": ["a"]},
        {"type": "array", "items": "int"},
        {"type": "map", "values": "int"},
        {"type": "record", "name": "inner", "fields": [{"name": "x", "type": "int"}]},
        ["null", "int", "string"],
        ["int", "string"],
        ["null", "null"],
        ["null", ["null", "int"]],
        {"type": "int", "logicalType": "date"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "int", "logicalType": "timestamp-millis"},
        "some.named.Type",
    ],
)
def test_a_schema_that_is_not_flat_gets_no_writer(field_type: Any) -> None:
    schema = {"type": "record", "name": "r", "fields": [{"name": "v", "type": field_type}]}
    assert flat_writer(schema) is None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "enum", "name": "e", "symbols": ["a"]},
        {"type": "record", "name": "r"},
        {"type": "record", "name": "r", "fields": ["v"]},
        {"type": "record", "name": "r", "fields": [{"type": "int"}]},
        {"type": "record", "name": "r", "fields": [{"name": "v", "type": "int"}] * 2},
        {
            "type": "record",
            "name": "r",
            "fields": [{"name": "v", "type": {"type": "long", "doc": "x"}}],
        },
    ],
)
def test_what_is_not_a_flat_record_schema_gets_no_writer(schema: dict[str, Any]) -> None:
    assert flat_writer(schema) is None


# -- what the writer hands back to fastavro ----------------------------------------------------


class _Text(str):
    pass


class _Number(int):
    pass


def _ticket() -> dict[str, Any]:
    return _filled(TICKET_STATE, lambda base: EDGES[base][1])


FALLBACKS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("bool in a long", lambda r: {**r, "version": True}),
    ("bool in an int", lambda r: {**r, "reopen_count": False}),
    ("bool in a nullable int", lambda r: {**r, "csat": True}),
    ("int in a double", lambda r: {**r, "promise_estimate_seconds": 3}),
    ("str in a double", lambda r: {**r, "promise_estimate_seconds": "3"}),
    ("float in an int", lambda r: {**r, "reopen_count": 1.5}),
    ("float in a timestamp", lambda r: {**r, "opened_at": 1.0}),
    (
        "datetime in a timestamp",
        lambda r: {**r, "opened_at": dt.datetime(2026, 3, 2, tzinfo=dt.UTC)},
    ),
    (
        "datetime in a nullable timestamp",
        lambda r: {**r, "solved_at": dt.datetime(2026, 3, 2, tzinfo=dt.UTC)},
    ),
    ("int subclass in a long", lambda r: {**r, "version": _Number(7)}),
    ("str subclass in a string", lambda r: {**r, "status": _Text("open")}),
    ("lone surrogate", lambda r: {**r, "status": "bad \ud800 text"}),
    ("int beyond int32", lambda r: {**r, "reopen_count": INT_MAX + 1}),
    ("int below int32", lambda r: {**r, "reopen_count": INT_MIN - 1}),
    ("int beyond int32 in a union", lambda r: {**r, "csat": INT_MAX + 1}),
    ("int beyond int64", lambda r: {**r, "version": LONG_MAX + 1}),
    ("int below int64", lambda r: {**r, "version": LONG_MIN - 1}),
    ("int beyond int64 in a union", lambda r: {**r, "solved_at": 2**64}),
    ("None in a string", lambda r: {**r, "status": None}),
    ("None in a long", lambda r: {**r, "version": None}),
    ("bytes in a string", lambda r: {**r, "status": b"open"}),
    ("missing field", lambda r: {k: v for k, v in r.items() if k != "status"}),
    ("missing field with a default", lambda r: {k: v for k, v in r.items() if k != "language"}),
    ("missing nullable field", lambda r: {k: v for k, v in r.items() if k != "solved_at"}),
    ("unexpected field", lambda r: {**r, "colour": "red"}),
    (
        "missing one, an unexpected one",
        lambda r: {**{k: v for k, v in r.items() if k != "status"}, "colour": "x"},
    ),
    ("an OrderedDict", lambda r: collections.OrderedDict(r)),
    ("a defaultdict", lambda r: collections.defaultdict(str, r)),
    ("not a mapping", lambda r: list(r.items())),
    ("None", lambda r: None),
]


def test_the_fallback_cases_name_fields_the_ticket_schema_has() -> None:
    by_name = {field: (base, nullable) for field, base, nullable in fields(TICKET_STATE)}
    assert by_name["version"] == ("long", False)
    assert by_name["reopen_count"] == ("int", False)
    assert by_name["csat"] == ("int", True)
    assert by_name["promise_estimate_seconds"] == ("double", True)
    assert by_name["opened_at"] == ("long", False)
    assert by_name["solved_at"] == ("long", True)
    assert by_name["status"] == ("string", False)
    assert "default" in {f["name"]: f for f in SCHEMAS[TICKET_STATE]["fields"]}["language"]


@pytest.mark.parametrize(("case", "change"), FALLBACKS, ids=[c for c, _ in FALLBACKS])
def test_what_the_writer_is_not_sure_of_goes_to_fastavro(
    case: str, change: Callable[[dict[str, Any]], Any]
) -> None:
    record = change(_ticket())
    assert writer(TICKET_STATE).write(record) is None
    assert_same_as_before(TICKET_STATE, record)


@pytest.mark.parametrize(
    "value", [3, True, "3", None, _Number(3), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)]
)
def test_a_double_that_is_not_exactly_a_float_goes_to_fastavro(value: Any) -> None:
    record = {**_filled(CYCLE_STATE, lambda base: EDGES[base][1]), "target_seconds": value}
    assert fields(CYCLE_STATE)[11] == ("target_seconds", "double", False)
    assert writer(CYCLE_STATE).write(record) is None
    assert_same_as_before(CYCLE_STATE, record)


def test_fastavro_still_writes_what_it_wrote_before_for_a_handed_back_record() -> None:
    # Not an error with fastavro: bool is an int to it. The bytes stay fastavro's.
    record = {**_ticket(), "version": True}
    assert CODEC.encode(TICKET_STATE, record) == REFERENCE.encode(TICKET_STATE, record)
    assert CODEC.decode(CODEC.encode(TICKET_STATE, record))[1]["version"] == 1


def test_a_missing_field_with_a_default_is_refused_as_before() -> None:
    record = {k: v for k, v in _ticket().items() if k != "language"}
    with pytest.raises(CodecError, match="Field language is specified in the schema"):
        CODEC.encode(TICKET_STATE, record)


# -- real desk outputs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def week_outputs(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    path = Path(tmp_path_factory.mktemp("week")) / "week.jsonl"
    generate_week(dt.datetime(2026, 3, 2, tzinfo=dt.UTC), 5, 25).write_jsonl(path)
    return desk_outputs(path)


def test_every_output_of_a_week_encodes_as_fastavro_and_reads_back(week_outputs: list[Any]) -> None:
    events = [e for o in week_outputs for e in o.events]
    tickets = [t for o in week_outputs for t in o.tickets]
    cycles = [c for o in week_outputs for c in o.cycles]
    assert len(events) > 100 and tickets and cycles
    assert len({e.event_type for e in events}) >= 10
    for event in events:
        name = schema_name_for_event(event.event_type)
        assert writer(name).write(event_record(event)) is not None, event.event_type
        data = CODEC.encode_event(event)
        assert data == REFERENCE.encode_event(event)
        assert CODEC.decode_event(data) == event
    for ticket in tickets:
        assert writer(TICKET_STATE).write(state_record(ticket)) is not None
        data = CODEC.encode_ticket(ticket)
        assert data == REFERENCE.encode_ticket(ticket)
        assert CODEC.decode_ticket(data) == ticket
    for cycle in cycles:
        assert writer(CYCLE_STATE).write(state_record(cycle)) is not None
        data = CODEC.encode_cycle(cycle)
        assert data == REFERENCE.encode_cycle(cycle)
        assert CODEC.decode_cycle(data) == cycle


# -- compiled ------------------------------------------------------------------------------


def test_compiled_the_writer_is_compiled_code() -> None:
    if "processors.avro" not in native.native_modules():
        pytest.skip("processors.avro runs interpreted here")
    assert not inspect.isfunction(FlatWriter.write)
    assert not inspect.isfunction(flat_writer)

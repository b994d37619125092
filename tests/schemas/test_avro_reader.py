"""The flat reader (``processors.avro.FlatReader``, how the sink decodes what the workers
publish): every message reads back exactly as fastavro reads it, and whatever the reader is
not sure of (a damaged body) is left to fastavro, which answers as it always did."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import native
from processors.avro import FlatReader, flat_reader
from schemas.codec import (
    CODEC,
    CYCLE_STATE,
    HEADER_SIZE,
    TICKET_STATE,
    CodecError,
    schema_name_for_event,
)
from tests.schemas.test_avro_writer import (
    NAMES,
    REFERENCE,
    SCHEMAS,
    fastavro_bytes,
    fields,
    records,
    week_outputs,  # noqa: F401  (a fixture: the desk's outputs over a generated week)
)


def reader(name: str) -> FlatReader:
    found = flat_reader(SCHEMAS[name])
    assert found is not None, f"{name} has no flat reader"
    return found


def typed(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A record with each value's type, compared by ``repr`` (NaN equals NaN, -0.0 is not
    0.0, ``True`` is not ``1``)."""
    return [(key, type(value).__name__, repr(value)) for key, value in record.items()]


def outcome(codec: Any, data: bytes) -> tuple[Any, ...]:
    """What ``codec.decode`` makes of ``data``: the schema and the typed record, or its error."""
    try:
        name, record = codec.decode(data)
    except CodecError as error:
        return ("error", str(error))
    return ("read", name, typed(record))


@pytest.mark.parametrize("name", NAMES)
def test_every_current_schema_has_a_flat_reader_and_the_codec_uses_it(name: str) -> None:
    reader(name)
    message = CODEC.encode(name, _first_record(name))
    assert reader(name).read(message, HEADER_SIZE) is not None


def _first_record(name: str) -> dict[str, Any]:
    values = {"boolean": True, "int": 7, "long": 1_772_400_000_000, "double": 0.5, "string": "é"}
    return {field: values[base] for field, base, _ in fields(name)}


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_records_read_as_fastavro_reads_them(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    message = REFERENCE.encode(name, record)  # fastavro's bytes
    assert message[HEADER_SIZE:] == fastavro_bytes(name, record)
    read = reader(name).read(message, HEADER_SIZE)
    assert read is not None
    assert typed(read) == typed(REFERENCE.decode(message)[1])


def test_every_output_of_a_week_reads_as_fastavro_reads_it(week_outputs: list[Any]) -> None:  # noqa: F811
    messages = [
        *(CODEC.encode_event(e) for o in week_outputs for e in o.events),
        *(CODEC.encode_ticket(t) for o in week_outputs for t in o.tickets),
        *(CODEC.encode_cycle(c) for o in week_outputs for c in o.cycles),
    ]
    assert len(messages) > 500
    names = {schema_name_for_event(e.event_type) for o in week_outputs for e in o.events}
    for data in messages:
        name, _ = REFERENCE.decode(data)
        assert reader(name).read(data, HEADER_SIZE) is not None, name  # the fast path, not fastavro
        assert outcome(CODEC, data) == outcome(REFERENCE, data)
    assert len(names) >= 10


def _samples(week_outputs: list[Any]) -> list[bytes]:  # noqa: F811
    """A message of every schema the week wrote (the first of each)."""
    found: dict[str, bytes] = {}
    for output in week_outputs:
        for event in output.events:
            found.setdefault(schema_name_for_event(event.event_type), CODEC.encode_event(event))
        for ticket in output.tickets:
            found.setdefault(TICKET_STATE, CODEC.encode_ticket(ticket))
        for cycle in output.cycles:
            found.setdefault(CYCLE_STATE, CODEC.encode_cycle(cycle))
    return list(found.values())


def test_a_truncated_or_lengthened_message_is_answered_as_fastavro_answers(
    week_outputs: list[Any],  # noqa: F811
) -> None:
    for data in _samples(week_outputs):
        for cut in range(HEADER_SIZE, len(data)):
            assert reader(REFERENCE.decode(data)[0]).read(data[:cut], HEADER_SIZE) is None
            assert outcome(CODEC, data[:cut]) == outcome(REFERENCE, data[:cut])
        for extra in (b"\0", b"\x80", b"xyz"):
            assert outcome(CODEC, data + extra) == outcome(REFERENCE, data + extra)
            assert outcome(CODEC, data + extra)[0] == "error"


def test_any_byte_changed_is_answered_as_fastavro_answers(week_outputs: list[Any]) -> None:  # noqa: F811
    """Every byte of each schema's sample replaced by values that break a union's branch
    index, a boolean, a varint or UTF-8: the codec reads the same record or raises the same
    error as fastavro alone."""
    for data in _samples(week_outputs):
        for at in range(HEADER_SIZE, len(data)):
            for byte in (0x02, 0x04, 0x7F, 0x80, 0xC3, 0xFF):
                damaged = data[:at] + bytes([byte]) + data[at + 1 :]
                assert outcome(CODEC, damaged) == outcome(REFERENCE, damaged), (at, byte)


def test_what_the_reader_is_not_sure_of_it_leaves_to_fastavro() -> None:
    long_field = FlatReader(["n"], [3], [-1])  # one long
    assert long_field.read(b"\x02", 0) == {"n": 1}
    assert long_field.read(b"\x01", 0) == {"n": -1}
    assert long_field.read(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0) == {"n": 2**63 - 1}
    assert long_field.read(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0) == {"n": -(2**63)}
    assert long_field.read(b"\x80" * 10 + b"\x01", 0) is None  # eleven bytes
    assert long_field.read(b"\x80", 0) is None  # cut short
    assert long_field.read(b"\x02\x00", 0) is None  # a byte left over
    nullable_bool = FlatReader(["b"], [1], [0])  # ["null", "boolean"]
    assert nullable_bool.read(b"\x00", 0) == {"b": None}
    assert nullable_bool.read(b"\x02\x01", 0) == {"b": True}
    assert nullable_bool.read(b"\x02\x00", 0) == {"b": False}
    assert nullable_bool.read(b"\x02\x02", 0) is None  # a boolean byte other than 0 or 1
    assert nullable_bool.read(b"\x04\x01", 0) is None  # a third branch
    text = FlatReader(["s"], [5], [1])  # ["string", "null"]
    assert text.read(b"\x00\x04\xc3\xa9", 0) == {"s": "é"}
    assert text.read(b"\x02", 0) == {"s": None}
    assert text.read(b"\x00\x02\xff", 0) is None  # not UTF-8
    assert text.read(b"\x00\x01", 0) is None  # a negative length
    assert text.read(b"\x00\x06ab", 0) is None  # longer than what is left


def test_compiled_the_reader_is_compiled_code() -> None:
    if "processors.avro" not in native.native_modules():
        pytest.skip("processors.avro runs interpreted here")
    assert not inspect.isfunction(FlatReader.read)
    assert not inspect.isfunction(flat_reader)

"""Avro binary encoding of flat records, compiled: the fast path of ``schemas.codec``.

A *flat* record schema has only fields of a primitive type (``boolean``, ``int``, ``long``,
``double``, ``string``; ``long`` also as ``timestamp-millis``) or of a two-branch union of
``null`` and one of them, in either order: every schema this release writes (schemas/README.md,
"Wire format"). ``flat_writer`` reads such a schema once into a field list with a
type code per field; ``FlatWriter.write`` then encodes a record as the Avro specification's
binary encoding does (zig-zag varints, little-endian IEEE 754 doubles, length-prefixed UTF-8,
a union's branch index before its value), byte for byte what ``fastavro.schemaless_writer``
writes with ``strict=True`` (tests/schemas/test_avro_writer.py).

``FlatReader.read`` is the way back, for the sink (``flat_reader``): the record a message's
body holds, as the dict ``fastavro.schemaless_reader`` returns for the same schema (fields in
the schema's order, ``int``, ``float``, ``str``, ``bool`` or ``None``), or ``None`` for
anything it is not sure of (a truncated body, bytes left over, a union branch or boolean byte
out of range, text that is not strict UTF-8, a varint longer than ten bytes): fastavro then
reads it, and raises what it always raised.

It does not judge a record: whatever it is not sure to encode exactly as fastavro does, it
leaves to fastavro by returning ``None`` (a value whose Python type is not exactly the field's,
``True`` in a ``long`` or ``3`` in a ``double``; an ``int`` out of its field's range; text UTF-8
cannot encode; a missing or unexpected field; a record that is not a ``dict``). The caller then
encodes with fastavro, which writes the same bytes or raises the error it always raised.
Missing fields are never written with their defaults: fastavro's ``strict`` mode, the codec's,
refuses them even where ``strict_allow_default`` would allow them.

Pure: no I/O, no clock. ``librt.strings.BytesWriter`` (mypyc's runtime library) is the output
buffer; compiled, its appends are C calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, final

from librt.strings import BytesWriter, read_f64_le, write_f64_le

BOOLEAN: Final = 1
INT: Final = 2
LONG: Final = 3
DOUBLE: Final = 4
STRING: Final = 5

_PRIMITIVES: Final[dict[str, int]] = {
    "boolean": BOOLEAN,
    "int": INT,
    "long": LONG,
    "double": DOUBLE,
    "string": STRING,
}
_LOGICAL: Final[dict[str, str]] = {"timestamp-millis": "long"}
"""The logical types whose values are exactly their base type's (an ``int`` of milliseconds
is written as the ``long`` it is; a ``datetime`` is not exact and goes to fastavro)."""

NOT_NULLABLE: Final = -1
"""A field's ``nulls`` entry when it is not a union: else the index of the ``null`` branch."""

INT_MIN: Final = -(1 << 31)
INT_MAX: Final = (1 << 31) - 1
LONG_MIN: Final = -(1 << 63)
LONG_MAX: Final = (1 << 63) - 1
SHORT_MIN: Final = -(1 << 62)
SHORT_MAX: Final = (1 << 62) - 1
"""The range of mypyc's unboxed ("short") ints."""


@final
class FlatWriter:
    """The encoder of one flat record schema: field names, a type code and the position of
    ``null`` in its union for each field, in the schema's order, and the bytes to write before
    every record (``prefix``: the codec's single-object header). Built once per schema."""

    def __init__(
        self,
        names: list[str],
        kinds: list[int],
        nulls: list[int],
        prefix: bytes = b"",
    ) -> None:
        if not len(names) == len(kinds) == len(nulls):
            raise ValueError("names, kinds and nulls must be as long as each other")
        self.names: Final = names
        self.kinds: Final = kinds
        self.nulls: Final = nulls
        self.prefix: Final = prefix

    def write(self, record: object) -> bytes | None:
        """``prefix`` and then ``record`` in Avro binary, or ``None`` where fastavro must decide
        (the record is not a ``dict`` of exactly the schema's fields holding values of exactly
        the fields' types)."""
        if type(record) is not dict or len(record) != len(self.names):
            return None
        out = BytesWriter()
        out.write(self.prefix)
        names = self.names
        kinds = self.kinds
        nulls = self.nulls
        for i in range(len(names)):
            value = record.get(names[i], _MISSING)
            null_at = nulls[i]
            if null_at != NOT_NULLABLE:
                if value is None:
                    out.append(2 * null_at)  # the branch index, zig-zag: 0 -> 0, 1 -> 2
                    continue
                out.append(2 - 2 * null_at)  # the other branch
            if not _write_value(out, kinds[i], value):
                return None  # missing, or not exactly of the field's type
        return out.getvalue()


_MISSING: Final = object()


def _write_value(out: BytesWriter, kind: int, value: object) -> bool:
    if kind == STRING:
        if type(value) is not str:
            return False
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: fastavro's error to raise, not ours
            return False
        _write_long(out, len(data))
        out.write(data)
        return True
    if kind == LONG:
        if type(value) is not int:
            return False
        # Compiled, an int within +-2**62 is unboxed and compares in one instruction, where a
        # comparison with LONG_MIN or LONG_MAX (boxed) costs a call: instants pass the first.
        if not SHORT_MIN <= value <= SHORT_MAX and (value < LONG_MIN or value > LONG_MAX):
            return False
        _write_long(out, value)
        return True
    if kind == INT:
        if type(value) is not int or value < INT_MIN or value > INT_MAX:
            return False
        _write_long(out, value)
        return True
    if kind == DOUBLE:
        if type(value) is not float:
            return False
        write_f64_le(out, value)
        return True
    if kind == BOOLEAN:
        if type(value) is not bool:
            return False
        out.append(1 if value else 0)
        return True
    return False


def _write_long(out: BytesWriter, value: int) -> None:
    """``value`` zig-zag encoded (0, -1, 1, -2... as 0, 1, 2, 3...) as a base-128 varint, low
    groups first."""
    n = value << 1 if value >= 0 else ((~value) << 1) | 1
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


@final
class FlatReader:
    """The decoder of one flat record schema (the same field list as :class:`FlatWriter`'s)."""

    def __init__(self, names: list[str], kinds: list[int], nulls: list[int]) -> None:
        if not len(names) == len(kinds) == len(nulls):
            raise ValueError("names, kinds and nulls must be as long as each other")
        self.names: Final = names
        self.kinds: Final = kinds
        self.nulls: Final = nulls

    def read(self, data: bytes, start: int) -> dict[str, object] | None:
        """The record encoded in ``data`` from ``start`` to its end, or ``None`` where fastavro
        must decide (see the module's docstring)."""
        names = self.names
        kinds = self.kinds
        nulls = self.nulls
        end = len(data)
        record: dict[str, object] = {}
        pos = start
        for i in range(len(names)):
            null_at = nulls[i]
            if null_at != NOT_NULLABLE:
                if pos >= end:
                    return None
                branch = data[pos]  # a zig-zag 0 or 1 is one byte: 0 or 2
                pos += 1
                if branch == 2 * null_at:
                    record[names[i]] = None
                    continue
                if branch != 2 - 2 * null_at:
                    return None
            kind = kinds[i]
            if kind in (LONG, INT):
                value, pos = _read_long(data, pos, end)
                if pos < 0:
                    return None
                record[names[i]] = value
            elif kind == STRING:
                length, pos = _read_long(data, pos, end)
                if pos < 0 or length < 0 or pos + length > end:
                    return None
                try:
                    record[names[i]] = data[pos : pos + length].decode("utf-8")
                except UnicodeDecodeError:
                    return None
                pos += length
            elif kind == DOUBLE:
                if pos + 8 > end:
                    return None
                record[names[i]] = read_f64_le(data, pos)
                pos += 8
            elif kind == BOOLEAN:
                if pos >= end or data[pos] > 1:
                    return None
                record[names[i]] = data[pos] == 1
                pos += 1
            else:
                return None
        if pos != end:
            return None
        return record


def _read_long(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The zig-zag varint at ``pos`` (at most ten bytes, low groups first) and the position
    after it; the position is -1 if the varint does not end within ten bytes or ``data``."""
    limit = min(pos + 10, end)
    n = 0
    shift = 0
    while pos < limit:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
    return 0, -1


def flat_writer(schema: Mapping[str, object], prefix: bytes = b"") -> FlatWriter | None:
    """The writer of the record schema ``schema`` (as JSON, an ``.avsc`` file's content), or
    ``None`` when it is not flat (a nested record, an array, an enum, a wider union, a type or
    logical type this module does not write): fastavro writes those."""
    plan = _flat_fields(schema)
    return None if plan is None else FlatWriter(plan[0], plan[1], plan[2], prefix)


def flat_reader(schema: Mapping[str, object]) -> FlatReader | None:
    """The reader of the record schema ``schema`` (as :func:`flat_writer`), or ``None`` when it
    is not flat: fastavro reads those."""
    plan = _flat_fields(schema)
    return None if plan is None else FlatReader(plan[0], plan[1], plan[2])


def _flat_fields(schema: Mapping[str, object]) -> tuple[list[str], list[int], list[int]] | None:
    """A flat record schema's field names, type codes and ``null`` positions, or ``None``."""
    if schema.get("type") != "record":
        return None
    fields = schema.get("fields")
    if not isinstance(fields, list):
        return None
    names: list[str] = []
    kinds: list[int] = []
    nulls: list[int] = []
    for field in fields:
        if not isinstance(field, dict):
            return None
        name = field.get("name")
        if not isinstance(name, str):
            return None
        kind, null_at = _field_type(field.get("type"))
        if kind == 0:
            return None
        names.append(name)
        kinds.append(kind)
        nulls.append(null_at)
    if len(set(names)) != len(names):
        return None
    return names, kinds, nulls


def _field_type(avro_type: object) -> tuple[int, int]:
    """A field type's code and the index of ``null`` in its union (``NOT_NULLABLE``); code 0
    when this module does not write it."""
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type.count("null") != 1:
            return 0, NOT_NULLABLE
        null_at = avro_type.index("null")
        return _primitive(avro_type[1 - null_at]), null_at
    return _primitive(avro_type), NOT_NULLABLE


def _primitive(avro_type: object) -> int:
    if isinstance(avro_type, str):
        return _PRIMITIVES.get(avro_type, 0)
    if isinstance(avro_type, dict):
        base = avro_type.get("type")
        logical = avro_type.get("logicalType")
        if not isinstance(base, str) or len(avro_type) > 2:
            return 0
        if logical is None:
            return _PRIMITIVES.get(base, 0) if len(avro_type) == 1 else 0
        if not isinstance(logical, str) or _LOGICAL.get(logical) != base:
            return 0
        return _PRIMITIVES.get(base, 0)
    return 0

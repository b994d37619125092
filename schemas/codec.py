"""Avro encoding of every record that crosses a topic: single-object encoding.

A message is the Avro *single-object encoding* (Avro specification, "Single object encoding"):

    C3 01 | CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form (8 bytes,
    little-endian) | the record in Avro binary

so a consumer knows which schema wrote a message without a schema registry service, and an
old message stays readable after the schema evolves: ``Codec`` knows the current schemas
(``schemas/*.avsc``) and the committed previous ones (``schemas/previous/*.avsc``), finds the
writer schema by fingerprint and reads the record into the *current* schema of the same name.

Records are written by ``processors.avro``'s flat writer, compiled with mypyc: the desk
publishes a domain event and a ticket or cycle snapshot per change, and fastavro's per-call and
per-field costs made encoding a tenth of a worker's busy time. fastavro stays the reference and
the fallback: the flat writer hands back every record it is not sure to write exactly as
fastavro does (a value not exactly of its field's type, a missing or unexpected field...), and
fastavro then writes the same bytes or raises the error it always raised
(tests/schemas/test_avro_writer.py compares the two). Reading is fastavro's.

Everything is parsed and fingerprinted once, when the ``Codec`` is built (the module builds a
default one at import); encoding and decoding only look things up. Instants are ``Millis``
integers both ways: fastavro converts ``timestamp-millis`` to ``datetime`` on read, which would
cost time and lose nothing but exactness at the edges, so records are read through copies of
the schemas with the logical types removed (the binary encoding of ``timestamp-millis`` *is*
a ``long``, so the bytes are the same and the fingerprints too, Parsing Canonical Form has no
logical types).

Errors: anything wrong with a message (bad marker, unknown fingerprint, truncated or corrupt
body, trailing bytes) or with a record to encode raises ``CodecError`` with a message naming the
schema and the problem; fastavro's own exceptions never escape.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from processors.avro import FlatReader, FlatWriter, flat_reader, flat_writer
from processors.model import CycleState, DeadLetter, DomainEvent, TicketState

SCHEMA_DIR: Final = Path(__file__).resolve().parent
PREVIOUS_DIR: Final = SCHEMA_DIR / "previous"

MAGIC: Final = b"\xc3\x01"
"""The single-object encoding's two marker bytes."""
HEADER_SIZE: Final = len(MAGIC) + 8

ENVELOPE_FIELDS: Final = (
    "event_id",
    "event_type",
    "at",
    "ticket_id",
    "conversation_id",
    "customer_id",
)
"""The fields every domain-event schema starts with; the event's ``data`` fields follow."""

TICKET_STATE: Final = "ticket_state"
CYCLE_STATE: Final = "cycle_state"
DEAD_LETTER: Final = "dead_letter"
RAW_CONTACT: Final = "raw_contact"


class CodecError(Exception):
    """A message cannot be decoded, or a record cannot be encoded, with the known schemas."""


def schema_name_for_event(event_type: str) -> str:
    """The schema (file stem) of an event type: ``ticket.opened`` -> ``ticket_opened``."""
    return event_type.replace(".", "_")


def load_schema_files(directory: Path) -> dict[str, dict[str, Any]]:
    """The ``*.avsc`` files of a directory as JSON, by file stem (not parsed by fastavro)."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.avsc"))
    }


def _strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType``: same binary encoding, plain values on read."""
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(v) for v in schema]
    return schema


def _fingerprint(parsed: Any) -> bytes:
    # fastavro returns the CRC-64-AVRO fingerprint as the hex of its little-endian bytes (the
    # byte order of the Java implementation and of the single-object header), so fromhex gives
    # the header bytes directly. tests/schemas/test_codec.py checks this against the spec.
    return bytes.fromhex(_fastavro_fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class _Writer:
    """A schema that may have written a message: how to read it into the current schema."""

    name: str
    schema: Any  # parsed, logical types removed: the writer schema for fastavro
    reader: Any  # parsed current schema of ``name`` (logical types removed), None if the same
    fast: FlatReader | None = None  # reads the current schema's flat records; None: fastavro


@dataclass(frozen=True, slots=True)
class _Current:
    name: str
    schema: Any  # parsed, with logical types (encoding accepts ints for timestamp-millis)
    header: bytes
    fast: FlatWriter | None  # writes header + record; None: fastavro writes every record


class Codec:
    """Single-object Avro encoding for the records of ``schema_dir``.

    ``previous_dir`` holds earlier versions of the same schemas (same file stems); messages
    written with them are decoded into the current schema (Avro schema resolution). Build one
    per process (``CODEC``): construction parses every schema. ``flat_writers=False`` writes
    and reads every record with fastavro (the reference the tests compare the flat writers and
    readers of ``processors.avro`` with).
    """

    def __init__(
        self,
        schema_dir: Path = SCHEMA_DIR,
        previous_dir: Path | None = PREVIOUS_DIR,
        *,
        flat_writers: bool = True,
    ):
        current_json = load_schema_files(schema_dir)
        if not current_json:
            raise CodecError(f"no *.avsc schemas in {schema_dir}")
        self._json: dict[str, dict[str, Any]] = current_json
        self._current: dict[str, _Current] = {}
        self._writers: dict[bytes, _Writer] = {}
        plain_current: dict[str, Any] = {}
        for name, schema_json in current_json.items():
            try:
                parsed = fastavro.parse_schema(copy.deepcopy(schema_json))
                plain = fastavro.parse_schema(_strip_logical_types(schema_json))
            except Exception as exc:  # fastavro raises several types for a bad schema
                raise CodecError(f"schema {name}: {exc}") from exc
            fp = _fingerprint(parsed)
            if fp in self._writers:
                other = self._writers[fp].name
                raise CodecError(f"schemas {other} and {name} have the same fingerprint")
            fast = flat_writer(schema_json, MAGIC + fp) if flat_writers else None
            self._current[name] = _Current(name, parsed, MAGIC + fp, fast)
            reader = flat_reader(schema_json) if flat_writers else None
            self._writers[fp] = _Writer(name, plain, None, reader)
            plain_current[name] = plain
        previous_json = (
            load_schema_files(previous_dir)
            if previous_dir is not None and previous_dir.is_dir()
            else {}
        )
        for name, schema_json in previous_json.items():
            if name not in plain_current:
                continue  # a record type that no longer exists cannot be read into anything
            try:
                plain = fastavro.parse_schema(_strip_logical_types(schema_json))
            except Exception as exc:
                raise CodecError(f"previous schema {name}: {exc}") from exc
            fp = _fingerprint(plain)
            if fp not in self._writers:  # unchanged since the previous release: already known
                self._writers[fp] = _Writer(name, plain, plain_current[name])
        # Which fields hold data that needs a conversion after reading; computed once.
        self._event_names = {
            name
            for name, schema_json in current_json.items()
            if [f["name"] for f in schema_json["fields"][: len(ENVELOPE_FIELDS)]]
            == list(ENVELOPE_FIELDS)
        }

    # -- registry ---------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """The current schemas' names (file stems), sorted."""
        return tuple(sorted(self._current))

    def schema(self, name: str) -> Any:
        """The parsed (fastavro) current schema ``name``."""
        return self._entry(name).schema

    def schema_json(self, name: str) -> dict[str, Any]:
        """The current schema ``name`` as written in its ``.avsc`` file (a copy)."""
        self._entry(name)
        return copy.deepcopy(self._json[name])

    def fingerprint(self, name: str) -> bytes:
        """CRC-64-AVRO fingerprint of the current schema ``name`` (8 bytes, little-endian)."""
        return self._entry(name).header[len(MAGIC) :]

    def registry(self) -> dict[str, dict[str, Any]]:
        """Every current schema as JSON, by name: what a Faust codec or a schema registry needs."""
        return {name: copy.deepcopy(schema) for name, schema in self._json.items()}

    def flat_writer(self, name: str) -> FlatWriter | None:
        """The compiled writer of the current schema ``name`` (None: fastavro writes it)."""
        return self._entry(name).fast

    def _entry(self, name: str) -> _Current:
        entry = self._current.get(name)
        if entry is None:
            raise CodecError(f"unknown schema {name!r}; known: {', '.join(self.names)}")
        return entry

    # -- bytes ------------------------------------------------------------------------------

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """``record`` as a single-object message of schema ``schema_name``.

        The record must hold exactly the schema's fields, nullable ones and ones with a default
        too (fastavro's ``strict``, which wins over its ``strict_allow_default``); a missing or
        unexpected field is an error rather than silently written as a default or dropped,
        because it means the producer and the schema disagree.
        """
        entry = self._entry(schema_name)
        if entry.fast is not None:
            message = entry.fast.write(record)
            if message is not None:
                return message
        out = io.BytesIO()
        out.write(entry.header)
        try:
            fastavro.schemaless_writer(
                out, entry.schema, record, strict=True, strict_allow_default=True
            )
        except Exception as exc:  # ValueError, TypeError, AttributeError... from fastavro
            raise CodecError(f"cannot encode a {schema_name} record: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The schema name and the record of a single-object message, in the current schema."""
        if len(data) < HEADER_SIZE:
            raise CodecError(
                f"message too short for a single-object header: {len(data)} bytes, "
                f"need at least {HEADER_SIZE}"
            )
        if data[:2] != MAGIC:
            raise CodecError(
                f"not an Avro single-object message: marker {data[:2].hex()}, expected c301"
            )
        fp = bytes(data[2:HEADER_SIZE])
        writer = self._writers.get(fp)
        if writer is None:
            raise CodecError(
                f"unknown writer schema fingerprint {fp.hex()}: the message was written with a "
                "schema this version does not know (newer, or older than schemas/previous)"
            )
        if writer.fast is not None:
            flat = writer.fast.read(data, HEADER_SIZE)
            if flat is not None:
                return writer.name, flat
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(body, writer.schema, writer.reader)
        except Exception as exc:  # EOFError, StructError, UnicodeDecodeError, IndexError...
            raise CodecError(f"corrupt or truncated {writer.name} message: {exc!r}") from exc
        if body.tell() != len(data):
            raise CodecError(
                f"{len(data) - body.tell()} unexpected bytes after a {writer.name} record"
            )
        if not isinstance(record, dict):  # our schemas are all records
            raise CodecError(f"{writer.name} message did not decode to a record")
        return writer.name, record

    # -- domain records ---------------------------------------------------------------------

    def encode_event(self, event: DomainEvent) -> bytes:
        """A domain event: the envelope fields, then ``data`` flattened into the record."""
        name = schema_name_for_event(event.event_type)
        if name not in self._event_names:
            raise CodecError(f"unknown event type {event.event_type!r}")
        return self.encode(name, event_record(event))

    def decode_event(self, data: bytes) -> DomainEvent:
        name, record = self.decode(data)
        if name not in self._event_names:
            raise CodecError(f"expected a domain event, got a {name} message")
        envelope = {key: record.pop(key) for key in ENVELOPE_FIELDS}
        return DomainEvent(**envelope, data=record)

    def encode_ticket(self, ticket: TicketState) -> bytes:
        return self.encode(TICKET_STATE, state_record(ticket))

    def decode_ticket(self, data: bytes) -> TicketState:
        return TicketState(**self._expect(data, TICKET_STATE))

    def encode_cycle(self, cycle: CycleState) -> bytes:
        return self.encode(CYCLE_STATE, state_record(cycle))

    def decode_cycle(self, data: bytes) -> CycleState:
        return CycleState(**self._expect(data, CYCLE_STATE))

    def encode_dead_letter(self, dead: DeadLetter) -> bytes:
        return self.encode(DEAD_LETTER, state_record(dead))

    def decode_dead_letter(self, data: bytes) -> DeadLetter:
        return DeadLetter(**self._expect(data, DEAD_LETTER))

    def _expect(self, data: bytes, expected: str) -> dict[str, Any]:
        name, record = self.decode(data)
        if name != expected:
            raise CodecError(f"expected a {expected} message, got a {name} message")
        return record


def event_record(event: DomainEvent) -> dict[str, Any]:
    """The record of a domain event: ``data``'s fields and the envelope's."""
    record = dict(event.data)
    record.update(
        event_id=event.event_id,
        event_type=event.event_type,
        at=event.at,
        ticket_id=event.ticket_id,
        conversation_id=event.conversation_id,
        customer_id=event.customer_id,
    )
    return record


def state_record(value: Any) -> dict[str, Any]:
    """The record of a flat dataclass (a ticket or cycle snapshot, a dead letter): its fields."""
    # Shallow on purpose: the state records are flat, and dataclasses.asdict would deep-copy.
    names = _FIELD_NAMES.get(type(value))
    if names is None:
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    return {name: getattr(value, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each state record class's field names (``dataclasses.fields`` builds its tuple anew on
every call, and the desk encodes a snapshot per ticket and cycle it touches)."""


CODEC: Final = Codec()
"""The codec of this release's schemas, built once at import."""


def schema_registry() -> dict[str, dict[str, Any]]:
    """Every current schema as JSON, by name (``ticket_opened``, ``ticket_state``...)."""
    return CODEC.registry()


def encode(schema_name: str, record: Mapping[str, Any]) -> bytes:
    return CODEC.encode(schema_name, record)


def decode(data: bytes) -> tuple[str, dict[str, Any]]:
    return CODEC.decode(data)


def encode_event(event: DomainEvent) -> bytes:
    return CODEC.encode_event(event)


def decode_event(data: bytes) -> DomainEvent:
    return CODEC.decode_event(data)


def encode_ticket(ticket: TicketState) -> bytes:
    return CODEC.encode_ticket(ticket)


def decode_ticket(data: bytes) -> TicketState:
    return CODEC.decode_ticket(data)


def encode_cycle(cycle: CycleState) -> bytes:
    return CODEC.encode_cycle(cycle)


def decode_cycle(data: bytes) -> CycleState:
    return CODEC.decode_cycle(data)


def encode_dead_letter(dead: DeadLetter) -> bytes:
    return CODEC.encode_dead_letter(dead)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return CODEC.decode_dead_letter(data)

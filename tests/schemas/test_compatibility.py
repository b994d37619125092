"""Schema evolution and schema/code agreement.

The committed previous release's schemas (``schemas/previous/``) must stay readable by the
current ones (backward compatibility), checked two independent ways: the ``avro`` package's
reader/writer compatibility checker, and an actual write with the previous schema (fastavro) read
back with the current one as reader. The schemas must also say exactly what the code emits: the
event catalogue and the state dataclasses.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.read import SchemaResolutionError

from processors import model, native
from processors.events import DEAD_LETTER_FIELDS, EVENT_TYPES
from schemas.codec import (
    ENVELOPE_FIELDS,
    PREVIOUS_DIR,
    SCHEMA_DIR,
    Codec,
    load_schema_files,
    schema_name_for_event,
)

CURRENT = load_schema_files(SCHEMA_DIR)
PREVIOUS = load_schema_files(PREVIOUS_DIR)
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def _compatibility(reader: dict[str, Any], writer: dict[str, Any]) -> Any:
    return ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )


def _sample(avro_type: Any) -> Any:
    """A valid, non-default value of an Avro type (the non-null branch of a union)."""
    if isinstance(avro_type, list):
        return _sample(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "record":
            return {f["name"]: _sample(f["type"]) for f in avro_type["fields"]}
        if avro_type.get("logicalType") == "timestamp-millis":
            return 1_768_460_400_123
        return _sample(avro_type["type"])
    return {
        "string": "пример",
        "int": 7,
        "long": 1 << 40,
        "double": 2.5,
        "boolean": True,
    }[avro_type]


def _write_read(writer: dict[str, Any], reader: dict[str, Any], record: dict[str, Any]) -> Any:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(copy.deepcopy(writer)), record)
    out.seek(0)
    return fastavro.schemaless_reader(
        out,
        fastavro.parse_schema(copy.deepcopy(writer)),
        fastavro.parse_schema(copy.deepcopy(reader)),
    )


# -------------------------------------------------------------------------------------------------
# Backward compatibility with the committed previous schemas
# -------------------------------------------------------------------------------------------------


def test_there_is_a_committed_baseline_for_every_current_schema() -> None:
    # New schemas may appear before their first release; a schema in previous/ without a
    # current counterpart would mean a record type was dropped while old messages may remain.
    assert PREVIOUS, "schemas/previous/ is empty"
    assert set(PREVIOUS) <= set(CURRENT)


@pytest.mark.parametrize("name", sorted(PREVIOUS))
def test_current_schema_can_read_what_the_previous_one_wrote(name: str) -> None:
    result = _compatibility(reader=CURRENT[name], writer=PREVIOUS[name])
    assert result.compatibility is SchemaCompatibilityType.compatible, (
        f"{name}: {result.messages} at {result.locations}"
    )


@pytest.mark.parametrize("name", sorted(PREVIOUS))
def test_a_record_written_with_the_previous_schema_reads_with_the_current(name: str) -> None:
    record = _sample(PREVIOUS[name])
    read = _write_read(writer=PREVIOUS[name], reader=CURRENT[name], record=record)
    current_fields = {f["name"] for f in CURRENT[name]["fields"]}
    assert set(read) == current_fields
    for field in current_fields & set(record):
        value = read[field]
        if hasattr(value, "timestamp"):  # fastavro's datetime for timestamp-millis
            value = round(value.timestamp() * 1000)
        assert value == record[field], field


def _add_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    changed["fields"].append(field)
    return changed


def test_the_check_catches_a_field_added_without_a_default() -> None:
    previous = PREVIOUS["ticket_opened"]
    breaking = _add_field(previous, {"name": "language", "type": "string", "doc": "x"})
    result = _compatibility(reader=breaking, writer=previous)
    assert result.compatibility is SchemaCompatibilityType.incompatible
    assert any("language" in message for message in result.messages)
    with pytest.raises(SchemaResolutionError, match="language"):
        _write_read(writer=previous, reader=breaking, record=_sample(previous))


def test_the_check_catches_an_incompatible_type_change() -> None:
    previous = PREVIOUS["survey_answered"]
    breaking = copy.deepcopy(previous)
    score = next(f for f in breaking["fields"] if f["name"] == "score")
    score["type"] = "string"
    result = _compatibility(reader=breaking, writer=previous)
    assert result.compatibility is SchemaCompatibilityType.incompatible


def test_the_check_accepts_a_field_added_with_a_default() -> None:
    previous = PREVIOUS["ticket_opened"]
    evolved = _add_field(
        previous, {"name": "language", "type": ["null", "string"], "default": None, "doc": "x"}
    )
    result = _compatibility(reader=evolved, writer=previous)
    assert result.compatibility is SchemaCompatibilityType.compatible
    assert _write_read(previous, evolved, _sample(previous))["language"] is None


def test_the_codec_decodes_messages_of_the_previous_release_into_the_current_schema(
    tmp_path: Path,
) -> None:
    # Release N wrote survey_answered; release N+1 added an optional field. A message still in
    # the topic from release N must decode with N+1's codec, found by its fingerprint.
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    (old_dir / "survey_answered.avsc").write_text(json.dumps(CURRENT["survey_answered"]))
    evolved = _add_field(
        CURRENT["survey_answered"],
        {"name": "comment", "type": ["null", "string"], "default": None, "doc": "x"},
    )
    (new_dir / "survey_answered.avsc").write_text(json.dumps(evolved))
    old = Codec(old_dir, previous_dir=None)
    new = Codec(new_dir, previous_dir=old_dir)
    record = _sample(CURRENT["survey_answered"])
    data = old.encode("survey_answered", record)
    assert old.fingerprint("survey_answered") != new.fingerprint("survey_answered")
    name, decoded = new.decode(data)
    assert name == "survey_answered"
    assert decoded == {**record, "comment": None}


# -------------------------------------------------------------------------------------------------
# The schemas say what the code emits
# -------------------------------------------------------------------------------------------------


def _catalogue_type(spec: str) -> Any:
    if spec.endswith("?"):
        return ["null", _catalogue_type(spec[:-1])]
    return TIMESTAMP if spec == "timestamp" else spec


def test_there_is_one_schema_per_event_type_and_no_other_event_schema() -> None:
    expected = {schema_name_for_event(t) for t in EVENT_TYPES}
    event_schemas = {
        name
        for name, schema in CURRENT.items()
        if [f["name"] for f in schema["fields"][: len(ENVELOPE_FIELDS)]] == list(ENVELOPE_FIELDS)
    }
    assert event_schemas == expected


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_schema_matches_the_catalogue(event_type: str) -> None:
    schema = CURRENT[schema_name_for_event(event_type)]
    camel = "".join(p.capitalize() for p in event_type.replace(".", "_").split("_"))
    assert schema["name"] == camel
    assert schema["namespace"] == "io.supportstream"
    fields = schema["fields"]
    envelope = [(f["name"], f["type"]) for f in fields[: len(ENVELOPE_FIELDS)]]
    assert envelope == [
        ("event_id", "string"),
        ("event_type", "string"),
        ("at", TIMESTAMP),
        ("ticket_id", "string"),
        ("conversation_id", "string"),
        ("customer_id", "string"),
    ]
    data = [(f["name"], f["type"]) for f in fields[len(ENVELOPE_FIELDS) :]]
    assert data == [(name, _catalogue_type(spec)) for name, spec in EVENT_TYPES[event_type]]
    for f in fields:
        if isinstance(f["type"], list):
            assert f["type"][0] == "null" and f.get("default", "missing") is None, f["name"]


def test_dead_letter_schema_matches_the_catalogue_and_the_dataclass() -> None:
    fields = [(f["name"], f["type"]) for f in CURRENT["dead_letter"]["fields"]]
    assert fields == [(name, _catalogue_type(spec)) for name, spec in DEAD_LETTER_FIELDS]
    assert [f.name for f in dataclasses.fields(model.DeadLetter)] == [n for n, _ in fields]


def _source_annotations(cls: type) -> dict[str, str]:
    """The field annotations of a class of processors.model as written (``Millis``, not the
    ``int`` it stands for): read from the source, since a compiled module's dataclass fields
    hold the evaluated types (processors.native)."""
    tree = ast.parse(native.source_path("processors.model").read_text(encoding="utf-8"))
    [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    return {
        item.target.id: ast.unparse(item.annotation)
        for item in node.body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    }


def _annotation_types(annotation: str) -> list[Any]:
    """The Avro types a dataclass annotation may be declared as (``int`` may be int or long)."""
    text = annotation.replace(" ", "")
    if text.endswith("|None"):
        return [["null", t] for t in _annotation_types(text[: -len("|None")])]
    by_annotation: dict[str, list[Any]] = {
        "str": ["string"],
        "int": ["int", "long"],
        "float": ["double"],
        "bool": ["boolean"],
        "Millis": [TIMESTAMP],
    }
    return by_annotation[text]


@pytest.mark.parametrize(
    ("schema_name", "cls"),
    [("ticket_state", model.TicketState), ("cycle_state", model.CycleState)],
)
def test_state_schema_mirrors_the_dataclass(schema_name: str, cls: type) -> None:
    fields = CURRENT[schema_name]["fields"]
    assert [f["name"] for f in fields] == [f.name for f in dataclasses.fields(cls)]
    annotations = _source_annotations(cls)
    for avro_field, dc_field in zip(fields, dataclasses.fields(cls), strict=True):
        annotation = annotations[dc_field.name]
        assert avro_field["type"] in _annotation_types(annotation), avro_field["name"]
        if isinstance(avro_field["type"], list):
            assert avro_field.get("default", "missing") is None, avro_field["name"]


def test_raw_contact_schema_is_the_connector_envelope() -> None:
    schema = CURRENT["raw_contact"]
    assert (schema["namespace"], schema["name"]) == ("io.supportstream", "RawContact")
    assert [(f["name"], f["type"]) for f in schema["fields"]] == [
        ("at", TIMESTAMP),
        ("source", "string"),
        ("payload", "string"),
        ("received_at", TIMESTAMP),
        ("connector", "string"),
        ("channel_message_id", "string"),
        ("content_type", "string"),
        ("sequence", ["null", "long"]),
    ]


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_every_schema_and_field_is_documented(name: str) -> None:
    schema = CURRENT[name]
    assert schema["namespace"] == "io.supportstream"
    assert schema.get("doc")
    for f in schema["fields"]:
        assert f.get("doc"), f"{name}.{f['name']} has no doc"

"""The hand-written ``__init__`` of the frozen records the desk builds on every record
(docs/REPLAY.md, "What runs compiled"): each takes exactly its class's fields, in order, with
their defaults, sets every one of them, and leaves the instance frozen. Compiled, it is
compiled code (the generated one would stay interpreted, twenty times slower)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from processors import native
from processors.desk import Ticket
from processors.model import CycleState, DomainEvent, Output, TicketState
from processors.sla import SlaEffect, SlaOutput, SlaTerms, SlaTicket

RECORDS = [Ticket, TicketState, CycleState, DomainEvent, Output, SlaTicket, SlaEffect, SlaOutput]


def _values(cls: type) -> list[Any]:
    """A distinct value of its type for every field (compiled classes check the types), so
    a field set from the wrong parameter shows."""
    values: list[Any] = []
    for number, field in enumerate(dataclasses.fields(cls)):
        kind = _type_name(field.type)
        if kind in ("int", "Millis"):
            values.append(1000 + number)
        elif kind == "float":
            values.append(1000.5 + number)
        elif kind == "str":
            values.append(field.name)
        elif kind == "bool":  # the one bool of a record: not its default
            values.append(not field.default if isinstance(field.default, bool) else True)
        elif kind == "SlaTerms":
            values.append(SlaTerms(field.name, _Clock(), {field.name: 1}, {field.name: 0}))
        elif kind == "type":  # compiled, an optional field's annotation reads as ``type``
            values.append(None)
        elif kind.startswith("dict"):
            values.append({"field": field.name})
        else:  # tuples of every kind (ReplyTally too)
            values.append((field.name,))
    return values


class _Clock:
    """A business clock that is never asked anything (``SlaTerms.calendar``)."""


def _type_name(annotation: Any) -> str:
    """``int`` of ``int``, ``"int | None"`` or ``int | None`` (the annotations are strings
    interpreted, types compiled: an optional one then reads as ``type``)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).split(" | ")[0]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_the_written_init_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    parameters = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        if field.default is not dataclasses.MISSING:
            assert parameter.default == field.default, field.name
        elif field.default_factory is not dataclasses.MISSING:
            assert parameter.default is None, field.name  # None: a fresh default_factory()
        else:
            assert parameter.default is inspect.Parameter.empty, field.name


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_the_written_init_sets_every_field_and_the_record_stays_frozen(cls: type) -> None:
    values = _values(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    positional = cls(*values)
    keyword = cls(**dict(zip(names, values, strict=True)))
    assert [getattr(positional, name) for name in names] == values
    assert positional == keyword
    # Another value for the first field, of its type (compiled classes check it).
    other = next((v for v in values[1:] if type(v) is type(values[0])), values[0] + values[0])
    assert dataclasses.replace(positional, **{names[0]: other}) != positional
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(positional, names[0], other)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_defaults_are_the_fields_defaults(cls: type) -> None:
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING and f.init]
    required = [f for f in required if f.default_factory is dataclasses.MISSING]
    record = cls(*_values(cls)[: len(required)])
    for field in fields[len(required) :]:
        expected = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        assert getattr(record, field.name) == expected, field.name


def test_a_tickets_with_seq_is_replace_with_that_seq() -> None:
    ticket = Ticket(*_values(Ticket))

    moved = ticket.with_seq(7)

    assert moved == dataclasses.replace(ticket, seq=7) != ticket
    assert [getattr(moved, f.name) for f in dataclasses.fields(Ticket) if f.name != "seq"] == [
        getattr(ticket, f.name) for f in dataclasses.fields(Ticket) if f.name != "seq"
    ]


def test_an_event_without_data_gets_its_own_empty_dict() -> None:
    first = DomainEvent("e1", "ticket.opened", 0, "t", "c", "k")
    second = DomainEvent("e2", "ticket.opened", 0, "t", "c", "k")
    assert first.data == {} and first.data is not second.data


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_compiled_the_init_is_compiled_code(cls: type) -> None:
    module = cls.__module__
    if module not in native.native_modules():  # imported from an extension module or not
        pytest.skip(f"{module} runs interpreted here")
    assert not inspect.isfunction(cls.__init__), "a Python function: @dataclass generated it"

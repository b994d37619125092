"""``processors.fastreplace.replace`` is ``dataclasses.replace``, only cheaper."""

from __future__ import annotations

import dataclasses

import pytest

from processors.fastreplace import replace
from processors.model import CycleState, TicketState


def ticket() -> TicketState:
    return TicketState(
        "t#1", "c", "cust", "chat", "billing", "question", "P2", "q", "", "new", "std",
        1, None, 0, 0, 1, 0, None, None, "active", "2026-03-02", None, 1, 1,
    )  # fmt: skip


def test_it_gives_what_dataclasses_replace_gives() -> None:
    original = ticket()
    changes = {"status": "open", "version": 2, "agent_id": "a.ivanova", "csat": 5}
    assert replace(original, **changes) == dataclasses.replace(original, **changes)
    assert replace(original) == original
    assert replace(original) is not original
    cycle = CycleState(
        "t#1", "first_response", 1, "std", "active", 1, 2, None, None, None, None, 60.0, 1, 1
    )
    assert replace(cycle, status="met") == dataclasses.replace(cycle, status="met")


def test_an_unknown_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        replace(ticket(), colour="red")
    with pytest.raises(TypeError):
        replace(object())


@dataclasses.dataclass(frozen=True)
class WithDerived:
    a: int
    b: int
    total: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.a + self.b)


@dataclasses.dataclass(frozen=True)
class WithInitVar:
    a: int
    b: int
    scale: dataclasses.InitVar[int] = 1


def test_classes_it_cannot_build_positionally_go_to_dataclasses_replace() -> None:
    assert replace(WithDerived(1, 2), b=5).total == 6
    assert replace(WithInitVar(1, 2), a=3, scale=2) == WithInitVar(3, 2)

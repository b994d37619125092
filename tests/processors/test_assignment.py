"""Automatic assignment inside a queue: least_loaded and round_robin sequences with capacity
limits, checked against sequences worked out by hand."""

from __future__ import annotations

from typing import Any

from processors.assignment import Assigner, AssignerState
from processors.rules import Rules, rules_from_mapping


def rules(mode: str, agents: list[dict[str, Any]]) -> Rules:
    return rules_from_mapping(
        {
            "version": 1,
            "queues": [{"name": "q", "default": True}, {"name": "r", "when": {"tier": "vip"}}],
            "agents": agents,
            "assignment": mode,
        },
        "test.yaml",
    )


def run(
    assigner: Assigner, state: AssignerState, queues: list[str]
) -> tuple[AssignerState, list[str]]:
    picks: list[str] = []
    for queue in queues:
        state, agent = assigner.assign(state, queue)
        picks.append(agent)
    return state, picks


def test_least_loaded_sequence_with_capacities() -> None:
    # a: cap 2, b: cap 1, c: cap 2.
    #   1. loads a0 b0 c0 -> a (tie, a listed first)    a1 b0 c0
    #   2. b0 and c0 lowest, b first -> b                a1 b1 c0
    #   3. c0 lowest -> c                                a1 b1 c1
    #   4. b is full; a1 = c1, a first -> a              a2 b1 c1
    #   5. a and b full -> c                             a2 b1 c2
    #   6. everybody full -> nobody
    assigner = Assigner(
        rules(
            "least_loaded",
            [
                {"id": "a", "queues": ["q"], "capacity": 2},
                {"id": "b", "queues": ["q"], "capacity": 1},
                {"id": "c", "queues": ["q"], "capacity": 2},
            ],
        )
    )
    state, picks = run(assigner, Assigner.initial(), ["q"] * 6)
    assert picks == ["a", "b", "c", "a", "c", ""]
    assert dict(state.loads) == {"a": 2, "b": 1, "c": 2}
    # b solves a ticket: b has room again and the lowest load.
    state = assigner.release(state, "b")
    state, agent = assigner.assign(state, "q")
    assert agent == "b"


def test_least_loaded_prefers_the_lowest_load_not_the_file_order() -> None:
    assigner = Assigner(
        rules("least_loaded", [{"id": "a", "queues": ["q"]}, {"id": "b", "queues": ["q"]}])
    )
    state = assigner.take(assigner.take(Assigner.initial(), "a"), "a")
    state, picks = run(assigner, state, ["q"] * 4)
    # a holds 2: b gets 2 in a row, then they tie and a (listed first) goes first.
    assert picks == ["b", "b", "a", "b"]


def test_round_robin_sequence_with_capacities() -> None:
    # a: cap 1, b: cap 2, c: cap 2; ring a -> b -> c -> a.
    #   1. no pick yet: start at a                      a1 b0 c0  last a
    #   2. after a: b                                   a1 b1 c0  last b
    #   3. after b: c                                   a1 b1 c1  last c
    #   4. after c: a is full, b                        a1 b2 c1  last b
    #   5. after b: c                                   a1 b2 c2  last c
    #   6. everybody full -> nobody (the cursor stays at c)
    assigner = Assigner(
        rules(
            "round_robin",
            [
                {"id": "a", "queues": ["q"], "capacity": 1},
                {"id": "b", "queues": ["q"], "capacity": 2},
                {"id": "c", "queues": ["q"], "capacity": 2},
            ],
        )
    )
    state, picks = run(assigner, Assigner.initial(), ["q"] * 6)
    assert picks == ["a", "b", "c", "b", "c", ""]
    assert state.last_pick == {"q": "c"}
    # b frees a slot; after c comes a (full), then b.
    state = assigner.release(state, "b")
    state, agent = assigner.assign(state, "q")
    assert agent == "b"


def test_round_robin_keeps_a_cursor_per_queue_but_loads_are_shared() -> None:
    # q is served by a, b, c; r by c, a (rules order: a before c).
    assigner = Assigner(
        rules(
            "round_robin",
            [
                {"id": "a", "queues": ["q", "r"], "capacity": 2},
                {"id": "b", "queues": ["q"], "capacity": 2},
                {"id": "c", "queues": ["r", "q"], "capacity": 2},
            ],
        )
    )
    # q's ring is a, b, c; r's ring is a, c. By hand:
    #   q: no pick yet -> a (a1)     r: no pick yet -> a (a2)     q: after a -> b (b1)
    #   r: after a -> c (c1)         q: after b -> c (c2)         r: a and c full -> nobody
    state, picks = run(assigner, Assigner.initial(), ["q", "r", "q", "r", "q", "r"])
    assert picks == ["a", "a", "b", "c", "c", ""]
    assert state.last_pick == {"q": "c", "r": "c"}


def test_no_capacity_means_no_limit() -> None:
    assigner = Assigner(rules("round_robin", [{"id": "a", "queues": ["q"]}]))
    _, picks = run(assigner, Assigner.initial(), ["q"] * 50)
    assert picks == ["a"] * 50


def test_mode_none_assigns_nobody_but_tracks_loads() -> None:
    assigner = Assigner(rules("none", [{"id": "a", "queues": ["q"], "capacity": 3}]))
    state, picks = run(assigner, Assigner.initial(), ["q", "q"])
    assert picks == ["", ""]
    assert state == Assigner.initial()
    assert assigner.take(state, "a").load("a") == 1


def test_a_queue_nobody_serves_and_an_unknown_queue_assign_nobody() -> None:
    assigner = Assigner(rules("least_loaded", [{"id": "a", "queues": ["q"]}]))
    state = Assigner.initial()
    assert assigner.assign(state, "r") == (state, "")
    assert assigner.assign(state, "no-such-queue") == (state, "")


def test_manual_assigns_count_against_capacity_and_may_exceed_it() -> None:
    assigner = Assigner(
        rules(
            "least_loaded",
            [{"id": "a", "queues": ["q"], "capacity": 1}, {"id": "b", "queues": ["q"]}],
        )
    )
    state = assigner.take(Assigner.initial(), "a")
    state = assigner.take(state, "a")  # a human may overload an agent
    assert state.load("a") == 2
    state, agent = assigner.assign(state, "q")
    assert agent == "b"


def test_agents_not_in_the_rules_are_tracked_but_never_picked() -> None:
    assigner = Assigner(rules("least_loaded", [{"id": "a", "queues": ["q"], "capacity": 1}]))
    state = assigner.take(Assigner.initial(), "temp.agent")
    assert state.load("temp.agent") == 1
    state, picks = run(assigner, state, ["q", "q"])
    assert picks == ["a", ""]
    assert assigner.release(state, "temp.agent").load("temp.agent") == 0


def test_release_never_goes_below_zero_and_states_stay_canonical() -> None:
    assigner = Assigner(rules("least_loaded", [{"id": "a", "queues": ["q"]}]))
    initial = Assigner.initial()
    assert assigner.release(initial, "a") == initial
    assert assigner.release(assigner.take(initial, "a"), "a") == initial
    assert assigner.take(initial, "") == initial
    assert assigner.release(initial, "") == initial


def test_assignment_is_deterministic() -> None:
    agents = [
        {"id": "a", "queues": ["q", "r"], "capacity": 3},
        {"id": "b", "queues": ["q"], "capacity": 2},
        {"id": "c", "queues": ["r"], "capacity": 4},
    ]
    sequence = ["q", "r", "q", "q", "r", "r", "q", "r", "q"]
    for mode in ("least_loaded", "round_robin"):
        first = run(Assigner(rules(mode, agents)), Assigner.initial(), sequence)
        second = run(Assigner(rules(mode, agents)), Assigner.initial(), sequence)
        assert first == second


def test_states_are_not_mutated() -> None:
    assigner = Assigner(rules("least_loaded", [{"id": "a", "queues": ["q"]}]))
    initial = Assigner.initial()
    after, _ = assigner.assign(initial, "q")
    assert initial.loads == {} and initial.last_pick == {}
    assert after.loads == {"a": 1}

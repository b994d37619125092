"""Automatic assignment of new tickets to agents inside a queue (rules ``agents``/``assignment``).

``Assigner`` is a pure state machine over ``AssignerState``: how many open tickets each agent
holds and, per queue, the agent picked last (the round-robin cursor). The desk calls
``assign`` when a ticket lands in a queue, ``take`` when a manual ``assign`` record gives an
agent a ticket, and ``release`` when a ticket leaves an agent (solved, or handed to somebody
else). Nothing here reads a clock or does I/O; the same calls in the same order give the same
picks, which is what makes replay deterministic.

Policies:

- ``least_loaded``: among the queue's agents with room (load below capacity), the lowest load;
  ties go to the agent listed first in the rules file.
- ``round_robin``: the next agent with room after the queue's last pick, in rules-file order,
  wrapping around; the first listed agent starts.
- ``none``, an unknown queue, a queue nobody serves, or nobody with room: no agent (``""``); the
  ticket stays unassigned until an agent record assigns it. It is not retried automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from processors.rules import AgentSpec, AssignmentMode, Rules

__all__ = ["Assigner", "AssignerState"]


@dataclass(frozen=True, slots=True)
class AssignerState:
    """Open tickets per agent and the last pick per queue.

    ``loads`` holds only agents with at least one ticket, so equal situations compare equal;
    agents the rules file does not list (manual assigns) are tracked too but never picked.
    Treat the mappings as read-only: every transition builds new ones.
    """

    loads: Mapping[str, int] = field(default_factory=dict)
    last_pick: Mapping[str, str] = field(default_factory=dict)

    def load(self, agent_id: str) -> int:
        return self.loads.get(agent_id, 0)


class Assigner:
    """Picks agents for new tickets according to the rules' ``assignment`` mode."""

    def __init__(self, rules: Rules) -> None:
        self._mode: AssignmentMode = rules.assignment
        # Per queue, its agents in rules-file order: the tie-break and the round-robin ring.
        serving: dict[str, list[AgentSpec]] = {}
        for agent in rules.agents:
            for queue in agent.queues:
                serving.setdefault(queue, []).append(agent)
        self._serving: dict[str, tuple[AgentSpec, ...]] = {
            queue: tuple(agents) for queue, agents in serving.items()
        }

    @staticmethod
    def initial() -> AssignerState:
        return AssignerState()

    def assign(self, state: AssignerState, queue: str) -> tuple[AssignerState, str]:
        """Pick an agent for a new ticket in ``queue``; ``""`` when nobody is picked (the state
        is then unchanged). The picked agent's load grows by one."""
        candidates = self._serving.get(queue, ())
        if self._mode == "none" or not candidates:
            return state, ""
        with_room = [agent for agent in candidates if _has_room(agent, state)]
        if not with_room:
            return state, ""
        if self._mode == "least_loaded":
            # min() keeps the first of equal loads, and candidates are in rules-file order.
            picked = min(with_room, key=lambda agent: state.load(agent.id)).id
        else:
            picked = self._next_in_ring(state, queue, candidates)
        last_pick = dict(state.last_pick)
        last_pick[queue] = picked
        return AssignerState(_add(state.loads, picked, 1), last_pick), picked

    def take(self, state: AssignerState, agent_id: str) -> AssignerState:
        """An agent got a ticket by hand (an ``assign`` record). Capacity does not refuse a
        human decision; it only keeps automatic picks away from the agent."""
        if not agent_id:
            return state
        return AssignerState(_add(state.loads, agent_id, 1), state.last_pick)

    def release(self, state: AssignerState, agent_id: str) -> AssignerState:
        """A ticket left ``agent_id`` (solved, or reassigned). Releasing an agent with no
        tickets changes nothing: a load never goes below zero."""
        if not agent_id or state.load(agent_id) == 0:
            return state
        return AssignerState(_add(state.loads, agent_id, -1), state.last_pick)

    def _next_in_ring(
        self, state: AssignerState, queue: str, candidates: tuple[AgentSpec, ...]
    ) -> str:
        ids = [agent.id for agent in candidates]
        last = state.last_pick.get(queue)
        # Start right after the last pick; with no pick yet (or a pick no longer serving the
        # queue) start at the first listed agent.
        start = ids.index(last) + 1 if last in ids else 0
        for offset in range(len(candidates)):
            agent = candidates[(start + offset) % len(candidates)]
            if _has_room(agent, state):
                return agent.id
        raise AssertionError("assign() checked that some agent has room")  # pragma: no cover


def _has_room(agent: AgentSpec, state: AssignerState) -> bool:
    return agent.capacity is None or state.load(agent.id) < agent.capacity


def _add(loads: Mapping[str, int], agent_id: str, delta: int) -> dict[str, int]:
    updated = dict(loads)
    value = updated.get(agent_id, 0) + delta
    if value > 0:
        updated[agent_id] = value
    else:
        updated.pop(agent_id, None)
    return updated

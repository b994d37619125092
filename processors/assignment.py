"""Automatic assignment of tickets to agents inside a queue (rules ``agents``/``assignment``,
``skills``; CONTRACT §2 and §7 "Skills, presence and queues that wait").

``Assigner`` is a pure state machine over ``AssignerState``: how many open tickets each agent
holds and, per queue, the agent picked last (the round-robin cursor). The desk calls
``assign`` when a ticket lands in a queue, ``take`` when a manual ``assign`` record gives an
agent a ticket, and ``release`` when a ticket leaves an agent (solved, or handed to somebody
else). Nothing here reads a clock or does I/O; the same calls in the same order give the same
picks, which is what makes replay deterministic.

The candidates for a ticket are the agents listed for its queue who are online (not in
``unavailable``: the desk's away and offline agents), have room (load below capacity) and hold
every required skill; among them, those holding the most preferred skills. Then the policy:

- ``least_loaded``: the lowest load; ties go to the agent listed first in the rules file.
- ``round_robin``: the next candidate after the queue's last pick, in rules-file order,
  wrapping around; the first listed agent starts.
- ``none``, an unknown queue, a queue nobody serves, or no candidate: no agent (``""``). The
  desk then keeps the ticket waiting in its queue (``serves`` tells which queues wait) and
  asks again when an agent gets room or comes online (``processors.desk``).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
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
        self._agents: dict[str, AgentSpec] = {agent.id: agent for agent in rules.agents}

    def serves(self, queue: str) -> bool:
        """Whether tickets of ``queue`` are assigned automatically, so that one without an
        agent waits: some agent is listed for it and ``assignment`` is not ``none``."""
        return self._mode != "none" and queue in self._serving

    def queues_of(self, agent_id: str) -> tuple[str, ...]:
        """The queues the rules list ``agent_id`` for (none for an agent they do not list)."""
        agent = self._agents.get(agent_id)
        return agent.queues if agent is not None else ()

    def anyone_free(
        self, state: AssignerState, queues: Iterable[str], unavailable: Container[str]
    ) -> bool:
        """Whether some online agent of ``queues`` has room: when none has, no waiting ticket
        of those queues can have a candidate, whatever its skills."""
        return any(
            agent.id not in unavailable and _has_room(agent, state)
            for queue in queues
            for agent in self._serving.get(queue, ())
        )

    @staticmethod
    def initial() -> AssignerState:
        return AssignerState()

    def assign(
        self,
        state: AssignerState,
        queue: str,
        *,
        required: frozenset[str] | tuple[str, ...] = frozenset(),
        preferred: frozenset[str] | tuple[str, ...] = frozenset(),
        unavailable: Container[str] = frozenset(),
    ) -> tuple[AssignerState, str]:
        """Pick an agent for a ticket of ``queue`` needing ``required`` and preferring
        ``preferred`` skills; ``""`` when there is no candidate (the state is then unchanged).
        The picked agent's load grows by one."""
        listed = self._serving.get(queue, ())
        if self._mode == "none" or not listed:
            return state, ""
        candidates = [
            agent
            for agent in listed
            if agent.id not in unavailable
            and _has_room(agent, state)
            and all(skill in agent.skills for skill in required)
        ]
        if not candidates:
            return state, ""
        if preferred:
            held = [sum(1 for skill in preferred if skill in a.skills) for a in candidates]
            most = max(held)
            candidates = [a for a, n in zip(candidates, held, strict=True) if n == most]
        if self._mode == "least_loaded":
            # min() keeps the first of equal loads, and candidates are in rules-file order.
            picked = min(candidates, key=lambda agent: state.load(agent.id)).id
        else:
            picked = self._next_in_ring(state, queue, listed, {a.id for a in candidates})
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

    @staticmethod
    def _next_in_ring(
        state: AssignerState, queue: str, ring: tuple[AgentSpec, ...], candidates: set[str]
    ) -> str:
        ids = [agent.id for agent in ring]
        last = state.last_pick.get(queue)
        # Start right after the last pick; with no pick yet (or a pick no longer serving the
        # queue) start at the first listed agent.
        start = ids.index(last) + 1 if last in ids else 0
        for offset in range(len(ring)):
            agent = ring[(start + offset) % len(ring)]
            if agent.id in candidates:
                return agent.id
        raise AssertionError("assign() checked that there is a candidate")  # pragma: no cover


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

"""The budget gate: a spent budget pauses the run here; resuming (with a raised budget in the
context) goes on where the dispatcher stopped. Nothing finished runs again: the ledger has it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from langgraph.types import Command, interrupt

from orchestrator_graph.auditlog import chain_state
from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.state import OrchestratorState

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

GOES_TO = ("dispatcher",)


async def step(
    services: Services, state: OrchestratorState, env: Env
) -> Command[Literal["dispatcher"]]:
    reason = state.get("stopped") or ""
    env.emit(Event(kind="budget", node="budget_gate", message=reason))
    await chain_state(env.store, state)  # what the run did so far, before it pauses
    interrupt(
        {
            "type": "budget",
            "reason": reason,
            "resume": "raise the budget in the context, then resume",
        }
    )
    return Command(goto="dispatcher", update={"stopped": None, "report": None})

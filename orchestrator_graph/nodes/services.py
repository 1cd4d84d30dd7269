"""What every node shares, built once per graph and passed to each node explicitly: the team's
registry, the model roles, the plan memory and the attempt runner."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from langchain_core.embeddings import Embeddings
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import interrupt

from orchestrator_graph.context import Context
from orchestrator_graph.dag import analyse_plan
from orchestrator_graph.env import Env
from orchestrator_graph.errors import BudgetSpent
from orchestrator_graph.heap import long_lived_frozen
from orchestrator_graph.llm import ModelSpec
from orchestrator_graph.memory import MemoryHandle, PlanMemory
from orchestrator_graph.models import Plan, PlanAnalysis, Schedule, Slot
from orchestrator_graph.prompt_overrides import PromptOverride, check_overrides
from orchestrator_graph.prompts import preload as preload_prompts
from orchestrator_graph.protection.redact import default_redactor
from orchestrator_graph.registry import Registry, expected_durations, load_history
from orchestrator_graph.roles import Roles
from orchestrator_graph.schedule import plan_schedule
from orchestrator_graph.state import OrchestratorState
from orchestrator_graph.team import default_team
from orchestrator_graph.worker_graph import AttemptSteps
from orchestrator_graph.workers import Worker

if TYPE_CHECKING:  # chromadb loads with the memory, not with the package
    from chromadb.api.types import Documents, EmbeddingFunction

Step = Callable[["Services", OrchestratorState, Env], Awaitable[Any]]
Node = Callable[[OrchestratorState, Runtime[Context]], Awaitable[Any]]


@dataclass(frozen=True)
class Services:
    registry: Registry
    roles: Roles
    memory: MemoryHandle
    attempts: AttemptSteps

    @classmethod
    def build(
        cls,
        *,
        workers: Sequence[Worker] | Registry | None,
        model: ModelSpec,
        models: Mapping[str, ModelSpec] | None,
        memory: PlanMemory | str | None,
        embeddings: Embeddings | EmbeddingFunction[Documents] | None,
        prompts: Mapping[str, PromptOverride] | None = None,
    ) -> Services:
        preload_prompts()  # a missing prompt fails here, at build time, not mid-run
        default_redactor()  # the data policy and its detectors load here too, not in a run
        registry = team_registry(workers)
        roles = Roles(model, models, check_overrides(prompts))
        return cls(registry, roles, MemoryHandle(memory, embeddings), AttemptSteps(registry, roles))

    def node(self, step: Step) -> Node:
        """``step`` as a LangGraph node: the runtime read once (``Env.of``), the services bound,
        the objects that live across nodes kept out of the collector's full passes (``heap``),
        and a budget spent by its model calls a pause in that node (``pause_for_budget``)."""

        name = step.__module__.rsplit(".", 1)[-1]

        async def node(state: OrchestratorState, runtime: Runtime[Context]) -> Any:
            with long_lived_frozen():
                try:
                    return await step(self, state, Env.of(runtime))
                except BudgetSpent as spent:
                    return pause_for_budget(name, str(spent))

        node.__name__ = node.__qualname__ = name
        return node

    async def analyse(
        self,
        plan: Plan,
        store: BaseStore,
        now: float = 0.0,
        finished: Sequence[Slot] = (),
        pad: Mapping[str, float] | None = None,
    ) -> tuple[PlanAnalysis, Schedule]:
        """Critical path on the team's expected durations (padded where past failures call for
        it), then the planned schedule."""
        workers = self.registry.workers()
        history = await load_history(store, [w.name for w in workers])
        durations = expected_durations(plan.tasks, workers, history)
        for tid, factor in (pad or {}).items():
            durations[tid] = durations.get(tid, 0.0) * factor
        analysis = analyse_plan(plan, durations)
        schedule = plan_schedule(  # ``now`` is seconds into execution: it began at the epoch
            plan, analysis, workers, history, now=now, finished=finished, epoch=time.time() - now
        )
        return analysis, schedule


def team_registry(workers: Sequence[Worker] | Registry | None) -> Registry:
    if isinstance(workers, Registry):
        return workers
    registry = Registry(default_team() if workers is None else workers)
    if not registry.workers():
        raise ValueError(
            "the team is empty: pass at least one Worker in workers=[...], or a "
            "Registry that workers join later"
        )
    return registry


def pause_for_budget(node: str, reason: str) -> NoReturn:
    """A budget ran out during a node's model calls: the run pauses there, as the dispatcher's
    budget gate does. Resumed (with a raised budget in the context), the node runs again; if it
    runs out again, it pauses again: each resume answers one pause, the next is unanswered."""
    payload = {
        "type": "budget",
        "node": node,
        "reason": reason,
        "resume": "raise the budget in the context, then resume",
    }
    while True:
        interrupt(payload)

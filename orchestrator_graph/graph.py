"""Builds the orchestrator graph.

START -> recall -> planner -> dispatcher <-> mediator
                              dispatcher <-> budget_gate
                              dispatcher -> synthesizer -> final_review -> learn -> END

Each node is a module of ``nodes``; the dispatcher runs every task attempt through the compiled
``worker`` subgraph (execute, review) or inline, with no superstep barrier (see ``dispatch``).
The served graph (``langgraph.json``) is compiled in ``server``, not here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings
from langgraph.graph import END, START, StateGraph

from orchestrator_graph.context import Context
from orchestrator_graph.llm import ModelSpec
from orchestrator_graph.memory import PlanMemory
from orchestrator_graph.nodes import (
    budget_gate,
    dispatcher,
    final_review,
    learn,
    mediator,
    planner,
    recall,
    synthesizer,
)
from orchestrator_graph.nodes.services import Services
from orchestrator_graph.prompt_overrides import PromptOverride
from orchestrator_graph.registry import Registry
from orchestrator_graph.state import InputState, OrchestratorState, OutputState
from orchestrator_graph.worker_graph import drawn_with
from orchestrator_graph.workers import Worker

if TYPE_CHECKING:  # chromadb loads with the memory, not with the package
    from chromadb.api.types import Documents, EmbeddingFunction

NODES = {
    "recall": recall,
    "planner": planner,
    "dispatcher": dispatcher,
    "mediator": mediator,
    "budget_gate": budget_gate,
    "synthesizer": synthesizer,
    "final_review": final_review,
    "learn": learn,
}
"""Node name -> its module (``step``, and ``GOES_TO`` for a node that routes by ``Command``)."""

EDGES = [
    (START, "recall"),
    ("recall", "planner"),
    ("planner", "dispatcher"),
    ("synthesizer", "final_review"),
    ("final_review", "learn"),
    ("learn", END),
]


def create_orchestrator(
    *,
    workers: Sequence[Worker] | Registry | None = None,
    model: ModelSpec = "offline",
    models: Mapping[str, ModelSpec] | None = None,
    memory: PlanMemory | str | None = None,
    embeddings: Embeddings | EmbeddingFunction[Documents] | None = None,
    prompts: Mapping[str, PromptOverride] | None = None,
) -> StateGraph[OrchestratorState, Context, InputState, OutputState]:
    """The orchestrator as an uncompiled ``StateGraph``: compile it with your saver and store.

    Args:
        workers: the team: a list of ``Worker``s, or a ``Registry`` you keep changing while runs
            go (register, update, heartbeat, drain, remove); default: one worker per mission
            specialisation (``team.default_team``).
        model: the chat model for every role: a model object or a ``"provider:model"`` string for
            ``init_chat_model``; ``"offline"`` (default) is the deterministic offline model.
        models: per-role overrides: ``planner``, ``worker``, ``reviewer``, ``mediator``,
            ``synthesizer``. Each run may override again through the context.
        memory: the plan memory: a ``PlanMemory``, a folder (embedded Chroma) or a Chroma
            server URL; default ``$ORCHESTRATOR_GRAPH_CHROMA``, else ``<data dir>/chroma``.
        embeddings: how requests are embedded for recall: a LangChain ``Embeddings`` (a
            provider's) or a Chroma embedding function; default the offline MiniLM model.
        prompts: per-role prompt overrides (``planner``, ``reviewer``, ``synthesizer``, ...): a
            string or a file with ``$variables`` (replaces the role's user message) or a
            ``ChatPromptTemplate`` (replaces all of it); see ``prompt_overrides``.

    Compile it with a store (``compile(checkpointer=..., store=...)``): the ledger of finished
    attempts lives there. Without one the run warns that task-level durability is off.
    """
    services = Services.build(
        workers=workers,
        model=model,
        models=models,
        memory=memory,
        embeddings=embeddings,
        prompts=prompts,
    )
    builder = StateGraph(
        OrchestratorState,
        context_schema=Context,
        input_schema=InputState,
        output_schema=OutputState,
    )
    for name, module in NODES.items():
        node = services.node(module.step)
        if name == "dispatcher":
            node = drawn_with(node, services.attempts.drawing())
        # langgraph's node protocols take the runtime as a keyword; it passes it by name.
        builder.add_node(  # type: ignore[call-overload]
            name, node, destinations=getattr(module, "GOES_TO", None)
        )
    for start, end in EDGES:
        builder.add_edge(start, end)
    return builder

"""orchestrator-graph: the orchestrator-workers pattern for LangGraph.

Importing the package does nothing else: each name below is imported on first use, so
``orchestrator-graph --help`` and ``import orchestrator_graph`` stay fast and build no graph."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Context": "context",
    "ContextError": "errors",
    "Criterion": "models",
    "Event": "events",
    "InputError": "errors",
    "LimitError": "errors",
    "OfflineChatModel": "offline",
    "OrchestratorError": "errors",
    "Plan": "models",
    "PlanRejectedError": "errors",
    "PlanValidationError": "errors",
    "Registry": "registry",
    "Review": "models",
    "RunReport": "models",
    "StructuredOutputError": "errors",
    "Task": "models",
    "TaskResult": "models",
    "Worker": "workers",
    "WorkerContext": "workers",
    "WorkerInput": "workers",
    "analyse_plan": "dag",
    "create_orchestrator": "graph",
    "default_team": "team",
    "load_roster": "registry",
    "purge_runs": "purge",
    "remote_worker": "registry",
    "resolve_model": "llm",
    "validate_plan": "dag",
}
__all__ = [
    "Context",
    "ContextError",
    "Criterion",
    "Event",
    "InputError",
    "LimitError",
    "OfflineChatModel",
    "OrchestratorError",
    "Plan",
    "PlanRejectedError",
    "PlanValidationError",
    "Registry",
    "Review",
    "RunReport",
    "StructuredOutputError",
    "Task",
    "TaskResult",
    "Worker",
    "WorkerContext",
    "WorkerInput",
    "analyse_plan",
    "create_orchestrator",
    "default_team",
    "load_roster",
    "purge_runs",
    "remote_worker",
    "resolve_model",
    "validate_plan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator_graph' has no attribute {name!r}")
    value = getattr(import_module(f"orchestrator_graph.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from orchestrator_graph.context import Context
    from orchestrator_graph.dag import analyse_plan, validate_plan
    from orchestrator_graph.errors import (
        ContextError,
        InputError,
        LimitError,
        OrchestratorError,
        PlanRejectedError,
        PlanValidationError,
        StructuredOutputError,
    )
    from orchestrator_graph.events import Event
    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.llm import resolve_model
    from orchestrator_graph.models import Criterion, Plan, Review, RunReport, Task, TaskResult
    from orchestrator_graph.offline import OfflineChatModel
    from orchestrator_graph.purge import purge_runs
    from orchestrator_graph.registry import Registry, load_roster, remote_worker
    from orchestrator_graph.team import default_team
    from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

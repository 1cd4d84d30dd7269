"""orchestrator-graph: the orchestrator-workers pattern for LangGraph."""

from orchestrator_graph.context import Context
from orchestrator_graph.dag import (
    PlanRejectedError,
    PlanValidationError,
    analyse_plan,
    validate_plan,
)
from orchestrator_graph.graph import create_orchestrator
from orchestrator_graph.llm import StructuredOutputError, resolve_model
from orchestrator_graph.models import Criterion, Plan, Review, RunReport, Task, TaskResult
from orchestrator_graph.offline import OfflineChatModel
from orchestrator_graph.team import default_team
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

__all__ = [
    "Context",
    "Criterion",
    "OfflineChatModel",
    "Plan",
    "PlanRejectedError",
    "PlanValidationError",
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
    "resolve_model",
    "validate_plan",
]

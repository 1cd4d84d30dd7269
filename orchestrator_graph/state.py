"""Graph state. Values are JSON-native (dicts of the pydantic models in ``models``) so they pass
unchanged through every checkpointer and the server API; nodes validate them at their boundary."""

from __future__ import annotations

import operator
from functools import cache
from typing import Annotated, Any, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from typing_extensions import TypedDict

from orchestrator_graph.models import Criterion, Plan, Task, TaskRecord
from orchestrator_graph.usage import merge_usage


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Per-key update: a node writes only the entries it changed."""
    return {**(left or {}), **(right or {})}


def add_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = out.get(key, 0) + value
    return out


def latest_plan(_old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan channel keeps the last plan written, without the fields left at their defaults
    (as the planner writes it): a declared plan arrives with every default filled in, and the
    plan is in every checkpoint. Not validated here: the planner does that, with its errors."""
    if not isinstance(new, dict) or not isinstance(new.get("tasks"), list):
        return new
    tasks = [_task_without_defaults(t) if isinstance(t, dict) else t for t in new["tasks"]]
    return {**_without_defaults(new, Plan), "tasks": tasks}


def _task_without_defaults(task: dict[str, Any]) -> dict[str, Any]:
    out = _without_defaults(task, Task)
    if isinstance(criteria := out.get("acceptance"), list):
        out["acceptance"] = [
            _without_defaults(c, Criterion) if isinstance(c, dict) else c for c in criteria
        ]
    return out


def _without_defaults(value: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    defaults = _defaults(model)
    return {k: v for k, v in value.items() if k not in defaults or v != defaults[k]}


@cache
def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> its default as JSON (what a ``model_dump(mode="json")`` holds)."""
    return {
        name: to_jsonable_python(field.get_default(call_default_factory=True))
        for name, field in model.model_fields.items()
        if not field.is_required()
    }


PlanChannel = Annotated[dict[str, Any], latest_plan]  # starts as {}: a first write is reduced too


class InputState(TypedDict):
    request: NotRequired[str]
    """What to do; or give ``messages``: the last human message is the request."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """A conversation (``conversation.request_from``); the deliverable is appended to it as an
    AI message."""
    plan: NotRequired[PlanChannel]
    """A declared plan (``models.Plan`` as a dict): used as is, no planning model call."""


class OutputState(TypedDict):
    report: NotRequired[dict[str, Any]]
    """``models.RunReport``: status, deliverable, per-task records, decisions."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    # Output channels too so that a server's streams (which keep only the output channels)
    # show the plan, the per-task records and the live status while the run goes.
    plan: NotRequired[PlanChannel]
    tasks: NotRequired[Annotated[dict[str, Any], merge]]
    """task id -> ``models.TaskRecord``: the small hot status; outputs live in the store."""
    status: NotRequired[dict[str, Any]]
    """``models.StatusSnapshot`` as of the dispatcher's last step (live: the store, the stream)."""
    deliverable: NotRequired[dict[str, Any]]
    final_review: NotRequired[dict[str, Any]]


class OrchestratorState(InputState, OutputState):
    request: str  # type: ignore[misc]  # always set from the input by the recall node
    asked: NotRequired[str]
    """The id of the human message the run answers (``conversation.asked``)."""
    run_id: NotRequired[str]
    started_at: NotRequired[float]
    recalled: NotRequired[list[dict[str, Any]]]
    """Similar past runs: id, similarity, request, status, quality."""
    reuse: NotRequired[dict[str, Any] | None]
    """The best recalled plan adapted to this request, when one qualifies (``models.Plan``)."""
    examples: NotRequired[str]
    """Recalled runs for the planner's prompt."""
    analysis: NotRequired[dict[str, Any]]
    plan_review: NotRequired[dict[str, Any]]
    """``models.Review`` of the plan by the plan gate."""
    escalations: NotRequired[list[dict[str, Any]]]
    decisions: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    conflicts: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    """``models.Conflict``: every disagreement found, and how it was settled."""
    model_calls: NotRequired[Annotated[dict[str, int], add_counts]]
    tokens: NotRequired[Annotated[dict[str, int], add_counts]]
    """Model tokens by role (planner, synthesizer); the attempts' own are in the ledger."""
    usage: NotRequired[Annotated[dict[str, Any], merge_usage]]
    """role -> model -> ``usage.ModelUsage``: calls, tokens, failures, repairs, fallbacks."""
    planned_makespan: NotRequired[float]
    """Of the planned schedule; the schedule itself (Gantt data, risks, backups) is in the store
    (``ledger.load_schedule``) and in the final report."""
    executing_since: NotRequired[float]
    """When execution started: the origin of the schedule, the deadline and the slip."""
    bottlenecks: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    replans: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    patterns: NotRequired[list[dict[str, Any]]]
    """``memory.FailurePattern``: kinds of task past workers failed often."""
    mitigations: NotRequired[dict[str, Any]]
    """task -> what the failure patterns changed: workers avoided, QA policy, estimate padding."""
    memory_note: NotRequired[str]
    stopped: NotRequired[str | None]
    """Why the run is paused by a budget (cleared when it goes on)."""


_parsed: list[tuple[Any, Plan]] = []  # the last plan dict validated, and its model


def plan_of(state: OrchestratorState) -> Plan:
    """The state's plan, validated: once per plan written, not once per node that reads it (a
    declared 5,000-task plan takes tens of milliseconds to validate)."""
    raw = state["plan"]
    if _parsed and _parsed[0][0] is raw:
        return _parsed[0][1]
    plan = Plan.model_validate(raw)
    _parsed[:] = [(raw, plan)]
    return plan


def records_of(state: OrchestratorState) -> dict[str, TaskRecord]:
    """The per-task records of a state, validated."""
    return {tid: TaskRecord.model_validate(r) for tid, r in (state.get("tasks") or {}).items()}


def dump_records(records: dict[str, TaskRecord]) -> dict[str, Any]:
    """Defaults left out: the records are in every checkpoint, and readers validate them."""
    return {tid: r.model_dump(mode="json", exclude_defaults=True) for tid, r in records.items()}

"""Domain models: every structure that crosses a boundary (plans, results, reviews, reports)."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator_graph.run_links import ChildRun, ParentRun

TaskStatus = Literal["pending", "running", "approved", "rejected", "escalated", "failed", "skipped"]
Verdict = Literal["approve", "reject"]


CriterionKind = Literal[
    "text",
    "has_keys",
    "min_items",
    "contains",
    "number_range",
    "schema",
    "matches",
    "sections",
    "references_upstream",
    "matches_upstream",
]


class Criterion(BaseModel):
    """An acceptance criterion. ``kind`` other than ``text`` is checked by code, not by a model.

    Field paths are dotted (``statistics.revenue.sum``); a trailing ``#len`` takes a length.
    A ``pattern`` must compile and a ``json_schema`` must be a valid JSON Schema: both are
    checked when the plan is read, not when the first result arrives."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: CriterionKind = "text"
    description: str = ""
    keys: list[str] = Field(
        default_factory=list,
        description="has_keys: keys the output must hold; sections: the "
        "Markdown headings the field must have",
    )
    field: str | None = Field(None, description="the output field to inspect")
    value: float | None = Field(None, description="min_items: minimum count; number_range: minimum")
    maximum: float | None = Field(None, description="number_range: maximum")
    text: str | None = Field(None, description="contains: text the output must contain")
    json_schema: dict[str, Any] | None = Field(None, description="schema: a JSON Schema")
    pattern: str | None = Field(None, description="matches: a regular expression (full match)")
    task: str | None = Field(None, description="matches_upstream: the upstream task")
    upstream_field: str | None = Field(
        None, description="matches_upstream: the field of the upstream output to agree with"
    )
    tolerance: float = Field(1e-6, ge=0, description="matches_upstream: allowed difference")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(
                    f"pattern {value!r} is not a regular expression: {error}"
                ) from None
        return value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as error:
                where = "/".join(map(str, error.path)) or "top level"
                raise ValueError(
                    f"json_schema is not a JSON Schema ({where}): {error.message}"
                ) from None
        return value


QAPolicy = Literal["strict", "standard", "lenient"]


class Simplification(BaseModel):
    """A cheaper version of a task, used instead of dropping it when the deadline is at risk."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    inputs: dict[str, Any] = Field(
        default_factory=dict, description="inputs that replace the task's"
    )
    effort: float = Field(gt=0, description="estimated seconds of the simpler version")
    note: str = Field("", description="what the simpler version leaves out")


Classification = Literal["public", "internal", "confidential", "restricted"]


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(min_length=1, description="unique id within the plan")
    title: str = Field(min_length=1)
    description: str = ""
    skills: list[str] = Field(min_length=1, description="skills a worker needs for this task")
    min_levels: dict[str, float] = Field(
        default_factory=dict, description="lowest skill level (0-1) a worker needs, per skill"
    )
    depends_on: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict, description="parameters for the worker")
    outputs: list[str] = Field(default_factory=list, description="names of what the task produces")
    consumes: list[str] = Field(
        default_factory=list,
        description="names of other tasks' outputs this task needs: each "
        "implies a dependency on the task that produces it",
    )
    effort: float = Field(1.0, gt=0, description="estimated duration in seconds")
    priority: int = Field(3, ge=1, le=5, description="1 = lowest, 5 = highest")
    priority_votes: dict[str, int] = Field(
        default_factory=dict,
        description="stakeholder -> the priority (1-5) they want; "
        "disagreements are settled by a vote weighted by the plan's stakeholder weights",
    )
    acceptance: list[Criterion] = Field(default_factory=list)
    optional: bool = False
    timeout: float | None = Field(None, gt=0, description="seconds before an attempt is abandoned")
    qa_policy: QAPolicy | None = Field(None, description="overrides the plan's and the run's")
    redundancy: int = Field(
        1, ge=1, le=5, description="independent executions on different workers, compared"
    )
    consensus_field: str | None = Field(
        None,
        description="the output field redundant executions must agree on (default: all "
        "of the output but its summary)",
    )
    simplified: Simplification | None = Field(
        None, description="a cheaper version to run when the deadline is at risk"
    )
    replaces: str | None = Field(None, description="the failed task this one replaces (re-plan)")
    residency: list[str] = Field(
        default_factory=list,
        description="regions it may run in, and only there (data residency); empty: anywhere",
    )
    affinity: list[str] = Field(
        default_factory=list, description="regions it prefers to run in (a scored preference)"
    )
    classification: Classification | None = Field(
        None, description="public, internal, confidential or restricted (default: the plan's)"
    )


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    goal: str = ""
    tasks: list[Task] = Field(default_factory=list)
    deadline: float | None = Field(None, gt=0, description="seconds from the start of execution")
    source: Literal["model", "recalled", "declared"] = "model"
    qa_policy: QAPolicy | None = Field(None, description="for tasks without their own")
    stakeholders: dict[str, float] = Field(
        default_factory=dict, description="stakeholder -> weight in priority disputes (default 1)"
    )
    classification: Classification | None = Field(
        None, description="the tasks' data classification (default: the data policy's)"
    )


class TaskAnalysis(BaseModel):
    earliest_start: float
    earliest_finish: float
    latest_start: float
    latest_finish: float
    slack: float
    critical: bool


class PlanAnalysis(BaseModel):
    """Critical-path analysis of a validated plan."""

    critical_path: list[str]
    duration: float
    total_work: float
    tasks: dict[str, TaskAnalysis]
    levels: list[list[str]] = Field(description="tasks grouped by dependency depth")
    order: list[str] = Field(description="a topological order: every task after its dependencies")
    redundant_edges: list[tuple[str, str]] = Field(
        default_factory=list, description="(task, dependency) pairs implied by longer paths"
    )


class TaskResult(BaseModel):
    """What one attempt of one task produced. ``output`` may be large; it lives in the store.

    Infinities and NaN in the output stay floats when dumped (not null), so the ledger can keep
    them exactly (``ledger.to_store``)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    task_id: str
    attempt: int
    worker: str
    output: Any = None
    summary: str = ""
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    tokens: int = Field(0, description="model tokens the worker used in this attempt")
    usage: dict[str, Any] = Field(
        default_factory=dict, description="model -> usage.ModelUsage of this attempt's calls"
    )

    @property
    def ok(self) -> bool:
        return self.error is None


class Check(BaseModel):
    name: str
    passed: bool
    detail: str = ""


class Review(BaseModel):
    task_id: str
    attempt: int
    verdict: Verdict
    score: float = Field(ge=0.0, le=1.0)
    checks: list[Check] = Field(default_factory=list)
    feedback: str = ""
    reviewer: str = "gates"
    tokens: int = Field(0, description="model tokens the review used")
    usage: dict[str, Any] = Field(
        default_factory=dict, description="model -> usage.ModelUsage of the review's calls"
    )


class Escalation(BaseModel):
    task_id: str
    reason: str
    attempts: int
    best_attempt: int | None = None
    best_score: float = 0.0
    mechanism: str = Field(
        "",
        description="who settles it: policy/human/model, or for "
        "disagreeing answers judge, mediate or human",
    )
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, description="disagreeing answers: attempt, worker, weight, answer"
    )
    tried: list[str] = Field(default_factory=list, description="workers that failed the task")


class Conflict(BaseModel):
    """A disagreement found during a run, and how it was settled."""

    kind: Literal[
        "redundant_disagree",
        "worker_vs_reviewer",
        "scarce_worker",
        "priority_dispute",
        "contradicting_facts",
    ]
    task_id: str | None = None
    parties: list[str] = Field(default_factory=list)
    detail: str = ""
    mechanism: str = ""
    winner: str | None = None
    votes: dict[str, float] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    resolution: str = ""
    at: float = Field(default_factory=time.time)


class Decision(BaseModel):
    """How the mediator settled an escalation."""

    task_id: str
    action: Literal["accept", "retry", "skip", "replan"]
    by: Literal["policy", "human", "model", "judge", "mediator"]
    actor: str | None = Field(None, description="the identity that answered, for a human's")
    reason: str
    attempt: int | None = None
    at: float = Field(default_factory=time.time)


class TaskRecord(BaseModel):
    """The small, hot per-task status kept in graph state (the output itself stays in the store)."""

    status: TaskStatus = "pending"
    attempts: int = 0
    worker: str | None = None
    score: float | None = None
    result_key: str | None = Field(None, description="store key of the approved attempt")
    summary: str = ""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    feedback: str = ""
    extra_attempts: int = Field(0, description="attempts granted beyond the limit by the mediator")
    cut: bool = Field(False, description="an optional task dropped to meet the deadline")
    simplified: bool = Field(False, description="ran its cheaper version to meet the deadline")
    replaced_by: list[str] = Field(
        default_factory=list, description="the tasks a re-plan put in its place"
    )
    avoid: list[str] = Field(
        default_factory=list, description="workers a retry elsewhere may not use"
    )
    retry_from: int = Field(
        0,
        description="attempts made before the last retry was granted: the loop guard "
        "counts only later failures",
    )

    @property
    def counts(self) -> bool:
        """Whether the run needs this task: not cut for the deadline, not replaced."""
        return not self.cut and not self.replaced_by

    assignment: dict[str, Any] | None = Field(
        None, description="why the last attempt went to its worker: score parts, runner-up"
    )


class Slot(BaseModel):
    """One bar of a Gantt chart: a task (attempt) on a worker, in seconds from the start of
    execution."""

    task_id: str
    worker: str
    start: float
    finish: float
    attempt: int | None = None
    verdict: str | None = None


class TaskRisk(BaseModel):
    """How likely a task is to fail or slip, from 0 to 1, and its parts."""

    score: float = Field(ge=0, le=1)
    unreliability: float = Field(description="1 - the best able worker's reliability")
    tightness: float = Field(description="1 on the critical path, falling with slack")
    spread: float = Field(description="how far its duration strays (history), 0.5 if unknown")
    backup: str | None = Field(None, description="who takes over if the planned worker fails")


class Schedule(BaseModel):
    """The planned schedule: HEFT list scheduling over the team, with risks and backups."""

    planned: list[Slot]
    makespan: float
    deadline: float | None = None
    meets_deadline: bool = True
    would_cut: list[str] = Field(
        default_factory=list, description="optional tasks to drop if the deadline is to be met"
    )
    risks: dict[str, TaskRisk] = Field(default_factory=dict)


class Bottleneck(BaseModel):
    """Something that slowed the run, as measured, and what the dispatcher did about it."""

    kind: Literal["stall", "queue", "slip", "deadline", "failing"]
    task_id: str | None = None
    worker: str | None = None
    skill: str | None = None
    detail: str
    measured: float = 0.0
    response: str = ""
    at: float = Field(default_factory=time.time)


class Replan(BaseModel):
    """A re-plan of the sub-graph left by a task that failed for good."""

    failed: str
    removed: list[str]
    added: list[str]
    reason: str
    signature: str = Field(description="what the re-plan does, for the same-re-plan loop guard")
    applied: bool = True
    at: float = Field(default_factory=time.time)


class WorkerLoad(BaseModel):
    status: str
    load: int
    capacity: int
    busy_seconds: float = 0.0
    utilisation: float = 0.0


class SkillLoad(BaseModel):
    queued: int = 0
    running: int = 0
    slots: int = 0
    oldest_wait: float = 0.0
    utilisation: float = 0.0


class StatusSnapshot(BaseModel):
    """Where a run stands: per-task state, per-worker and per-skill load, ETA and slip."""

    run_id: str
    at: float = Field(default_factory=time.time)
    elapsed: float = 0.0
    tasks: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    workers: dict[str, WorkerLoad] = Field(default_factory=dict)
    skills: dict[str, SkillLoad] = Field(default_factory=dict)
    eta: float | None = Field(None, description="seconds to the end, by a schedule of what is left")
    deadline: float | None = None
    planned_makespan: float | None = None
    critical_path_slip: float = Field(0.0, description="seconds the critical path runs late")
    bottlenecks: list[Bottleneck] = Field(default_factory=list)


class Section(BaseModel):
    heading: str
    body: str


class DeliverableDraft(BaseModel):
    """What the synthesizer model writes."""

    title: str
    summary: str
    sections: list[Section] = Field(default_factory=list)


class Deliverable(DeliverableDraft):
    """The final answer: the draft plus the facts the results agree on (settled by vote where
    they contradicted each other) and the ones still disputed."""

    facts: dict[str, Any] = Field(default_factory=dict)
    disputed: list[str] = Field(default_factory=list)


class RunReport(BaseModel):
    run_id: str
    request: str
    status: Literal["done", "partial", "failed", "stopped"]
    reason: str = ""
    deliverable: Deliverable | None = None
    final_review: Review | None = None
    tasks: dict[str, TaskRecord]
    decisions: list[Decision] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    makespan: float = 0.0
    planned_duration: float = 0.0
    model_calls: dict[str, int] = Field(default_factory=dict)
    tokens: dict[str, int] = Field(default_factory=dict, description="model tokens by role")
    models: dict[str, str] = Field(
        default_factory=dict, description="role -> the model that played it (for tokens by model)"
    )
    cost: float = Field(0.0, description="the workers' cost per attempt, summed over attempts")
    usage: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="role -> model -> calls, tokens (estimated part marked), provider errors, "
        "structured-output failures, repairs, length re-asks, methods, fallbacks, seconds",
    )
    cut: list[str] = Field(
        default_factory=list,
        description="optional tasks dropped to meet the deadline (each record says why)",
    )
    simplified: list[str] = Field(
        default_factory=list, description="tasks that ran their cheaper version for the deadline"
    )
    schedule: Schedule | None = Field(None, description="the planned schedule, risks and backups")
    actual: list[Slot] = Field(default_factory=list, description="every attempt as it ran")
    bottlenecks: list[Bottleneck] = Field(default_factory=list)
    replans: list[Replan] = Field(default_factory=list)
    memory: str = Field("", description="where the run was remembered, or why it was not")
    compliance: dict[str, Any] | None = Field(
        None, description="classifications, redactions and policy checks (protection.compliance)"
    )
    mitigations: dict[str, Any] = Field(
        default_factory=dict, description="what past failure patterns changed in the plan"
    )
    tasks_per_worker: dict[str, int] = Field(default_factory=dict)
    fairness: float | None = Field(
        None, description="Jain's index of tasks per worker among equally skilled workers"
    )
    parent: ParentRun | None = Field(None, description="the run that delegated this one")
    children: list[ChildRun] = Field(default_factory=list, description="runs its leads ran")

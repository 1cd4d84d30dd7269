"""Every schema a model fills through structured output, in one place.

Each is valid for OpenAI strict mode, Anthropic tool schemas and Gemini function declarations
(``tests/test_schemas.py`` checks them): every object closed and every property required (an
optional value is a union with null), no free-form objects (key/value lists and JSON strings
instead), no numeric or length bounds in the schema (the conversion to the domain model checks
them, and its error goes back to the model). Parsing stays lenient: a field a model leaves out
takes its default, and the old dict forms are accepted too."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator_graph.models import (
    Criterion,
    CriterionKind,
    Plan,
    QAPolicy,
    Section,
    Simplification,
    Task,
)


def _close(schema: dict[str, Any]) -> None:
    """Closed, every property required, no defaults in what is sent."""
    props = schema.get("properties", {})
    schema["additionalProperties"] = False
    schema["required"] = list(props)
    for prop in props.values():
        prop.pop("default", None)


class Draft(BaseModel):
    """Base of the structured-output schemas: closed objects, all properties required in the
    schema; parsing ignores keys the schema does not have (a model's extra fields)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_close)


def _decode(value: str) -> Any:
    """A JSON value, or the text itself when it is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _pairs(value: Any, key: str, val: str) -> Any:
    """``{"a": 1}`` (the old dict form) as ``[{key: "a", val: 1}]``."""
    if isinstance(value, dict):
        return [{key: k, val: v} for k, v in value.items()]
    return value


class Param(Draft):
    name: str
    value: str = Field(description="the value: JSON for a number, list or object, else plain text")

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return value if isinstance(value, str) else json.dumps(value)


def params(items: list[Param]) -> dict[str, Any]:
    return {p.name: _decode(p.value) for p in items}


class SkillLevel(Draft):
    skill: str
    level: float = Field(description="0 to 1")


class PriorityVote(Draft):
    stakeholder: str
    priority: int = Field(description="1 (lowest) to 5 (highest)")


class CriterionDraft(Draft):
    kind: CriterionKind = "text"
    description: str = ""
    keys: list[str] = Field(default_factory=list, description="has_keys / sections: names")
    field: str | None = Field(None, description="the output field to inspect (dotted path)")
    value: float | None = Field(None, description="min_items: minimum count; number_range: min")
    maximum: float | None = Field(None, description="number_range: maximum")
    text: str | None = Field(None, description="contains: text the output must contain")
    json_schema: str | None = Field(None, description="schema: a JSON Schema, as a JSON string")
    pattern: str | None = Field(None, description="matches: a regular expression (full match)")
    task: str | None = Field(None, description="matches_upstream: the upstream task")
    upstream_field: str | None = Field(None, description="matches_upstream: its field")
    tolerance: float | None = Field(None, description="matches_upstream: allowed difference")

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_text(cls, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, dict) else value

    def to_criterion(self) -> Criterion:
        data = self.model_dump(exclude_none=True)
        if self.json_schema is not None:
            schema = _decode(self.json_schema)
            if not isinstance(schema, dict):
                raise ValueError(f"criterion json_schema is not a JSON object: {self.json_schema}")
            data["json_schema"] = schema
        return Criterion.model_validate(data)


class SimplificationDraft(Draft):
    inputs: list[Param] = Field(default_factory=list, description="inputs replacing the task's")
    effort: float = Field(description="estimated seconds of the simpler version")
    note: str = Field("", description="what the simpler version leaves out")

    _as_pairs = field_validator("inputs", mode="before")(
        classmethod(lambda cls, v: _pairs(v, "name", "value"))
    )


class TaskDraft(Draft):
    """A task as a model writes it; ``to_task`` gives the domain ``Task``."""

    id: str = Field(description="unique id within the plan, short snake_case")
    title: str
    description: str = ""
    skills: list[str] = Field(description="skills a worker needs (from the list given)")
    min_levels: list[SkillLevel] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list, description="ids of tasks it needs")
    inputs: list[Param] = Field(default_factory=list, description="parameters for the worker")
    outputs: list[str] = Field(default_factory=list)
    consumes: list[str] = Field(default_factory=list, description="other tasks' outputs it needs")
    effort: float = Field(1.0, description="estimated seconds")
    priority: int = Field(3, description="1 (lowest) to 5 (highest)")
    priority_votes: list[PriorityVote] = Field(default_factory=list)
    acceptance: list[CriterionDraft] = Field(default_factory=list)
    optional: bool = False
    timeout: float | None = Field(None, description="seconds before an attempt is abandoned")
    qa_policy: QAPolicy | None = None
    redundancy: int = Field(1, description="independent executions (1-5), compared")
    consensus_field: str | None = None
    simplified: SimplificationDraft | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        return _pairs(value, "name", "value")

    @field_validator("min_levels", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        return _pairs(value, "skill", "level")

    @field_validator("priority_votes", mode="before")
    @classmethod
    def _votes(cls, value: Any) -> Any:
        return _pairs(value, "stakeholder", "priority")

    def to_task(self) -> Task:
        data = self.model_dump(
            exclude={"min_levels", "inputs", "priority_votes", "acceptance", "simplified"},
            exclude_none=True,
        )
        simplified = None
        if self.simplified is not None:
            simplified = Simplification(
                inputs=params(self.simplified.inputs),
                effort=self.simplified.effort,
                note=self.simplified.note,
            )
        return Task(
            **data,
            min_levels={s.skill: s.level for s in self.min_levels},
            inputs=params(self.inputs),
            priority_votes={v.stakeholder: v.priority for v in self.priority_votes},
            acceptance=[c.to_criterion() for c in self.acceptance],
            simplified=simplified,
        )


def to_tasks(drafts: list[TaskDraft]) -> list[Task]:
    """The domain tasks; an invalid value names the task and the field (for the re-ask)."""
    tasks = []
    for i, draft in enumerate(drafts):
        try:
            tasks.append(draft.to_task())
        except ValueError as err:
            raise ValueError(f"task {draft.id or i!r}: {' '.join(str(err).split())}") from None
    return tasks


class PlanDraft(Draft):
    """A plan as the planner model writes it."""

    goal: str = Field(description="one sentence: what the plan delivers")
    tasks: list[TaskDraft]

    def to_plan(self) -> Plan:
        return Plan(goal=self.goal, tasks=to_tasks(self.tasks), source="model")


class ReplanDraft(Draft):
    """What the planner model writes for a re-plan."""

    tasks: list[TaskDraft] = Field(description="the new tasks replacing the failed sub-graph")
    reason: str = Field(description="what the new tasks do differently")


class RubricReview(Draft):
    score: float = Field(description="0 to 1: how well the result meets the criteria")
    verdict: Literal["approve", "reject"]
    reasons: list[str] = Field(default_factory=list)

    @field_validator("score")
    @classmethod
    def _unit(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"score {value} is not between 0 and 1")
        return value


class SectionDraft(Draft):
    heading: str
    body: str


class DeliverableDraft(Draft):
    """What the synthesizer model writes."""

    title: str
    summary: str
    sections: list[SectionDraft] = Field(default_factory=list)

    def section_models(self) -> list[Section]:
        return [Section(heading=s.heading, body=s.body) for s in self.sections]


class WorkerNote(Draft):
    summary: str = Field(description="two or three sentences on what was done and found")


class MediationAdvice(Draft):
    action: Literal["accept", "retry", "skip"]
    reason: str


class JudgeChoice(Draft):
    attempt: int = Field(description="the attempt number of the answer you choose")
    reason: str


class MergedAnswer(Draft):
    output: str = Field(
        description="the merged result as a JSON object (a string), in the candidates' shape"
    )
    reason: str

    @field_validator("output", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, dict) else value

    def merged(self) -> dict[str, Any]:
        value = _decode(self.output)
        if not isinstance(value, dict):
            raise ValueError("output must be a JSON object in the candidates' shape")
        return value


STRUCTURED_OUTPUTS: tuple[type[Draft], ...] = (
    PlanDraft,
    ReplanDraft,
    RubricReview,
    DeliverableDraft,
    WorkerNote,
    MediationAdvice,
    JudgeChoice,
    MergedAnswer,
)
"""Every schema the package asks a model to fill."""

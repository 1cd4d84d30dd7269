"""Per-run settings, read by every node from ``runtime.context`` (Studio shows the fields)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, cast, get_args, get_origin, get_type_hints

from orchestrator_graph.errors import ContextError

if TYPE_CHECKING:
    from orchestrator_graph.consensus import Mechanism

ROLES = ("planner", "worker", "reviewer", "mediator", "synthesizer")
QA_THRESHOLDS = {"strict": 0.9, "standard": 0.7, "lenient": 0.5}
VOTES = ("majority", "weighted", "borda", "arbitration")
FALLBACKS = ("retry_elsewhere", "replan", "partial")
RESOLUTIONS = {
    "redundant_disagree": (*VOTES, "judge", "mediate", "human"),
    "contradicting_facts": VOTES,
    "priority_dispute": VOTES,
}


@dataclass(kw_only=True)
class Context:
    planner_model: str | None = field(
        default=None,
        metadata={"description": "'provider:model' for the planner; unset = the graph's"},
    )
    worker_model: str | None = field(
        default=None, metadata={"description": "'provider:model' the default team's workers use"}
    )
    reviewer_model: str | None = field(
        default=None, metadata={"description": "'provider:model' for rubric reviews"}
    )
    mediator_model: str | None = field(
        default=None, metadata={"description": "'provider:model' for mediation advice"}
    )
    synthesizer_model: str | None = field(
        default=None, metadata={"description": "'provider:model' for the final synthesis"}
    )
    objective: Literal["balanced", "quality", "cost"] = field(
        default="balanced",
        metadata={"description": "what worker matching favours: balanced, quality or cost"},
    )
    cross_validate: Literal["off", "critical"] = field(
        default="off",
        metadata={
            "description": "critical: run each critical-path task on two workers and "
            "compare their answers"
        },
    )
    resolution: Literal["majority", "weighted", "borda", "arbitration"] = field(
        default="weighted",
        metadata={
            "description": "how disagreements are voted on, unless resolution_by_conflict "
            "says otherwise for a kind"
        },
    )
    resolution_by_conflict: dict[str, str] | None = field(
        default=None,
        metadata={
            "description": "per conflict kind: redundant_disagree -> majority | weighted | "
            "borda | arbitration | judge (the mediator model picks) | mediate (the mediator "
            "model merges) | human; contradicting_facts and priority_dispute -> a vote"
        },
    )
    budget_seconds: float | None = field(
        default=None, metadata={"description": "wall time for the run; resume with more to go on"}
    )
    budget_cost: float | None = field(
        default=None, metadata={"description": "sum of the workers' cost per attempt"}
    )
    budget_attempts: int | None = field(
        default=None, metadata={"description": "task attempts in all (the run's steps)"}
    )
    budget_tokens: int | None = field(
        default=None, metadata={"description": "model tokens in all (planning, workers, reviews)"}
    )
    loop_guard: int = field(
        default=3,
        metadata={
            "description": "escalate a task after it fails the same way this many times "
            "in a row, whatever attempts are left"
        },
    )
    adapt: bool = field(
        default=True,
        metadata={
            "description": "respond to what the monitor finds: hedge stalled attempts on "
            "another worker, re-rank on critical-path slip, use backup workers, simplify or "
            "drop optional tasks for the deadline"
        },
    )
    stall_after: float = field(
        default=2.0,
        metadata={
            "description": "an attempt running this many times its expected duration counts "
            "as stalled (0 = never)"
        },
    )
    status_every: float = field(
        default=0.5,
        metadata={
            "description": "seconds between status snapshots (stream, store, state); a run "
            "so large that a snapshot takes long gets them less often (at most 5 % of its time)"
        },
    )
    fallback: list[str] = field(
        default_factory=lambda: ["retry_elsewhere", "partial"],
        metadata={
            "description": "for a task that failed for good, tried in order: retry_elsewhere "
            "(a worker that has not failed it), replan (the planner replaces the failed "
            "sub-graph), partial (finish without it, the output marked partial)"
        },
    )
    max_replans: int = field(
        default=2, metadata={"description": "re-plans a run may make (the re-plan budget)"}
    )
    max_attempts: int = field(
        default=3, metadata={"description": "attempts per task before it is escalated"}
    )
    qa_policy: Literal["strict", "standard", "lenient"] = field(
        default="standard", metadata={"description": "how high a result must score to pass QA"}
    )
    qa_thresholds: dict[str, float] | None = field(
        default=None,
        metadata={
            "description": "score a result needs per policy, e.g. {'strict': 0.95}; "
            "unset policies keep 0.9 / 0.7 / 0.5"
        },
    )
    plan_review: bool = field(
        default=False,
        metadata={
            "description": "ask the reviewer model whether the plan covers the request "
            "(a model's plan rejected once is re-planned with the feedback)"
        },
    )
    review_mode: Literal["auto", "always", "never"] = field(
        default="auto",
        metadata={
            "description": "model rubric review: auto = when a task has criteria code cannot check"
        },
    )
    escalation: Literal["policy", "human"] = field(
        default="policy", metadata={"description": "who settles a task that failed every attempt"}
    )
    worker_subgraph: bool = field(
        default=False,
        metadata={
            "description": "run each attempt as the compiled 'worker' subgraph, with its own "
            "namespace in streams and Studio (about 3 ms of CPU per attempt); off (default): "
            "the same two steps inline, events still name task, worker and attempt"
        },
    )
    identity: dict[str, Any] | None = field(
        default=None,
        metadata={
            "description": "who runs this (name, tenant, roles): recorded as the actor and "
            "checked against its roles; on the server the authenticated user takes its place"
        },
    )
    use_memory: bool = field(default=True, metadata={"description": "recall and learn past runs"})
    reuse_threshold: float = field(
        default=0.9,
        metadata={
            "description": "similarity (cosine of the requests' embeddings) at or above which "
            "a past successful plan is adapted instead of asking the planner"
        },
    )
    recall_k: int = field(
        default=3, metadata={"description": "similar past runs recalled for the planner"}
    )
    output_dir: str = field(
        default="",
        metadata={"description": "where workers write files; unset = ./orchestrator-output"},
    )
    dask_address: str = field(
        default="",
        metadata={
            "description": "Dask scheduler for workers declared to run on Dask without an "
            "address of their own; unset = $ORCHESTRATOR_GRAPH_DASK"
        },
    )
    structured_output: dict[str, str] | None = field(
        default=None,
        metadata={
            "description": "per role: json_schema (strict), function_calling or json_mode "
            "(the schema in the prompt); unset = the provider's best (capability table), or a "
            "'#method' suffix on the model string"
        },
    )
    request_timeout: float = field(
        default=120.0, metadata={"description": "seconds one model request may take"}
    )
    max_output_tokens: int | None = field(
        default=None,
        metadata={
            "description": "output-token limit per model request for models given as strings "
            "(unset = per role: planner and synthesizer 4096, others 1024)"
        },
    )
    provider_retries: int = field(
        default=2,
        metadata={"description": "retries of a request that failed with 429, 5xx or no answer"},
    )
    retry_backoff: float = field(
        default=1.0,
        metadata={"description": "seconds before the first retry (doubling; Retry-After wins)"},
    )
    role_limits: dict[str, dict[str, float]] | None = field(
        default=None,
        metadata={
            "description": "per role overrides of timeout, max_tokens and retries, e.g. "
            "{'worker': {'timeout': 30, 'max_tokens': 512}}"
        },
    )
    grounding: bool = field(
        default=True,
        metadata={
            "description": "reject a worker's text that states numbers or names found in none "
            "of its inputs, tool results or approved upstream outputs"
        },
    )
    mediator_retries: int = field(
        default=1,
        metadata={"description": "extra attempts the mediator model may grant a task"},
    )

    @classmethod
    def coerce(cls, value: Any) -> Context:
        """The graph may run inside a parent graph with its own context, or get a plain dict
        from the server API: take what belongs to us and default the rest."""
        if isinstance(value, cls):
            return value
        names = {f.name for f in fields(cls)}
        if isinstance(value, dict):
            return cls(**{k: v for k, v in value.items() if k in names})
        return cls(**{n: getattr(value, n) for n in names if hasattr(value, n)})

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_field(f.name, getattr(self, f.name))
        for kind, mechanism in (self.resolution_by_conflict or {}).items():
            allowed = RESOLUTIONS.get(kind)
            if allowed is None:
                raise ContextError(
                    "resolution_by_conflict", kind, f"conflict kinds: {', '.join(RESOLUTIONS)}"
                )
            if mechanism not in allowed:
                raise ContextError(
                    f"resolution_by_conflict[{kind!r}]", mechanism, f"one of {', '.join(allowed)}"
                )
        _check_calls(self)
        unknown = [f for f in self.fallback if f not in FALLBACKS]
        if unknown or not self.fallback:
            raise ContextError(
                "fallback", self.fallback, f"a non-empty list of {', '.join(FALLBACKS)}"
            )
        for policy, value in (self.qa_thresholds or {}).items():
            if policy not in QA_THRESHOLDS:
                raise ContextError("qa_thresholds", policy, f"policies: {', '.join(QA_THRESHOLDS)}")
            _check_number(f"qa_thresholds[{policy!r}]", value, float, 0.0, 1.0)

    def mechanism(self, kind: str) -> Mechanism:
        """How conflicts of ``kind`` are settled (checked against ``RESOLUTIONS`` on creation)."""
        return cast("Mechanism", (self.resolution_by_conflict or {}).get(kind, self.resolution))

    def threshold(self, policy: str) -> float:
        return {**QA_THRESHOLDS, **(self.qa_thresholds or {})}[policy]


MAX_INT = 2**53  # what every store and JSON reader keeps exactly
# Numeric fields: (type, lowest, highest, lowest excluded). None = no bound.
RANGES: dict[str, tuple[type, float | None, float | None, bool]] = {
    "budget_seconds": (float, 0.0, None, True),
    "budget_cost": (float, 0.0, None, True),
    "budget_attempts": (int, 1, None, False),
    "budget_tokens": (int, 1, None, False),
    "loop_guard": (int, 1, 1000, False),
    "stall_after": (float, 0.0, None, False),
    "status_every": (float, 0.0, 3600.0, True),
    "max_replans": (int, 0, 1000, False),
    "max_attempts": (int, 1, 1000, False),
    "reuse_threshold": (float, 0.0, 1.0, False),
    "recall_k": (int, 0, 100, False),
    "request_timeout": (float, 0.0, None, True),
    "max_output_tokens": (int, 1, None, False),
    "provider_retries": (int, 0, 100, False),
    "retry_backoff": (float, 0.0, 600.0, False),
    "mediator_retries": (int, 0, 100, False),
}


@cache
def _hints() -> dict[str, Any]:
    return get_type_hints(Context)


def _check_field(name: str, value: Any) -> None:
    """One field against its type: a Literal's choices, a bool, a string, a number in range."""
    hint = _hints()[name]
    if value is None and type(None) in get_args(hint):
        return
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            choices = ", ".join(str(c) for c in get_args(hint))
            raise ContextError(name, value, f"one of {choices}")
    elif any(get_origin(h) is list for h in (hint, *get_args(hint))) and not isinstance(
        value, list
    ):
        raise ContextError(name, value, "a list")
    elif hint is bool and not isinstance(value, bool):
        raise ContextError(name, value, "true or false")
    elif name in RANGES:
        kind, low, high, exclusive = RANGES[name]
        _check_number(name, value, kind, low, high, exclusive)
    elif (hint is str or hint == str | None) and not isinstance(value, str):
        raise ContextError(name, value, "a string")
    elif any(get_origin(h) is dict for h in (hint, *get_args(hint))) and not isinstance(
        value, dict
    ):
        raise ContextError(name, value, "a mapping")


def _check_number(
    name: str,
    value: Any,
    kind: type,
    low: float | None,
    high: float | None,
    exclusive: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        ok = ok and isinstance(value, int)
        high = MAX_INT if high is None else high
    if ok and low is not None:
        ok = value > low if exclusive else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        noun = "a whole number" if kind is int else "a finite number"
        bounds = [
            f"{'>' if exclusive else '>='} {low:g}" if low is not None else "",
            f"<= {high:g}" if high is not None else "",
        ]
        raise ContextError(name, value, f"{noun} {' and '.join(b for b in bounds if b)}".strip())


LIMIT_KEYS = ("timeout", "max_tokens", "retries")
METHOD_NAMES = ("json_schema", "function_calling", "json_mode")


def _check_calls(context: Context) -> None:
    """The model-call settings: known roles, methods and limit names, positive values."""
    for role, method in (context.structured_output or {}).items():
        if role not in ROLES:
            raise ContextError("structured_output", role, f"roles: {', '.join(ROLES)}")
        if method not in METHOD_NAMES:
            raise ContextError(
                f"structured_output[{role!r}]", method, f"one of {', '.join(METHOD_NAMES)}"
            )
    for role, limits in (context.role_limits or {}).items():
        if role not in ROLES:
            raise ContextError("role_limits", role, f"roles: {', '.join(ROLES)}")
        for key, value in limits.items():
            if key not in LIMIT_KEYS or not isinstance(value, (int, float)) or value < 0:
                raise ContextError(
                    f"role_limits[{role!r}][{key!r}]",
                    value,
                    f"keys {', '.join(LIMIT_KEYS)}, each a number >= 0",
                )

"""Quality gates: deterministic checks first, then a model rubric where the policy asks for one."""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from orchestrator_graph.context import QA_THRESHOLDS
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.models import Check, Criterion, Review, Task, TaskResult
from orchestrator_graph.prompts import messages


class RubricReview(BaseModel):
    score: float = Field(ge=0.0, le=1.0, description="how well the result meets the criteria")
    verdict: Literal["approve", "reject"]
    reasons: list[str] = Field(default_factory=list)


def _field(output: Any, name: str | None) -> Any:
    if name is None:
        return output
    return output.get(name) if isinstance(output, dict) else None


def check_criterion(criterion: Criterion, output: Any) -> Check | None:
    """A check for a criterion code can verify; ``None`` for a free-text one."""
    name = f"{criterion.kind}:{criterion.field or criterion.text or ','.join(criterion.keys)}"
    value = _field(output, criterion.field)
    if criterion.kind == "has_keys":
        missing = [k for k in criterion.keys if not (isinstance(output, dict) and k in output)]
        return Check(
            name=name, passed=not missing, detail=f"missing keys: {missing}" if missing else ""
        )
    if criterion.kind == "min_items":
        size = len(value) if isinstance(value, (list, dict, str)) else 0
        need = criterion.value or 1
        return Check(name=name, passed=size >= need, detail=f"{size} items, need at least {need:g}")
    if criterion.kind == "contains":
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        found = (criterion.text or "") in (text or "")
        return Check(
            name=name, passed=found, detail="" if found else f"{criterion.text!r} not found"
        )
    if criterion.kind == "number_range":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        low, high = criterion.value, criterion.maximum
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        return Check(name=name, passed=ok, detail=f"value {value!r}, range [{low}, {high}]")
    return None


def run_gates(task: Task, result: TaskResult) -> list[Check]:
    checks = [Check(name="no_error", passed=result.error is None, detail=result.error or "")]
    if result.error is None:
        empty = result.output is None or result.output in ("", [], {})
        checks.append(
            Check(name="has_output", passed=not empty, detail="empty output" if empty else "")
        )
        checks += [c for c in (check_criterion(k, result.output) for k in task.acceptance) if c]
    return checks


def needs_rubric(task: Task, mode: str) -> bool:
    return mode == "always" or (mode == "auto" and any(c.kind == "text" for c in task.acceptance))


async def review_result(
    task: Task, result: TaskResult, *, policy: str, mode: str, reviewer: BaseChatModel | None
) -> Review:
    """Deterministic gates decide alone when they fail; a rubric review joins when they pass."""
    checks = run_gates(task, result)
    passed = sum(c.passed for c in checks)
    score = passed / len(checks)
    failed = [c for c in checks if not c.passed]
    feedback = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    by = "gates"
    if not failed and reviewer is not None and needs_rubric(task, mode):
        listing = "\n".join(f"{'PASS' if c.passed else 'FAIL'} {c.name} {c.detail}" for c in checks)
        rubric = await ask_structured(
            reviewer,
            RubricReview,
            messages(
                "reviewer",
                task=task.title,
                criteria="\n".join(f"- {c.description or c.kind}" for c in task.acceptance),
                output=json.dumps(result.output, default=str)[:6000],
                checks=listing,
            ),
        )
        score = (score + rubric.score) / 2
        by = "gates+rubric"
        if rubric.verdict == "reject":
            feedback = "; ".join(rubric.reasons) or "the rubric review rejected the result"
    verdict = "approve" if not failed and score >= QA_THRESHOLDS[policy] else "reject"
    if verdict == "reject" and not feedback:
        feedback = f"score {score:.2f} is below the {policy} threshold {QA_THRESHOLDS[policy]}"
    return Review(
        task_id=task.id,
        attempt=result.attempt,
        verdict=verdict,
        score=round(score, 4),
        checks=checks,
        feedback=feedback,
        reviewer=by,
    )

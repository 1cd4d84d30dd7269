"""Quality gates: deterministic checks first, then a model rubric where the policy asks for one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator
from langchain_core.language_models import BaseChatModel

from orchestrator_graph.context import Context
from orchestrator_graph.grounding import grounding_check
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.models import Check, Criterion, Plan, Review, Task, TaskResult
from orchestrator_graph.prompts import messages
from orchestrator_graph.schemas import RubricReview

_MISSING = object()


def resolve(output: Any, path: str | None) -> Any:
    """``a.b.c`` into nested dicts (and list indices); ``#len`` at the end takes a length."""
    if path is None:
        return output
    path, _, suffix = path.partition("#")
    value = output
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    if suffix == "len":
        return len(value) if isinstance(value, (list, dict, str)) else _MISSING
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def check_criterion(criterion: Criterion, output: Any, upstream: Mapping[str, Any]) -> Check | None:
    """A check for a criterion code can verify; ``None`` for a free-text one."""
    kind = criterion.kind
    label = criterion.field or criterion.text or criterion.task or ",".join(criterion.keys)
    name = f"{kind}:{label}" if label else kind
    value = resolve(output, criterion.field)
    present = value is not _MISSING

    def verdict(passed: bool, detail: str) -> Check:
        return Check(name=name, passed=passed, detail="" if passed else detail)

    if kind == "has_keys":
        # A key holding nothing (null, "", {}) is no result: ``statistics: {}`` is not statistics.
        # An empty list is an answer (``issues: []``: none found).
        found = {k: resolve(output, k) for k in criterion.keys}
        missing = [k for k, v in found.items() if v is _MISSING]
        empty = [k for k, v in found.items() if v is None or (v in ("", {}) and v is not _MISSING)]
        return verdict(
            not missing and not empty,
            "; ".join(
                f"{what} keys: {keys}"
                for what, keys in (("missing", missing), ("empty", empty))
                if keys
            ),
        )
    if kind == "min_items":
        size = len(value) if isinstance(value, (list, dict, str)) else 0
        need = criterion.value or 1
        return verdict(size >= need, f"{size} items, need at least {need:g}")
    if kind == "contains":
        return verdict(
            present and (criterion.text or "") in _text(value), f"{criterion.text!r} not found"
        )
    if kind == "number_range":
        low, high = criterion.value, criterion.maximum
        ok = _number(value) and (low is None or value >= low) and (high is None or value <= high)
        return verdict(ok, f"value {value if present else 'missing'!r}, range [{low}, {high}]")
    if kind == "schema":
        errors = sorted(
            Draft202012Validator(criterion.json_schema or {}).iter_errors(
                value if present else None
            ),
            key=lambda e: list(e.path),
        )
        return verdict(
            not errors,
            "; ".join(f"{'/'.join(map(str, e.path)) or 'output'}: {e.message}" for e in errors[:3]),
        )
    if kind == "matches":
        ok = present and re.fullmatch(criterion.pattern or "", _text(value)) is not None
        return verdict(
            ok,
            f"{_text(value)[:80] if present else 'missing'!r} does not match {criterion.pattern!r}",
        )
    if kind == "sections":
        headings = (
            {h.strip() for h in re.findall(r"^#+\s+(.*)$", _text(value), re.M)}
            if present
            else set()
        )
        missing = [k for k in criterion.keys if k not in headings]
        return verdict(not missing, f"missing sections: {missing}")
    if kind == "references_upstream":
        text = _text(value) if present else ""
        missing = [t for t in upstream if t not in text]
        return verdict(not missing, f"does not reference the upstream results of {missing}")
    if kind == "matches_upstream":
        theirs = resolve(upstream.get(criterion.task or ""), criterion.upstream_field)
        ok = _number(value) and _number(theirs) and abs(value - theirs) <= criterion.tolerance
        return verdict(
            ok,
            f"{criterion.field}={value if present else 'missing'!r} but "
            f"{criterion.task}.{criterion.upstream_field}="
            f"{theirs if theirs is not _MISSING else 'missing'!r}",
        )
    return None


def run_gates(
    task: Task,
    result: TaskResult,
    upstream: Mapping[str, Any] | None = None,
    *,
    grounding: bool = True,
) -> list[Check]:
    checks = [Check(name="no_error", passed=result.error is None, detail=result.error or "")]
    if result.error is None:
        empty = result.output is None or result.output in ("", [], {})
        checks.append(
            Check(name="has_output", passed=not empty, detail="empty output" if empty else "")
        )
        checks += [
            c
            for c in (check_criterion(k, result.output, upstream or {}) for k in task.acceptance)
            if c
        ]
        checks += _grounding(task, result, upstream) if grounding else []
    return checks


def _grounding(task: Task, result: TaskResult, upstream: Mapping[str, Any] | None) -> list[Check]:
    found = grounding_check(task, result.output, upstream)
    return [found] if found else []


def _listing(checks: list[Check]) -> str:
    """The checks as the reviewer model sees them (the offline reviewer reads the FAIL marks)."""
    return "\n".join(f"{'PASS' if c.passed else 'FAIL'} {c.name} {c.detail}" for c in checks)


def needs_rubric(task: Task, mode: str) -> bool:
    return mode == "always" or (mode == "auto" and any(c.kind == "text" for c in task.acceptance))


async def review_result(
    task: Task,
    result: TaskResult,
    *,
    policy: str,
    threshold: float,
    mode: str,
    reviewer: BaseChatModel | None,
    upstream: Mapping[str, Any] | None = None,
    grounding: bool = True,
) -> Review:
    """Deterministic gates decide alone when they fail; a rubric review joins when they pass,
    and its rejection stands whatever the averaged score."""
    checks = run_gates(task, result, upstream, grounding=grounding)
    score = sum(c.passed for c in checks) / len(checks)
    failed = [c for c in checks if not c.passed]
    feedback = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    by, rubric_rejects = "gates", False
    if not failed and reviewer is not None and needs_rubric(task, mode):
        listing = _listing(checks)
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
        by, rubric_rejects = "gates+rubric", rubric.verdict == "reject"
        if rubric_rejects:
            feedback = "; ".join(rubric.reasons) or "the rubric review rejected the result"
    approve = not failed and not rubric_rejects and score >= threshold
    if not approve and not feedback:
        feedback = f"score {score:.2f} is below the {policy} threshold {threshold:g}"
    return Review(
        task_id=task.id,
        attempt=result.attempt,
        verdict="approve" if approve else "reject",
        score=round(score, 4),
        checks=checks,
        feedback=feedback,
        reviewer=by,
    )


CHECKABLE = set(get_args(Criterion.model_fields["kind"].annotation)) - {"text"}


async def review_plan(
    plan: Plan,
    critical_path: float,
    request: str,
    *,
    threshold: float,
    reviewer: BaseChatModel | None,
) -> Review:
    """The gate before execution. Validity and feasibility were checked already (an invalid plan
    never gets here); these checks add what can be judged by code, and the reviewer model, when
    asked, judges whether the plan covers the request."""
    unchecked = [t.id for t in plan.tasks if not any(c.kind in CHECKABLE for c in t.acceptance)]
    late = plan.deadline is not None and critical_path > plan.deadline
    checks = [
        Check(name="valid_and_feasible", passed=True),
        Check(
            name="checkable_criteria",
            passed=not unchecked,
            detail=f"tasks whose results code cannot check: {unchecked}",
        ),
        Check(
            name="deadline",
            passed=not late,
            detail=f"critical path {critical_path:g}s exceeds the deadline {plan.deadline}s",
        ),
    ]
    score = sum(c.passed for c in checks) / len(checks)
    feedback = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.passed)
    verdict: Literal["approve", "reject"] = "approve"
    by = "gates"
    if reviewer is not None:
        listing = _listing(checks)
        rubric = await ask_structured(
            reviewer,
            RubricReview,
            messages(
                "plan_reviewer",
                request=request,
                checks=listing,
                plan=json.dumps(plan.model_dump(mode="json", include={"goal", "tasks"}))[:8000],
            ),
        )
        score, by = (score + rubric.score) / 2, "gates+rubric"
        if rubric.verdict == "reject" or score < threshold:
            verdict = "reject"
            feedback = "; ".join(rubric.reasons) or feedback or f"score {score:.2f} < {threshold}"
    return Review(
        task_id="plan",
        attempt=1,
        verdict=verdict,
        score=round(score, 4),
        checks=checks,
        feedback=feedback,
        reviewer=by,
    )


async def gate_result(
    task: Task,
    result: TaskResult,
    context: Context,
    reviewer: BaseChatModel | None,
    upstream: Mapping[str, Any] | None = None,
) -> Review:
    """``review_result`` under the task's policy (else the run's) and its threshold."""
    policy = task.qa_policy or context.qa_policy
    return await review_result(
        task,
        result,
        policy=policy,
        threshold=context.threshold(policy),
        mode=context.review_mode,
        reviewer=reviewer,
        upstream=upstream,
        grounding=context.grounding,
    )

"""The final review node: the gate on the deliverable. It exists, covers every approved task
and nothing else, disputes no fact; the run is approved only if the hard checks pass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.models import Check, Deliverable, Review, TaskRecord
from orchestrator_graph.state import OrchestratorState, plan_of, records_of

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

HARD_CHECKS = 4
"""The first checks of ``checks``: a run that fails one is rejected whatever its score."""


async def step(services: Services, state: OrchestratorState, env: Env) -> dict[str, Any]:
    context = env.context
    deliverable = Deliverable.model_validate(state["deliverable"])
    checks = deliverable_checks(deliverable, records_of(state))
    policy = plan_of(state).qa_policy or context.qa_policy
    score = sum(c.passed for c in checks) / len(checks)
    hard_ok = all(c.passed for c in checks[:HARD_CHECKS])
    review = Review(
        task_id="final",
        attempt=1,
        score=round(score, 4),
        verdict="approve" if hard_ok and score >= context.threshold(policy) else "reject",
        checks=checks,
        feedback="; ".join(f"{c.name}: {c.detail}" for c in checks if not c.passed),
    )
    env.emit(
        Event(
            kind="final_review",
            node="final_review",
            message=f"{review.verdict} ({review.score:.2f})",
        )
    )
    return {"final_review": review.model_dump(mode="json")}


def deliverable_checks(deliverable: Deliverable, records: dict[str, TaskRecord]) -> list[Check]:
    approved = {t for t, r in records.items() if r.status == "approved"}
    # As written (not \u-escaped), so that a task id like "données" is found in the text.
    text = json.dumps(deliverable.model_dump(), default=str, ensure_ascii=False)
    missing = sorted(set(approved) - _mentioned(approved, text))
    unapproved = sorted(
        t
        for t, r in records.items()
        if r.status != "approved" and any(s.heading == t for s in deliverable.sections)
    )
    return [
        Check(
            name="has_approved_results",
            passed=bool(approved),
            detail="no task was approved: there is nothing to deliver",
        ),
        Check(name="has_summary", passed=bool(deliverable.summary.strip())),
        Check(name="covers_approved_tasks", passed=not missing, detail=f"missing: {missing}"),
        Check(
            name="only_approved_results",
            passed=not unapproved,
            detail=f"unapproved: {unapproved}",
        ),
        Check(
            name="no_disputed_facts",
            passed=not deliverable.disputed,
            detail=f"disputed: {deliverable.disputed}",
        ),
        Check(
            name="all_tasks_approved",
            passed=approved >= {t for t, r in records.items() if r.counts},
            detail=f"{len(approved)}/{len(records)} approved",
        ),
    ]


_WORD = re.compile(r"[\w\-#~]+")


def _mentioned(ids: Iterable[str], text: str) -> set[str]:
    """The ids that occur in ``text``: word-like ids by one scan of its words (a substring
    search per id was O(tasks x text), quadratic on large plans), others by substring."""
    words = set(_WORD.findall(text))
    return {i for i in ids if (i in words if _WORD.fullmatch(i) else i in text)}

"""The compliance report of a run: each task's classification, what was redacted (by kind,
action and place, each value counted once), the policy checks and their outcome."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field

from orchestrator_graph.ledger import COMPLIANCE
from orchestrator_graph.models import Plan
from orchestrator_graph.protection.classification import level_of
from orchestrator_graph.protection.intake import CHECKS
from orchestrator_graph.protection.policy import load_policy

PAGE = 1000


class Redaction(BaseModel):
    kind: str
    detector: str
    action: str
    where: str


class PolicyCheck(BaseModel):
    check: str
    subject: str
    outcome: Literal["pass", "fail"]
    detail: str = ""


class ComplianceReport(BaseModel):
    run_id: str
    policy: str = Field(description="the policy file in force")
    classifications: dict[str, str] = Field(description="task -> classification")
    redactions: dict[str, int] = Field(description="kind -> distinct values redacted or masked")
    actions: dict[str, int] = Field(description="action -> distinct values")
    items: list[Redaction]
    checks: list[PolicyCheck]
    outcome: Literal["pass", "fail"]

    @property
    def redacted(self) -> int:
        return len(self.items)


async def compliance_report(
    store: BaseStore, run_id: str, plan: dict[str, Any] | Plan | None
) -> ComplianceReport:
    policy = load_policy()
    records: list[Any] = []
    while True:
        page = await store.asearch((*COMPLIANCE, run_id), limit=PAGE, offset=len(records))
        records += page
        if len(page) < PAGE:
            break
    checks = [PolicyCheck.model_validate(r.value) for r in records if r.key.startswith(CHECKS)]
    items = [Redaction.model_validate(r.value) for r in records if not r.key.startswith(CHECKS)]
    parsed = Plan.model_validate(plan) if isinstance(plan, dict) else plan
    levels = {t.id: level_of(t, parsed, policy) for t in parsed.tasks} if parsed else {}
    refused = [i for i in items if i.action == "refuse"]
    if refused:  # a refused kind found after the intake (in a worker's output): redacted
        where = ", ".join(sorted({i.where for i in refused}))
        detail = f"{len(refused)} values of refused kinds redacted in {where}"
        checks.append(
            PolicyCheck(check="outputs", subject="refused kinds", outcome="fail", detail=detail)
        )
    return ComplianceReport(
        run_id=run_id,
        policy=policy.source,
        classifications=levels,
        redactions=dict(Counter(i.kind for i in items)),
        actions=dict(Counter(i.action for i in items)),
        items=sorted(items, key=lambda i: (i.where, i.kind)),
        checks=checks,
        outcome="fail" if any(c.outcome == "fail" for c in checks) else "pass",
    )

"""The audit trail of a run: every verdict and action, in order, from what the run recorded
(the ledger of attempts, the plan and final gates, conflicts, the mediator's decisions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.store.base import BaseStore
from pydantic import BaseModel

from orchestrator_graph.hierarchy import delegated_to
from orchestrator_graph.ledger import Ledger


class AuditEntry(BaseModel):
    at: float
    actor: str
    action: str
    task_id: str | None = None
    detail: str = ""


async def audit_trail(store: BaseStore, values: Mapping[str, Any]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    started = float(values.get("started_at") or 0.0)
    if gate := values.get("plan_review"):
        entries.append(
            AuditEntry(
                at=started,
                actor=gate["reviewer"],
                action=f"plan {gate['verdict']}",
                task_id="plan",
                detail=gate["feedback"],
            )
        )
    for conflict in values.get("conflicts", []):
        entries.append(
            AuditEntry(
                at=conflict["at"],
                actor=conflict["mechanism"] or "dispatcher",
                action=f"conflict {conflict['kind']}",
                task_id=conflict["task_id"],
                detail=f"{conflict['detail']} -> {conflict['resolution']}",
            )
        )
    if run_id := values.get("run_id"):
        for result, review in await Ledger(store, run_id).attempts():
            key = f"{result.task_id} attempt {result.attempt}"
            entries.append(
                AuditEntry(
                    at=result.started_at,
                    actor=result.worker,
                    action="attempt started",
                    task_id=result.task_id,
                    detail=key + delegated_to(result.output),
                )
            )
            entries.append(
                AuditEntry(
                    at=result.finished_at,
                    actor=review.reviewer,
                    action=f"{review.verdict} ({review.score:.2f})",
                    task_id=result.task_id,
                    detail=review.feedback or result.error or "",
                )
            )
    for decision in values.get("decisions", []):
        entries.append(
            AuditEntry(
                at=decision["at"],
                actor=decision["by"],
                action=f"decision {decision['action']}",
                task_id=decision["task_id"],
                detail=decision["reason"],
            )
        )
    if final := values.get("final_review"):
        last = max((e.at for e in entries), default=started)
        entries.append(
            AuditEntry(
                at=last,
                actor=final["reviewer"],
                action=f"deliverable {final['verdict']} ({final['score']:.2f})",
                detail=final["feedback"],
            )
        )
    return sorted(entries, key=lambda e: e.at)

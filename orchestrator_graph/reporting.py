"""The run report, and the record of a finished run the plan memory keeps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from orchestrator_graph.matching import jain
from orchestrator_graph.memory import RunRecord, TaskOutcome
from orchestrator_graph.models import (
    Bottleneck,
    Conflict,
    Decision,
    Deliverable,
    PlanAnalysis,
    Replan,
    Review,
    RunReport,
    Schedule,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.registry import Registry
from orchestrator_graph.state import OrchestratorState, plan_of


def _fairness(per_worker: Mapping[str, int], registry: Registry) -> float | None:
    """Jain's index of tasks per worker within each group of workers with the same skills,
    averaged over groups that have more than one worker and did any work."""
    groups: dict[frozenset[tuple[str, float]], list[int]] = {}
    for worker in registry.workers():
        groups.setdefault(frozenset(worker.skills.items()), []).append(
            per_worker.get(worker.name, 0)
        )
    indices = [jain(counts) for counts in groups.values() if len(counts) > 1 and any(counts)]
    return round(sum(indices) / len(indices), 4) if indices else None


def attempts_cost(attempts: Sequence[tuple[TaskResult, Review]], registry: Registry) -> float:
    """What the attempts cost: each worker's cost per attempt, as the budget counts it."""
    prices = {w.name: w.cost for w in registry.workers()}
    return round(sum(prices.get(r.worker, 0.0) for r, _ in attempts), 6)


def run_record(
    state: OrchestratorState,
    report: RunReport,
    attempts: Sequence[tuple[TaskResult, Review]],
    registry: Registry,
) -> RunRecord:
    """What the memory keeps of a finished run."""
    plan = plan_of(state)
    by_task: dict[str, list[tuple[TaskResult, Review]]] = {}
    for result, review in sorted(attempts, key=lambda pair: (pair[0].task_id, pair[0].attempt)):
        by_task.setdefault(result.task_id, []).append((result, review))

    def cost(worker: str) -> float:
        member = registry.get(worker)
        return member.cost if member else 0.0

    outcomes = {
        t.id: TaskOutcome(
            skills=t.skills,
            effort=t.effort,
            worker=report.tasks[t.id].worker,
            status=report.tasks[t.id].status,
            attempts=len(by_task.get(t.id, [])),
            verdicts=[(r.worker, v.verdict) for r, v in by_task.get(t.id, [])],
            score=report.tasks[t.id].score,
            seconds=round(sum(r.finished_at - r.started_at for r, _ in by_task.get(t.id, [])), 4),
            cost=sum(cost(r.worker) for r, _ in by_task.get(t.id, [])),
            tokens=sum(r.tokens + v.tokens for r, v in by_task.get(t.id, [])),
        )
        for t in plan.tasks
        if t.id in report.tasks
    }
    counting = [r for r in report.tasks.values() if r.counts]
    approved = sum(r.status == "approved" for r in counting) / len(counting) if counting else 0.0
    final = report.final_review.score if report.final_review else 0.0
    return RunRecord(
        run_id=report.run_id,
        request=report.request,
        status=report.status,
        plan=plan,
        assignments={t: r.worker for t, r in report.tasks.items() if r.worker},
        outcomes=outcomes,
        conflicts=[
            {"kind": c.kind, "mechanism": c.mechanism, "resolution": c.resolution}
            for c in report.conflicts
        ],
        makespan=report.makespan,
        planned_makespan=report.schedule.makespan if report.schedule else report.planned_duration,
        quality=round(final * approved, 4),
        qa_failures=sum(v.verdict != "approve" for _, v in attempts),
        planner_calls=report.model_calls.get("planner", 0),
        tokens=sum(report.tokens.values()),
        team=[w.name for w in registry.workers()],
        bottlenecks=[b.kind for b in report.bottlenecks],
    )


def _final(final: Review | None) -> str:
    """Why a run whose tasks were all approved is not done: the final review's finding."""
    if final is None:
        return "the deliverable was not reviewed"
    return f"the final review rejected the deliverable: {final.feedback or final.verdict}"


def build_report(
    state: OrchestratorState,
    records: dict[str, TaskRecord],
    registry: Registry,
    schedule: Schedule | None = None,
) -> RunReport:
    final = Review.model_validate(state["final_review"]) if state.get("final_review") else None
    cut = sorted(t for t, r in records.items() if r.cut)
    statuses = {r.status for r in records.values() if r.counts}
    status: Literal["done", "partial", "failed", "stopped"]
    if state.get("stopped"):
        status, reason = "stopped", f"{state['stopped']}; resume with a raised budget"
    elif statuses == {"approved"} and final is not None and final.verdict == "approve":
        status, reason = "done", f"cut to meet the deadline: {', '.join(cut)}" if cut else ""
    elif "approved" in statuses:
        bad = sorted(t for t, r in records.items() if r.status != "approved" and r.counts)
        status, reason = "partial", f"not approved: {', '.join(bad)}" if bad else _final(final)
    else:
        status, reason = "failed", "no task was approved"
    per_worker = Counter(r.worker for r in records.values() if r.worker and r.status == "approved")
    fairness = _fairness(per_worker, registry)
    finishes = [r.finished_at for r in records.values() if r.finished_at]
    started = state.get("started_at") or 0.0
    return RunReport(
        run_id=state["run_id"],
        request=state["request"],
        status=status,
        reason=reason,
        deliverable=Deliverable.model_validate(state["deliverable"])
        if state.get("deliverable")
        else None,
        final_review=final,
        tasks=records,
        decisions=[Decision.model_validate(d) for d in state.get("decisions", [])],
        conflicts=[Conflict.model_validate(c) for c in state.get("conflicts", [])],
        makespan=round(max(finishes) - started, 4) if finishes else 0.0,
        planned_duration=PlanAnalysis.model_validate(state["analysis"]).duration,
        model_calls=dict(state.get("model_calls") or {}),
        tasks_per_worker=dict(per_worker),
        cut=cut,
        simplified=sorted(t for t, r in records.items() if r.simplified),
        schedule=schedule,
        bottlenecks=[Bottleneck.model_validate(b) for b in state.get("bottlenecks", [])],
        replans=[Replan.model_validate(r) for r in state.get("replans", [])],
        mitigations=state.get("mitigations") or {},
        fairness=fairness,
    )

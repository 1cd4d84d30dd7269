"""The planner node: a declared plan, a recalled one or one from the planner model, passed by
the plan gate (re-planned once with its feedback), settled (implied dependencies, QA policies,
priorities), adjusted for past failure patterns, analysed and scheduled."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from orchestrator_graph.consensus import settle_priority
from orchestrator_graph.context import Context
from orchestrator_graph.contracts import check_contracts, team_sheet
from orchestrator_graph.dag import (
    PlanRejectedError,
    able_workers,
    analyse_plan,
    check_data_flow,
    validate_plan,
    with_implied_dependencies,
)
from orchestrator_graph.dispatch.board import with_redundancy
from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.ledger import save_schedule, spent_kept
from orchestrator_graph.llm import ask_structured, calling
from orchestrator_graph.memory import FailurePattern, mitigations
from orchestrator_graph.models import Conflict, Plan, PlanAnalysis, Review, Schedule, TaskRecord
from orchestrator_graph.prompts import messages
from orchestrator_graph.protection.intake import guard_plan
from orchestrator_graph.qa import review_plan
from orchestrator_graph.registry import Registry
from orchestrator_graph.residency import check_residency
from orchestrator_graph.schemas import PlanDraft
from orchestrator_graph.state import OrchestratorState
from orchestrator_graph.usage import Tally, track_usage, usage_update

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services


async def step(services: Services, state: OrchestratorState, env: Env) -> dict[str, Any]:
    planning = Planning(services, state, env)
    plan, verdict = await planning.gated()
    plan, disputes = settle_plan(plan, env.context)
    registry = services.registry
    models = services.roles.labels(env.context)
    plan = await guard_plan(
        plan, state["request"], registry.workers(), models, env.store, state["run_id"]
    )
    names: dict[int, list[str]] = {}  # able_workers shares one list per kind of task
    able = {}
    for t, ws in able_workers(plan.tasks, registry.workers()).items():
        if id(ws) not in names:
            names[id(ws)] = [w.name for w in ws]
        able[t] = names[id(ws)]
    patterns = [FailurePattern.model_validate(p) for p in state.get("patterns", [])]
    fixes = mitigations(plan.tasks, patterns, able)
    plan = plan.model_copy(
        update={
            "tasks": [
                t.model_copy(update={"qa_policy": fixes[t.id]["qa_policy"] or t.qa_policy})
                if t.id in fixes
                else t
                for t in plan.tasks
            ]
        }
    )
    pad = {tid: fix["pad"] for tid, fix in fixes.items()}
    analysis, schedule = await services.analyse(plan, env.store, pad=pad)
    tasks = with_redundancy(plan.tasks, analysis, registry.workers(), env.context.cross_validate)
    plan = plan.model_copy(update={"tasks": tasks})
    await save_schedule(env.store, state["run_id"], schedule)
    env.emit(planned_event(plan, analysis, schedule))
    return {
        "planned_makespan": schedule.makespan,
        "executing_since": time.time(),
        "reuse": None,  # used: later checkpoints need not carry it
        "examples": "",
        # Defaults left out: the plan is in every checkpoint, and readers validate it.
        "plan": plan.model_dump(mode="json", exclude_defaults=True),
        "analysis": analysis.model_dump(mode="json"),
        "tasks": {
            t.id: TaskRecord(avoid=fixes.get(t.id, {}).get("avoid", [])).model_dump(mode="json")
            for t in plan.tasks
        },
        "mitigations": fixes,
        "conflicts": [c.model_dump(mode="json") for c in disputes],
        "plan_review": verdict.model_dump(mode="json"),
        **usage_update(
            {
                r: ts
                for r, ts in planning.tallies.items()
                if ts and any(t.models for t in ts) or r == "planner"
            }
        ),
    }


class Planning:
    """One planning pass: the plan, its gate, and the usage of the models that made them."""

    def __init__(self, services: Services, state: OrchestratorState, env: Env) -> None:
        self.services, self.state, self.env = services, state, env
        self.tallies: dict[str, list[Tally]] = {"planner": [], "reviewer": []}

    async def gated(self) -> tuple[Plan, Review]:
        """A plan the gate passes; one re-plan with the gate's feedback, unless declared."""
        plan = await self.as_role("planner", self.make_plan(""))
        verdict = await self.as_role("reviewer", self.gate(plan))
        if verdict.verdict == "reject" and plan.source != "declared":
            plan = await self.as_role("planner", self.make_plan(verdict.feedback))
            verdict = await self.as_role("reviewer", self.gate(plan))
        self.env.emit(
            Event(
                kind="qa_verdict",
                node="planner",
                role="reviewer",
                task_id="plan",
                message=f"{verdict.verdict} ({verdict.score:.2f})",
                data={"feedback": verdict.feedback},
            )
        )
        if verdict.verdict == "reject":
            raise PlanRejectedError(
                f"the plan gate rejected the {plan.source} plan: {verdict.feedback}"
            )
        return plan, verdict

    async def make_plan(self, feedback: str) -> Plan:
        """A declared plan, a recalled one, or one from the planner model."""
        state, registry = self.state, self.services.registry
        if state.get("plan"):
            plan = Plan.model_validate(state["plan"]).model_copy(update={"source": "declared"})
            validate_for_team(plan, registry)
            return plan
        reuse = state.get("reuse")
        reused = None if feedback or not reuse else Plan.model_validate(reuse)
        if reused and _valid(reused, registry):
            return reused
        draft = await ask_structured(
            self.services.roles.model("planner", self.env.context),
            PlanDraft,
            messages(
                "planner",
                request=state["request"],
                skills=", ".join(sorted(registry.skills())),
                workers=team_sheet(registry.workers()),
                examples=state.get("examples") or "none",
                feedback=feedback or "none",
            ),
            check=lambda d: validate_for_team(d.to_plan(), registry),
        )
        return draft.to_plan()

    async def gate(self, plan: Plan) -> Review:
        context = self.env.context
        return await review_plan(
            plan,
            analyse_plan(plan).duration if plan.deadline is not None else 0.0,
            self.state["request"],
            reviewer=self.services.roles.model("reviewer", context)
            if context.plan_review
            else None,
            threshold=context.threshold(plan.qa_policy or context.qa_policy),
        )

    async def as_role(self, role: str, call: Awaitable[Any]) -> Any:
        """A call counted for ``role`` and bounded by its limits and the run's budget."""
        profile = self.services.roles.profile(role, self.env.context, self.state)
        with track_usage() as usage, calling(profile):
            self.tallies[role].append(usage)
            async with spent_kept(self.env.store, self.state["run_id"], self.tallies):
                return await call


def planned_event(plan: Plan, analysis: PlanAnalysis, schedule: Schedule) -> Event:
    late = "" if schedule.meets_deadline else f", misses the {plan.deadline:g}s deadline"
    return Event(
        kind="planned",
        node="planner",
        message=f"{len(plan.tasks)} tasks ({plan.source}), planned makespan "
        f"{schedule.makespan:.2f}s{late}",
        data={
            "tasks": len(plan.tasks),
            "critical_path": analysis.critical_path,
            "duration": analysis.duration,
            "planned_makespan": schedule.makespan,
            "meets_deadline": schedule.meets_deadline,
            "would_cut": schedule.would_cut,
            "backups": {t: r.backup for t, r in schedule.risks.items() if r.backup},
        },
    )


def settle_plan(plan: Plan, context: Context) -> tuple[Plan, list[Conflict]]:
    """Each task gets the dependencies its inputs imply, the plan's QA policy unless it has its
    own, and the priority its stakeholders agree on or vote for."""
    tasks, disputes = [], []
    plan = with_implied_dependencies(plan)
    for task in plan.tasks:
        priority, dispute = settle_priority(
            task.id, task.priority_votes, plan.stakeholders, context.mechanism("priority_dispute")
        )
        tasks.append(
            task.model_copy(
                update={
                    "qa_policy": task.qa_policy or plan.qa_policy,
                    "priority": priority or task.priority,
                }
            )
        )
        disputes += [dispute] if dispute else []
    return plan.model_copy(update={"tasks": tasks}), disputes


def validate_for_team(plan: Plan, registry: Registry) -> None:
    """The plan's shape and skills, then its data flow on this team (``dag.check_data_flow``),
    then every task's inputs against its able workers' contracts (``contracts``)."""
    validate_plan(plan, registry.skills())
    check_residency(plan, registry.workers())
    check_data_flow(plan, registry.workers())
    check_contracts(plan, registry.workers())


def _valid(plan: Plan, registry: Registry) -> bool:
    try:
        validate_for_team(plan, registry)
    except ValueError:
        return False
    return True

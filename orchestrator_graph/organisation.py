"""Simulated organisations of any depth, for the hierarchy tests, the README and the scale bench.

``organisation(levels, workers=..., tasks=...)`` splits one body of simulated work (the same
tasks, the same efforts) over a flat team (``levels=1``), regional leads each with a team
(``levels=2``), or regional leads each with team leads each with a team (``levels=3``). The
parent's plan has ``stages`` phases per region, each stage after the one before (a multi-phase
project); every lead declares its child's plan from its share of the work, so the runs are
deterministic and need no planner model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator_graph.hierarchy import Delegation, team_lead
from orchestrator_graph.models import Criterion, Plan, Task
from orchestrator_graph.simulation import lognormal_effort, simulated_team
from orchestrator_graph.workers import Worker

ACCEPT_PHASE = [Criterion(kind="has_keys", keys=["summary", "refs"])]


@dataclass(frozen=True)
class Organisation:
    workers: list[Worker]
    """The parent's team: simulated workers (flat) or regional leads."""
    plan: Plan
    """The parent's plan: the tasks themselves (flat) or one phase per region and stage."""
    leaves: int
    """Simulated workers at the bottom, in all."""
    work: Plan
    """The work itself, however it is split."""


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def organisation(
    levels: int,
    *,
    workers: int,
    tasks: int,
    regions: int = 2,
    teams: int = 2,
    stages: int = 1,
    seed: int = 1,
    mean_effort: float = 0.05,
    sigma: float = 0.3,
    **work: Any,
) -> Organisation:
    """``work`` goes to every simulated worker (``side_effects``, ``real_sleep``, ...)."""
    if levels not in (1, 2, 3):
        raise ValueError(f"levels must be 1 (flat), 2 or 3, got {levels}")
    groups = regions * stages * (teams if levels == 3 else 1)
    if tasks < groups or workers < regions * (teams if levels == 3 else 1):
        raise ValueError(f"{workers} workers and {tasks} tasks are too few for {groups} teams")
    work_plan = _work(tasks, seed, mean_effort, sigma)
    if levels == 1:
        team = simulated_team(workers, seed=seed, **work)
        return Organisation(team, work_plan, workers, work_plan)
    per_region = _split(list(range(workers)), regions)
    shares = _split(work_plan.tasks, regions * stages)
    leads, phases = [], []
    for r, ids in enumerate(per_region):
        region = f"r{r}"
        if levels == 2:
            team = _team(ids, seed, work)
        else:
            team = [
                team_lead(
                    f"{region}-team{t}",
                    skills=[f"{region}-team"],
                    team=_team(part, seed, work),
                    plan=_share,
                )
                for t, part in enumerate(_split(ids, teams))
            ]
        leads.append(
            team_lead(f"{region}-lead", skills=[region], team=team, region=region, plan=_share)
        )
        for s in range(stages):
            share = shares[s * regions + r]
            phases.append(
                Task(
                    id=f"{region}-stage{s}",
                    title=f"stage {s} in region {region}",
                    skills=[region],
                    depends_on=[f"r{q}-stage{s - 1}" for q in range(regions)] if s else [],
                    inputs={"work": _declare(share), "teams": teams if levels == 3 else 0},
                    effort=sum(t.effort for t in share),
                    acceptance=ACCEPT_PHASE,
                )
            )
    plan = Plan(goal=f"{tasks} tasks in {levels} levels", tasks=phases, source="declared")
    return Organisation(leads, plan, workers, work_plan)


def _work(n: int, seed: int, mean: float, sigma: float) -> Plan:
    """``n`` independent tasks with seeded log-normal efforts (``sigma`` sets the spread)."""
    specs = [
        {"id": f"t{i:05d}", "effort": lognormal_effort(seed, str(i), mean, sigma)} for i in range(n)
    ]
    return Plan(goal=f"{n} simulated tasks", tasks=[_task(s) for s in specs], source="declared")


def lower_bound(plan: Plan, workers: int) -> float:
    """No schedule of independent tasks on ``workers`` equal workers ends sooner than this."""
    efforts = [t.effort for t in plan.tasks]
    return max(sum(efforts) / workers, max(efforts))


def _team(ids: list[int], seed: int, work: dict[str, Any]) -> list[Worker]:
    team = simulated_team(len(ids), seed=seed, **work)
    return [w.model_copy(update={"name": f"sim{i:05d}"}) for w, i in zip(team, ids, strict=True)]


def _declare(share: list[Task]) -> list[dict[str, Any]]:
    return [{"id": t.id, "effort": t.effort} for t in share]


def _share(delegation: Delegation) -> Plan:
    """The child plan of a phase: its tasks (a team's), or one phase per team under it."""
    phase = delegation.phase
    work = [_task(w) for w in phase.inputs["work"]]
    teams = int(phase.inputs.get("teams") or 0)
    if not teams:
        return Plan(goal=phase.title, tasks=work, source="declared")
    skill = f"{phase.skills[0]}-team"
    tasks = [
        Task(
            id=f"{phase.id}-team{t}",
            title=f"{phase.title}, team {t}",
            skills=[skill],
            inputs={"work": _declare(part)},
            effort=sum(w.effort for w in part),
            acceptance=ACCEPT_PHASE,
        )
        for t, part in enumerate(_split(work, teams))
    ]
    return Plan(goal=phase.title, tasks=tasks, source="declared")


def _task(spec: dict[str, Any]) -> Task:
    return Task(
        id=spec["id"],
        title=f"simulated {spec['id']}",
        skills=["sim"],
        effort=spec["effort"],
        acceptance=[Criterion(kind="has_keys", keys=["value"])],
    )

"""The optimizer: what past runs say about the team. Load balance, recurring bottlenecks,
capacity planning (how many workers of which skill reach a target makespan, found by simulating
the recorded plans on candidate teams), skill gaps, and team composition and training advice.

Everything here is computed from the plan memory's run records, the workers' performance history
and the roster: figures, not opinions. ``orchestrator-graph insights`` prints it."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from orchestrator_graph.dag import dependencies
from orchestrator_graph.matching import jain
from orchestrator_graph.memory import FailurePattern, RunRecord, failure_patterns
from orchestrator_graph.models import Plan
from orchestrator_graph.registry import History, SkillStats, slowness
from orchestrator_graph.schedule import list_schedule
from orchestrator_graph.workers import Worker

LOW_QUALITY = 0.6
MAX_HIRES = 20


class WorkerUse(BaseModel):
    worker: str
    tasks: int
    share: float
    seconds: float
    success_rate: float | None = None


class SkillCoverage(BaseModel):
    skill: str
    tasks: int = Field(description="tasks that needed it in the runs looked at")
    effort: float = Field(description="their estimated seconds, summed")
    workers: list[str]
    slots: int
    best_level: float
    quality: float | None = Field(None, description="best measured quality among its workers")
    pressure: float = Field(description="share of the effort over share of the slots; >1 = short")
    gap: str = ""


class CapacityPlan(BaseModel):
    target: float
    plans: int = Field(description="recorded plans simulated")
    current: float = Field(description="mean simulated makespan with the current team")
    hires: dict[str, int] = Field(default_factory=dict, description="skill -> workers to add")
    simulated: float = Field(description="mean simulated makespan with the hires")
    reached: bool
    steps: list[tuple[str, float]] = Field(
        default_factory=list, description="each hire in order, and the makespan after it"
    )


class Insights(BaseModel):
    runs: int
    statuses: dict[str, int]
    mean_makespan: float
    mean_quality: float
    load: list[WorkerUse]
    fairness: float | None
    bottlenecks: dict[str, int] = Field(description="kind -> runs where it was found")
    skills: list[SkillCoverage]
    failure_patterns: list[dict[str, object]]
    capacity: CapacityPlan | None = None
    recommendations: list[str]


def simulate(plans: Sequence[Plan], team: Sequence[Worker], history: History) -> float:
    """Mean makespan of the plans list-scheduled on the team (the planner's own scheduler)."""
    spans = []
    for plan in plans:
        slots = list_schedule(plan.tasks, dependencies(plan), list(team), history)
        spans.append(max((s.finish for s in slots), default=0.0))
    return statistics.fmean(spans) if spans else 0.0


def hire(skill: str, team: Sequence[Worker], history: History, n: int) -> Worker:
    """A new worker for a skill, modelled on the team's median worker in it (level and pace)."""
    able = [w for w in team if skill in w.skills]
    level = statistics.median(w.skills[skill] for w in able) if able else 1.0
    pace = statistics.median(slowness(w, [skill], history) for w in able) if able else 1.0
    return Worker(name=f"new-{skill}-{n}", skills={skill: level}, speed=1.0 / pace, run=_hire)


def _hire(payload: object) -> None:
    raise RuntimeError("a hire the capacity plan simulated, not a worker that can run")


def plan_capacity(
    plans: Sequence[Plan], team: Sequence[Worker], history: History, target: float
) -> CapacityPlan:
    """Greedy: add, one at a time, the worker whose skill shortens the simulated makespan most,
    until the target is reached or no hire helps. A hire that leaves the makespan as it is but
    finishes tasks earlier still counts (ties go to the earlier finishes): the makespan often
    moves only after several hires (four parallel tasks on one worker: two and three workers
    both leave two rounds), or after hires in two skills whose tasks run side by side."""
    skills = sorted({s for p in plans for t in p.tasks for s in t.skills})
    current = simulate(plans, team, history)
    members, hires = list(team), Counter[str]()
    steps: list[Any] = []
    now = _finishes(plans, members, history)
    while now[0] > target + 1e-9 and len(steps) < MAX_HIRES:
        options = []
        for skill in skills:
            trial = [*members, hire(skill, members, history, hires[skill] + 1)]
            options.append((_finishes(plans, trial, history), skill, trial))
        best, skill, trial = min(options, key=lambda o: (o[0], o[1]))
        if best[0] > now[0] - 1e-9 and best[1] >= now[1] - 1e-9:
            break  # no hire finishes anything earlier
        members, now = trial, best
        hires[skill] += 1
        steps.append((skill, round(best[0], 4)))
    return CapacityPlan(
        target=target,
        plans=len(plans),
        current=round(current, 4),
        hires=dict(hires),
        simulated=round(now[0], 4),
        reached=now[0] <= target + 1e-9,
        steps=steps,
    )


def _finishes(plans: Sequence[Plan], team: Sequence[Worker], history: History) -> tuple:
    """(mean makespan, mean sum of the tasks' finish times), rounded against float noise."""
    spans, sums = [], []
    for plan in plans:
        slots = list_schedule(plan.tasks, dependencies(plan), list(team), history)
        spans.append(max((s.finish for s in slots), default=0.0))
        sums.append(sum(s.finish for s in slots))
    if not spans:
        return (0.0, 0.0)
    return (round(statistics.fmean(spans), 9), round(statistics.fmean(sums), 9))


def insights(
    records: Sequence[RunRecord],
    team: Sequence[Worker],
    history: History,
    *,
    target: float | None = None,
) -> Insights:
    tasks = Counter(w for r in records for w in r.assignments.values())
    seconds: defaultdict[str, float] = defaultdict(float)
    for r in records:
        for o in r.outcomes.values():
            if o.worker:
                seconds[o.worker] += o.seconds
    total = sum(tasks.values()) or 1
    load = [
        WorkerUse(
            worker=w.name,
            tasks=tasks[w.name],
            share=round(tasks[w.name] / total, 4),
            seconds=round(seconds[w.name], 4),
            success_rate=_success(history.get(w.name, {})),
        )
        for w in team
    ]
    groups: dict[frozenset[str], list[int]] = {}
    for w in team:
        groups.setdefault(frozenset(w.skills), []).append(tasks[w.name])
    indices = [jain(c) for c in groups.values() if len(c) > 1 and any(c)]
    skills = _coverage(records, team, history)
    patterns = failure_patterns(records)
    plans = [r.plan for r in records]
    capacity = plan_capacity(plans, team, history, target) if target and plans else None
    bottlenecks = Counter(k for r in records for k in set(r.bottlenecks))
    return Insights(
        runs=len(records),
        statuses=dict(Counter(r.status for r in records)),
        mean_makespan=round(statistics.fmean(r.makespan for r in records), 4) if records else 0,
        mean_quality=round(statistics.fmean(r.quality for r in records), 4) if records else 0,
        load=load,
        fairness=round(statistics.fmean(indices), 4) if indices else None,
        bottlenecks=dict(bottlenecks),
        skills=skills,
        failure_patterns=[{**p.model_dump(), "rate": round(p.rate, 4)} for p in patterns],
        capacity=capacity,
        recommendations=_advice(load, skills, patterns, capacity, len(records)),
    )


def _success(stats: dict[str, SkillStats]) -> float | None:
    attempts = sum(s.attempts for s in stats.values())
    return round(sum(s.successes for s in stats.values()) / attempts, 4) if attempts else None


def _coverage(
    records: Sequence[RunRecord], team: Sequence[Worker], history: History
) -> list[SkillCoverage]:
    need, effort = Counter[str](), defaultdict[str, float](float)
    for r in records:
        for t in r.plan.tasks:
            for s in t.skills:
                need[s] += 1
                effort[s] += t.effort
    all_slots = sum(w.capacity for w in team) or 1
    all_effort = sum(effort.values()) or 1.0
    out = []
    for skill in sorted(set(need) | {s for w in team for s in w.skills}):
        able = [w for w in team if skill in w.skills]
        slots = sum(w.capacity for w in able)
        measured = [history[w.name][skill] for w in able if skill in history.get(w.name, {})]
        quality = max((m.quality for m in measured if m.attempts), default=None)
        pressure = (effort[skill] / all_effort) / (slots / all_slots) if slots else float("inf")
        gap = (
            "no worker has it"
            if not able
            else "one worker only"
            if len(able) == 1 and need[skill]
            else f"quality {quality:.2f} below {LOW_QUALITY}"
            if quality is not None and quality < LOW_QUALITY
            else "short of capacity"
            if pressure > 1.5 and need[skill]
            else ""
        )
        out.append(
            SkillCoverage(
                skill=skill,
                tasks=need[skill],
                effort=round(effort[skill], 4),
                workers=[w.name for w in able],
                slots=slots,
                best_level=max((w.skills[skill] for w in able), default=0.0),
                quality=round(quality, 4) if quality is not None else None,
                pressure=round(pressure, 4) if slots else 999.0,
                gap=gap,
            )
        )
    return out


def _advice(
    load: Sequence[WorkerUse],
    skills: Sequence[SkillCoverage],
    patterns: Sequence[FailurePattern],
    capacity: CapacityPlan | None,
    runs: int,
) -> list[str]:
    out = []
    if capacity is not None and capacity.hires:
        hires = ", ".join(f"{n} {s}" for s, n in sorted(capacity.hires.items()))
        verdict = "reaches" if capacity.reached else "still misses"
        out.append(
            f"add {hires}: simulated makespan {capacity.current:.2f}s -> "
            f"{capacity.simulated:.2f}s, {verdict} the {capacity.target:g}s target"
        )
    elif capacity is not None:
        out.append(
            f"the team already reaches {capacity.target:g}s (simulated {capacity.current:.2f}s)"
            if capacity.reached
            else f"no hire shortens the simulated {capacity.current:.2f}s: the plans' critical "
            "paths set the floor"
        )
    for s in skills:
        if s.gap and s.tasks:
            out.append(f"{s.skill}: {s.gap} ({s.tasks} tasks, pressure {s.pressure:.2f})")
    for p in patterns:
        out.append(
            f"train or replace {p.worker} on {'+'.join(p.skills)}: failed "
            f"{p.failures}/{p.attempts} attempts"
        )
    for w in load:
        if runs >= 3 and w.tasks == 0:
            out.append(f"{w.worker} got no task in {runs} runs: its skills are covered better")
    return out

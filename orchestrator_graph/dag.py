"""Plan validation and critical-path analysis: plain functions over the task DAG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any, Protocol, TypeVar

from orchestrator_graph.errors import PlanRejectedError as PlanRejectedError
from orchestrator_graph.errors import PlanValidationError
from orchestrator_graph.limits import MAX_TASKS
from orchestrator_graph.models import Plan, PlanAnalysis, Task, TaskAnalysis


def validate_plan(
    plan: Plan, available_skills: Mapping[str, float] | Iterable[str] | None = None
) -> None:
    """Raise ``PlanValidationError`` naming every defect: empty plan, duplicate ids, unknown
    dependencies, cycles, and required skills (at their levels) that no worker has.

    ``available_skills``: skill -> the team's highest level, or just the skill names."""
    problems: list[str] = []
    if not plan.tasks:
        raise PlanValidationError(["the plan has no tasks"])
    if len(plan.tasks) > MAX_TASKS:
        raise PlanValidationError(
            [f"the plan has {len(plan.tasks):,} tasks; the limit is {MAX_TASKS:,}"]
        )
    ids = [t.id for t in plan.tasks]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        problems.append(f"duplicate task ids: {', '.join(duplicates)}")
    known = set(ids)
    for task in plan.tasks:
        unknown = [d for d in task.depends_on if d not in known]
        if unknown:
            problems.append(f"task {task.id!r} depends on unknown tasks: {', '.join(unknown)}")
        if task.id in task.depends_on:
            problems.append(f"task {task.id!r} depends on itself")
    if available_skills is not None:
        best = (
            dict(available_skills)
            if isinstance(available_skills, Mapping)
            else dict.fromkeys(available_skills, 1.0)
        )
        for task in plan.tasks:
            missing = [s for s in task.skills if s not in best]
            if missing:
                problems.append(
                    f"task {task.id!r} needs skills no worker has: {', '.join(missing)} "
                    f"(available: {', '.join(sorted(best)) or 'none'})"
                )
            short = [
                f"{s} at {lvl:g} (best worker: {best[s]:g})"
                for s, lvl in task.min_levels.items()
                if s in best and best[s] < lvl
            ]
            if short:
                problems.append(f"task {task.id!r} needs {', '.join(short)}")
    producers: dict[str, list[str]] = {}
    for task in plan.tasks:
        for name in task.outputs:
            producers.setdefault(name, []).append(task.id)
    for task in plan.tasks:
        for name in task.consumes:
            made_by = producers.get(name, [])
            if not made_by:
                problems.append(f"task {task.id!r} consumes {name!r}, which no task produces")
            elif len(made_by) > 1:
                problems.append(
                    f"task {task.id!r} consumes {name!r}, which several tasks "
                    f"produce: {', '.join(made_by)}"
                )
    deps = dependencies(plan)
    cycle = find_cycle({t: [d for d in ds if d in known] for t, ds in deps.items()})
    if cycle:
        problems.append(f"dependency cycle (a -> b: a depends on b): {' -> '.join(cycle)}")
    if problems:
        raise PlanValidationError(problems)


class Able(Protocol):
    def can_do(self, task: Task) -> bool: ...


W = TypeVar("W", bound=Able)
TaskKind = tuple[tuple[str, ...], tuple[tuple[str, float], ...], tuple[str, ...]]


def task_kind(task: Task) -> TaskKind:
    """What decides who can do a task: its skills, the levels they need, and the regions it
    may run in."""
    return (tuple(task.skills), tuple(sorted(task.min_levels.items())), tuple(task.residency))


def able_workers(tasks: Iterable[Task], workers: Sequence[W]) -> dict[str, list[W]]:
    """Task id -> the workers able to do it, worked out once per kind of task: a plan of
    thousands of tasks has a handful of kinds, so this is O(kinds x workers + tasks)."""
    by_kind: dict[TaskKind, list[W]] = {}
    out: dict[str, list[W]] = {}
    for task in tasks:
        kind = task_kind(task)
        able = by_kind.get(kind)
        if able is None:
            able = by_kind[kind] = [w for w in workers if w.can_do(task)]
        out[task.id] = able
    return out


class Capable(Protocol):
    """What the data-flow check needs of a worker (``workers.Worker`` has it)."""

    @property
    def needs(self) -> list[str]: ...
    @property
    def provides(self) -> list[str]: ...
    @property
    def needs_inputs(self) -> list[str]: ...

    def can_do(self, task: Task) -> bool: ...


def check_data_flow(plan: Plan, workers: Sequence[Capable]) -> None:
    """Raise ``PlanValidationError`` for tasks that cannot work whoever takes them: a task
    whose every able worker needs something (a table) that none of its direct dependencies'
    workers provide, or lacks an input (a path) that every able worker needs."""
    plan = with_implied_dependencies(plan)
    tasks = {t.id: t for t in plan.tasks}
    able = able_workers(plan.tasks, workers)
    # worked out once per kind of task: able_workers gives each kind's tasks one shared list
    needs = _per_team(able, lambda ws: set.intersection(*(set(w.needs) for w in ws)))
    gives = _per_team(able, lambda ws: {p for w in ws for p in w.provides})
    needs_inputs = _per_team(able, lambda ws: set.intersection(*(set(w.needs_inputs) for w in ws)))
    problems = []
    for task in plan.tasks:
        if not able[task.id]:
            continue  # validate_plan names skills nobody has
        needed = needs(task.id)
        given = {p for d in task.depends_on if d in tasks for p in gives(d)}
        for need in sorted(needed - given):
            makers = sorted(t for t, ws in able.items() if any(need in w.provides for w in ws))
            where = (
                f"none of the tasks it depends on ({', '.join(sorted(task.depends_on))}) gives one"
                if task.depends_on
                else "but it depends on no task"
            )
            problems.append(
                f"task {task.id!r} needs a {need} from a task it depends on, {where}"
                + (f" (tasks that give one: {', '.join(makers)})" if makers else "")
            )
        inputs = needs_inputs(task.id)
        missing = sorted(k for k in inputs if not task.inputs.get(k))
        if missing:
            problems.append(f"task {task.id!r} needs inputs.{', inputs.'.join(missing)}")
    if problems:
        raise PlanValidationError(problems)


def _per_team(
    able: Mapping[str, list[Any]], of: Callable[[list[Any]], set[str]]
) -> Callable[[str], set[str]]:
    """``of`` a task's able workers, computed once per distinct list of them."""
    memo: dict[int, set[str]] = {}

    def get(tid: str) -> set[str]:
        team = able[tid]
        if id(team) not in memo:
            memo[id(team)] = of(team)
        return memo[id(team)]

    return get


def dependencies(plan: Plan) -> dict[str, list[str]]:
    """Each task's dependencies: the declared ones plus the producers of what it consumes."""
    producer = {name: t.id for t in plan.tasks for name in t.outputs}
    return {
        t.id: sorted({*t.depends_on, *(producer[n] for n in t.consumes if n in producer)} - {t.id})
        for t in plan.tasks
    }


def with_implied_dependencies(plan: Plan) -> Plan:
    deps = dependencies(plan)
    return plan.model_copy(
        update={"tasks": [t.model_copy(update={"depends_on": deps[t.id]}) for t in plan.tasks]}
    )


def downstream(dependents: Mapping[str, Iterable[str]], tid: str) -> list[str]:
    """Every task that depends on ``tid``, directly or not."""
    seen: list[str] = []
    stack = list(dependents[tid])
    while stack:
        child = stack.pop()
        if child not in seen:
            seen.append(child)
            stack.extend(dependents[child])
    return seen


def redundant_edges(deps: Mapping[str, Iterable[str]], order: list[str]) -> list[tuple[str, str]]:
    """Edges a transitive reduction drops: a task's dependency that another of its
    dependencies already depends on, directly or not. (They stay in the plan: the task still
    receives that output; they only add nothing to the ordering.)"""
    # Ancestor sets as bitsets (one bit per task, Python ints): for 5,000 layered tasks a few
    # MB, where sets of names took 530 MB.
    bit = {tid: 1 << i for i, tid in enumerate(order)}
    ancestors: dict[str, int] = {}
    for tid in order:
        mask = 0
        for d in deps[tid]:
            mask |= bit[d] | ancestors[d]
        ancestors[tid] = mask
    return sorted(
        (tid, d)
        for tid in order
        for d in deps[tid]
        if any(bit[d] & ancestors[other] for other in deps[tid] if other != d)
    )


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    try:
        TopologicalSorter(deps).prepare()
    except CycleError as err:
        # graphlib lists each node before the node that waits for it; reverse so "a -> b" reads
        # "a depends on b".
        return list(reversed(err.args[1]))
    return None


def analyse_plan(plan: Plan, durations: Mapping[str, float] | None = None) -> PlanAnalysis:
    """Critical path method: earliest/latest start and finish, slack, and the critical path.

    ``durations`` overrides the plan's effort estimates (e.g. from workers' history)."""
    tasks = {t.id: t for t in plan.tasks}
    deps_of = dependencies(plan)
    dur = {tid: float((durations or {}).get(tid, t.effort)) for tid, t in tasks.items()}
    order = list(TopologicalSorter(deps_of).static_order())
    es: dict[str, float] = {}
    ef: dict[str, float] = {}
    level: dict[str, int] = {}
    for tid in order:
        deps = deps_of[tid]
        es[tid] = max((ef[d] for d in deps), default=0.0)
        ef[tid] = es[tid] + dur[tid]
        level[tid] = 1 + max((level[d] for d in deps), default=-1)
    duration = max(ef.values(), default=0.0)
    dependents: dict[str, list[str]] = {tid: [] for tid in tasks}
    for tid, deps in deps_of.items():
        for d in deps:
            dependents[d].append(tid)
    lf: dict[str, float] = {}
    ls: dict[str, float] = {}
    for tid in reversed(order):
        lf[tid] = min((ls[s] for s in dependents[tid]), default=duration)
        ls[tid] = lf[tid] - dur[tid]
    eps = 1e-9 * max(duration, 1.0)
    analysis = {
        tid: TaskAnalysis(
            earliest_start=es[tid],
            earliest_finish=ef[tid],
            latest_start=ls[tid],
            latest_finish=lf[tid],
            slack=max(0.0, ls[tid] - es[tid]),
            critical=abs(ls[tid] - es[tid]) <= eps,
        )
        for tid in order
    }
    path: list[str] = []
    current = [tid for tid in order if analysis[tid].critical and not deps_of[tid]]
    while current:
        node = min(current, key=lambda t: (es[t], t))
        path.append(node)
        current = [
            s for s in dependents[node] if analysis[s].critical and abs(es[s] - ef[node]) <= eps
        ]
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for tid in order:
        levels[level[tid]].append(tid)
    return PlanAnalysis(
        critical_path=path,
        duration=duration,
        total_work=sum(dur.values()),
        tasks=analysis,
        levels=[sorted(lv) for lv in levels],
        redundant_edges=redundant_edges(deps_of, order),
        order=order,
    )

"""Planned schedules: resource-constrained list scheduling over a heterogeneous team (HEFT), the
risk of each task with a backup worker for the risky ones, and deadline fitting.

The dispatcher does not follow the planned schedule slot by slot; it assigns at run time from
what is free (``scheduler``). The plan is the yardstick: it gives the expected makespan, the
critical-path slip while running, the ETA (the same scheduler over what is left) and the
planned-vs-actual chart at the end (``charts.gantt_figure``)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator_graph.availability import available_from
from orchestrator_graph.dag import able_workers, dependencies, downstream, task_kind
from orchestrator_graph.models import (
    Plan,
    PlanAnalysis,
    Review,
    Schedule,
    Slot,
    Task,
    TaskResult,
    TaskRisk,
)
from orchestrator_graph.registry import PRIOR_RELIABILITY, History, duration_on, slowness
from orchestrator_graph.workers import Worker

UNASSIGNED = "(nobody)"
RISKY = 0.6  # tasks at or above this risk get a backup worker, like critical-path ones


def list_schedule(
    tasks: Sequence[Task],
    deps: Mapping[str, Sequence[str]],
    workers: Sequence[Worker],
    history: History,
    *,
    now: float = 0.0,
    ready_at: Mapping[str, float] | None = None,
    free_at: Mapping[str, Sequence[float]] | None = None,
    epoch: float | None = None,
) -> list[Slot]:
    """HEFT: tasks by upward rank (mean duration over the workers able to do them), each on the
    worker slot where it finishes earliest. Dependencies outside ``tasks`` finish at
    ``ready_at`` (default: ``now``); ``free_at`` gives each worker's slots' free times. With
    ``epoch`` (the wall-clock time of schedule time 0), a task starts on a worker with working
    hours only within them."""
    by_id = {t.id: t for t in tasks}
    able: dict[str, list[Worker]] = {}
    cost: dict[tuple[str, str], float] = {}  # the duration of each task on each able worker
    kinds: dict[tuple[Any, ...], list[tuple[Worker, float]]] = {}  # per kind of task: who, pace
    for t in tasks:
        kind = task_kind(t)
        if kind not in kinds:
            kinds[kind] = [(w, slowness(w, t.skills, history)) for w in workers if w.can_do(t)]
        able[t.id] = [w for w, _ in kinds[kind]]
        for w, pace in kinds[kind]:
            cost[t.id, w.name] = t.effort * pace
    mean = {
        t.id: sum(cost[t.id, w.name] for w in able[t.id]) / len(able[t.id])
        if able[t.id]
        else t.effort
        for t in tasks
    }
    inner = {tid: [d for d in deps.get(tid, ()) if d in by_id] for tid in by_id}
    dependents: dict[str, list[str]] = {tid: [] for tid in by_id}
    for tid, ds in inner.items():
        for d in ds:
            dependents[d].append(tid)
    rank: dict[str, float] = {}
    for tid in _reverse_topological(inner, dependents):
        rank[tid] = mean[tid] + max((rank[d] for d in dependents[tid]), default=0.0)
    slots = {w.name: sorted((free_at or {}).get(w.name) or [now] * w.capacity) for w in workers}
    known = dict(ready_at or {})
    unmet = {tid: len(ds) for tid, ds in inner.items()}
    heap = [(-rank[tid], tid) for tid, n in unmet.items() if n == 0]
    heapq.heapify(heap)
    finish: dict[str, float] = {}
    out: list[Slot] = []
    while heap:
        _, tid = heapq.heappop(heap)
        data_ready = max(
            (finish[d] if d in finish else known.get(d, now) for d in deps.get(tid, ())),
            default=now,
        )
        data_ready = max(data_ready, now)
        best: tuple[float, str, int, float] | None = None
        for w in able[tid]:
            free = slots[w.name]
            start = max(free[0], data_ready)
            if epoch is not None and w.hours is not None:
                start = available_from(w, epoch + start) - epoch
            end = start + cost[tid, w.name]
            if best is None or (end, w.name) < (best[0], best[1]):
                best = (end, w.name, 0, start)
        if best is None:  # nobody can do it: it takes its estimate, on nobody
            end, worker, start = data_ready + by_id[tid].effort, UNASSIGNED, data_ready
        else:
            end, worker, _, start = best
            heapq.heapreplace(slots[worker], end)
        finish[tid] = end
        out.append(Slot(task_id=tid, worker=worker, start=start, finish=end))
        for child in dependents[tid]:
            unmet[child] -= 1
            if not unmet[child]:
                heapq.heappush(heap, (-rank[child], child))
    return out


def _reverse_topological(
    deps: Mapping[str, Sequence[str]], dependents: Mapping[str, Sequence[str]]
) -> list[str]:
    """Sinks first: every task after all the tasks that depend on it."""
    left = {tid: len(ds) for tid, ds in dependents.items()}
    stack = [tid for tid, n in left.items() if n == 0]
    order: list[str] = []
    while stack:
        tid = stack.pop()
        order.append(tid)
        for d in deps[tid]:
            left[d] -= 1
            if not left[d]:
                stack.append(d)
    return order


def plan_schedule(
    plan: Plan,
    analysis: PlanAnalysis,
    workers: Sequence[Worker],
    history: History,
    *,
    now: float = 0.0,
    finished: Sequence[Slot] = (),
    epoch: float | None = None,
) -> Schedule:
    """The planned schedule; when it misses the plan's deadline, the optional tasks to drop
    (lowest priority first, with what depends on them) until it fits; and each task's risk.
    After a re-plan, ``finished`` keeps the slots of the tasks already done and the rest is
    scheduled from ``now``."""
    deps = dependencies(plan)
    done = {s.task_id: s for s in finished}
    todo = [t for t in plan.tasks if t.id not in done]
    ready = {tid: s.finish for tid, s in done.items()}
    slots = [
        *done.values(),
        *list_schedule(todo, deps, workers, history, now=now, ready_at=ready, epoch=epoch),
    ]
    makespan = max((s.finish for s in slots), default=0.0)
    would_cut: list[str] = []
    if plan.deadline is not None and makespan > plan.deadline:
        kept = list(plan.tasks)
        dependents = {t.id: [c for c, ds in deps.items() if t.id in ds] for t in plan.tasks}
        optional = {t.id for t in plan.tasks if t.optional}
        for task in sorted(plan.tasks, key=lambda t: (t.priority, t.id)):
            below = downstream(dependents, task.id)
            if task.id not in optional or task.id in would_cut or not set(below) <= optional:
                continue
            would_cut += [task.id, *(t for t in below if t not in would_cut)]
            kept = [t for t in kept if t.id not in would_cut and t.id not in done]
            left = list_schedule(kept, deps, workers, history, now=now, ready_at=ready, epoch=epoch)
            end = max((s.finish for s in left), default=now)
            if end <= plan.deadline:
                break
    return Schedule(
        planned=slots,
        makespan=makespan,
        deadline=plan.deadline,
        meets_deadline=plan.deadline is None or makespan <= plan.deadline,
        would_cut=would_cut,
        risks=task_risks(plan, analysis, slots, workers, history),
    )


def task_risks(
    plan: Plan,
    analysis: PlanAnalysis,
    slots: Iterable[Slot],
    workers: Sequence[Worker],
    history: History,
) -> dict[str, TaskRisk]:
    """Risk = 1 - (1 - unreliability)(1 - tightness/2)(1 - spread/2): a task is safe when its
    best worker rarely fails, it has slack, and its duration is predictable. Critical-path and
    risky tasks get a backup: the fastest other able worker, then the most reliable."""
    planned = {s.task_id: s.worker for s in slots}
    out: dict[str, TaskRisk] = {}
    span = max(analysis.duration, 1e-9)
    able_for = able_workers(plan.tasks, workers)
    per_kind: dict[tuple[Any, ...], tuple[dict[str, float], list[Worker]]] = {}
    for task in plan.tasks:
        able = able_for[task.id]
        kind = (id(able), tuple(task.skills))  # once per kind of task, not once per task
        if kind not in per_kind:
            reliability = {w.name: _reliability(w, task, history) for w in able}
            # backup candidates, best first: fastest (for any effort > 0), then most reliable
            ranked = sorted(
                able,
                key=lambda w: (slowness(w, task.skills, history), -reliability[w.name], w.name),
            )
            per_kind[kind] = (reliability, ranked)
        reliability, ranked = per_kind[kind]
        unreliability = 1.0 - max(reliability.values(), default=0.0)
        timing = analysis.tasks[task.id]
        tightness = 1.0 if timing.critical else max(0.0, 1.0 - timing.slack / span)
        spreads = [
            st.spread
            for s in task.skills
            if (st := history.get(planned.get(task.id, ""), {}).get(s)) and st.spread is not None
        ]
        spread = min(1.0, max(spreads)) if spreads else 0.5
        score = 1.0 - (1.0 - unreliability) * (1.0 - tightness / 2) * (1.0 - spread / 2)
        backup = None
        if (timing.critical or score >= RISKY) and task.effort > 0:
            backup = next((w.name for w in ranked if w.name != planned.get(task.id)), None)
        elif timing.critical or score >= RISKY:
            others = [w for w in able if w.name != planned.get(task.id)]
            if others:
                backup = min(
                    others,
                    key=lambda w: (duration_on(task, w, history), -reliability[w.name], w.name),
                ).name
        out[task.id] = TaskRisk(
            score=round(score, 4),
            unreliability=round(unreliability, 4),
            tightness=round(tightness, 4),
            spread=round(spread, 4),
            backup=backup,
        )
    return out


def _reliability(worker: Worker, task: Task, history: History) -> float:
    seen = [history.get(worker.name, {}).get(s) for s in task.skills]
    return min((st.reliability if st else PRIOR_RELIABILITY for st in seen), default=0.0)


def actual_slots(attempts: Iterable[tuple[TaskResult, Review]], since: float) -> list[Slot]:
    """The recorded attempts as Gantt bars, in seconds from the start of execution."""
    return [
        Slot(
            task_id=r.task_id,
            worker=r.worker,
            start=round(r.started_at - since, 4),
            finish=round(r.finished_at - since, 4),
            attempt=r.attempt,
            verdict=v.verdict,
        )
        for r, v in attempts
    ]

"""Capability matching: score every (ready task, free worker) pair, then assign the ready set
jointly — the assignment with the highest total score over tasks × free worker slots
(``scipy.optimize.linear_sum_assignment``), never above a worker's capacity, never to a worker
that lacks a required skill at its level. Scoring is vectorised over all pairs with numpy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix, hstack, identity
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

if TYPE_CHECKING:
    from orchestrator_graph.models import Task
    from orchestrator_graph.workers import Worker

Objective = Literal["balanced", "quality", "cost"]
PARTS = ("skill", "quality", "load", "cost", "fairness", "speed", "urgency", "affinity")

# Weights of the score parts per objective; every part lies in [0, 1]. "speed" is the worker's
# measured pace relative to the fastest able worker (neutral while paces are unknown);
# "urgency" is the same pace, counted only for tasks the monitor made urgent (the run slipped);
# "affinity" is 1 for a worker in a region the task prefers (``Task.affinity``).
OBJECTIVES: dict[str, dict[str, float]] = {
    "balanced": {
        "skill": 0.35,
        "quality": 0.25,
        "load": 0.15,
        "cost": 0.15,
        "fairness": 0.10,
        "speed": 0.15,
        "urgency": 0.4,
        "affinity": 0.3,
    },
    "quality": {
        "skill": 0.40,
        "quality": 0.45,
        "load": 0.05,
        "cost": 0.00,
        "fairness": 0.10,
        "speed": 0.05,
        "urgency": 0.4,
        "affinity": 0.3,
    },
    "cost": {
        "skill": 0.20,
        "quality": 0.15,
        "load": 0.10,
        "cost": 0.50,
        "fairness": 0.05,
        "speed": 0.05,
        "urgency": 0.4,
        "affinity": 0.3,
    },
}
RETRY_PENALTY = 0.5  # a worker that already failed this task is the last resort
_INFEASIBLE = -1e9
_UNASSIGNED = 1e6
CHUNK = 256  # tasks assigned jointly at once; a larger batch goes chunk by chunk, best first


@dataclass
class Workforce:
    """The free part of the team, as arrays over W workers and S skills."""

    names: list[str]
    skills: list[str]
    levels: np.ndarray  # W×S, 0 = lacks the skill
    quality: np.ndarray  # W×S, quality history in [0, 1] (0.5 with no history)
    capacity: np.ndarray  # W
    load: np.ndarray  # W, tasks running now
    cost: np.ndarray  # W, cost per task
    assigned: np.ndarray  # W, tasks given so far in this run (for fairness)
    pace: np.ndarray | None = None  # W×S, effort units per second (measured, else declared)
    regions: list[str] = field(default_factory=list)  # W

    @property
    def free(self) -> np.ndarray:
        return np.maximum(self.capacity - self.load, 0).astype(int)


@dataclass
class Demand:
    """T ready tasks: the level each needs in each skill (NaN = skill not needed)."""

    ids: list[str]
    required: np.ndarray  # T×S
    failed_on: list[set[int]] = field(default_factory=list)  # per task: workers that failed it
    excluded: list[set[int]] = field(default_factory=list)  # per task: workers it may not use
    urgent: np.ndarray | None = None  # T bool: tasks that prefer the fastest worker
    affinity: np.ndarray | None = None  # T×W: 1 where the worker is in a region it prefers


@dataclass
class Scores:
    total: np.ndarray  # T×W
    feasible: np.ndarray  # T×W bool
    parts: dict[str, np.ndarray]  # each T×W or broadcastable to it


@dataclass(frozen=True)
class Assignment:
    task: str
    worker: str
    score: float
    parts: dict[str, float]
    runner_up: str | None
    runner_up_score: float | None


def score(
    demand: Demand,
    force: Workforce,
    objective: Objective = "balanced",
    weights: dict[str, float] | None = None,
    free: np.ndarray | None = None,
) -> Scores:
    """``weights`` overrides the objective's weights (each part's weight, see ``OBJECTIVES``);
    ``free`` the workers' free slots (default ``force.free``)."""
    weights = weights or OBJECTIVES[objective]
    t, w = len(demand.ids), len(force.names)
    needed = ~np.isnan(demand.required)
    n_needed = np.maximum(needed.sum(axis=1), 1)[:, None]
    feasible = np.ones((t, w), dtype=bool)
    skill = np.zeros((t, w), dtype=np.float32)
    quality = np.zeros((t, w), dtype=np.float32)
    for s in range(len(force.skills)):  # S is small; each step is one T_s × W operation
        rows = np.flatnonzero(needed[:, s])
        if rows.size == 0:
            continue
        level = force.levels[:, s][None, :]
        feasible[rows] &= (level > 0) & (level >= demand.required[rows, s][:, None])
        skill[rows] += level
        quality[rows] += force.quality[:, s][None, :]
    skill /= n_needed
    quality /= n_needed
    with np.errstate(invalid="ignore", divide="ignore"):
        load = 1.0 - np.where(force.capacity > 0, force.load / force.capacity, 1.0)
    top_cost = float(force.cost.max()) if w and force.cost.max() > 0 else 1.0
    cost = 1.0 - force.cost / top_cost
    most = float(force.assigned.max()) if w and force.assigned.max() > 0 else 1.0
    fairness = 1.0 - force.assigned / most
    parts = {
        "skill": skill,
        "quality": quality,
        "load": load[None, :].astype(np.float32),
        "cost": cost[None, :].astype(np.float32),
        "fairness": fairness[None, :].astype(np.float32),
        "speed": np.zeros((1, w), dtype=np.float32),
        "urgency": np.zeros((1, w), dtype=np.float32),
        "affinity": np.zeros((1, w), dtype=np.float32),
    }
    per_worker = sum(weights[k] * parts[k] for k in ("load", "cost", "fairness"))
    total = weights["skill"] * skill
    total += weights["quality"] * quality
    total += per_worker
    if force.pace is not None:
        parts["speed"] = _speed(force, needed)
        total += weights["speed"] * parts["speed"]
        if demand.urgent is not None and demand.urgent.any():
            parts["urgency"] = parts["speed"] * demand.urgent[:, None]
            total += weights["urgency"] * parts["urgency"]
    if demand.affinity is not None:
        parts["affinity"] = demand.affinity.astype(np.float32)
        total += weights.get("affinity", 0.0) * parts["affinity"]
    for row, failed in enumerate(demand.failed_on):
        if failed:
            total[row, sorted(failed)] -= RETRY_PENALTY
    feasible &= ((force.free if free is None else free) > 0)[None, :]
    for row, banned in enumerate(demand.excluded):
        if banned:
            feasible[row, sorted(banned)] = False
    return Scores(total=total, feasible=feasible, parts=parts)


def _speed(force: Workforce, needed: np.ndarray) -> np.ndarray:
    """T×W: each worker's pace on the task's slowest skill relative to the fastest worker's
    (1 for everyone while all paces are equal)."""
    assert force.pace is not None
    t, w = needed.shape[0], len(force.names)
    if np.ptp(force.pace) == 0:
        return np.ones((t, w), dtype=np.float32)
    pace = np.where(needed[:, None, :], force.pace[None, :, :], np.inf).min(axis=2)
    pace[np.isinf(pace)] = 1.0  # a task that needs no skill
    top = pace.max(axis=1, keepdims=True)
    return (pace / np.where(top > 0, top, 1.0)).astype(np.float32)


def _slots(free: np.ndarray, tasks: int) -> np.ndarray:
    """Column -> worker: each worker repeated once per free slot (no task needs two slots of
    one worker, so more than ``tasks`` slots of one worker never help)."""
    return np.repeat(np.arange(free.size), np.minimum(free, tasks))


def assign_jointly(
    scores: Scores, free: np.ndarray, method: Literal["auto", "dense", "sparse"] = "auto"
) -> list[tuple[int, int]]:
    """(task row, worker column) pairs: as many tasks as can be placed, and among those the
    highest total score; tasks no free worker can do stay unassigned.

    Only each task's best ``T`` workers are offered: in an optimum no task needs a worker ranked
    below ``T`` for it, because one of its top ``T`` is still free. ``auto`` solves sparse
    (``min_weight_full_bipartite_matching`` over feasible pairs) when few pairs are feasible and
    there are slots for every task, else dense (``linear_sum_assignment``)."""
    t, w = scores.total.shape
    if t == 0 or w == 0:
        return []
    matrix = np.where(scores.feasible, scores.total, _INFEASIBLE)
    if t == 1:  # one task: its best feasible worker with a free slot (most rounds at run time)
        options = np.where(free > 0, matrix[0], _INFEASIBLE)
        best = int(options.argmax())
        return [(0, best)] if scores.feasible[0, best] and free[best] > 0 else []
    candidates = np.arange(w)
    if w > t:
        top = np.argpartition(-matrix, t - 1, axis=1)[:, :t]
        candidates = np.unique(top)
    columns = candidates[_slots(free[candidates], t)]
    if columns.size == 0:
        return []
    feasible = scores.feasible[:, columns]
    if method == "sparse" or (method == "auto" and columns.size >= t and feasible.mean() < 0.5):
        rows, cols = _sparse_assignment(scores.total[:, columns], feasible)
    else:
        rows, cols = linear_sum_assignment(matrix[:, columns], maximize=True)
    workers = columns[cols]
    keep = scores.feasible[rows, workers]
    return list(zip(rows[keep].tolist(), workers[keep].tolist(), strict=True))


def _sparse_assignment(total: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-cost full matching over the feasible pairs plus one 'unassigned' column per task.
    Costs ``2 - score`` are positive (scores lie in [-0.5, 1]); an unassigned task costs more
    than any real pair, so the most tasks are placed first, then the best total score."""
    t, k = feasible.shape
    r, c = np.nonzero(feasible)
    real = csr_matrix((2.0 - total[r, c].astype(np.float64), (r, c)), shape=(t, k))
    unassigned = identity(t, format="csr") * _UNASSIGNED
    rows, cols = min_weight_full_bipartite_matching(hstack([real, unassigned], format="csr"))
    placed = cols < k
    return rows[placed], cols[placed]


def assign_greedily(scores: Scores, free: np.ndarray) -> list[tuple[int, int]]:
    """The baseline: tasks in order, each takes its best feasible worker with a free slot."""
    left = free.copy()
    out = []
    for row in range(scores.total.shape[0]):
        options = np.where(scores.feasible[row] & (left > 0), scores.total[row], -np.inf)
        best = int(np.argmax(options)) if options.size else 0
        if options.size and np.isfinite(options[best]):
            out.append((row, best))
            left[best] -= 1
    return out


def explain(
    pairs: Sequence[tuple[int, int]],
    scores: Scores,
    demand: Demand,
    force: Workforce,
    objective: Objective = "balanced",
) -> list[Assignment]:
    """Why each task went where it did: the weighted score parts, and the best other feasible
    worker (the runner-up)."""
    if not pairs:
        return []
    weights = OBJECTIVES[objective]
    rows = np.array([r for r, _ in pairs])
    cols = np.array([c for _, c in pairs])
    shape = scores.total.shape
    parts = {  # a part is T×W or 1×W (the same for every task)
        k: (p[rows, cols] if p.shape[0] == shape[0] else p[0, cols]) * weights[k]
        for k in PARTS
        if (p := scores.parts[k]) is not None
    }
    others = np.where(scores.feasible[rows], scores.total[rows], -np.inf)
    others[np.arange(rows.size), cols] = -np.inf
    second = others.argmax(axis=1)
    second_score = others[np.arange(rows.size), second]
    return [
        Assignment(
            task=demand.ids[r],
            worker=force.names[c],
            score=round(float(scores.total[r, c]), 4),
            parts={k: round(float(parts[k][i]), 4) for k in PARTS},
            runner_up=force.names[second[i]] if np.isfinite(second_score[i]) else None,
            runner_up_score=round(float(second_score[i]), 4)
            if np.isfinite(second_score[i])
            else None,
        )
        for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True))
    ]


def jain(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one value takes everything."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))


def region_preferences(tasks: Sequence[Task], regions: Sequence[str]) -> np.ndarray | None:
    """T×W: 1 where a task prefers the worker's region; ``None`` when no task has affinity."""
    if not any(t.affinity for t in tasks):
        return None
    out = np.zeros((len(tasks), len(regions)), dtype=np.float32)
    for row, task in enumerate(tasks):
        if task.affinity:
            out[row] = [r in task.affinity for r in regions]
    return out


class TeamMatcher:
    """Joint assignment of a batch of ready tasks over the assignable workers, with the team as
    arrays over the plan's skills: the static part rebuilt only when the registry changes,
    quality and pace rows only for workers whose history moved (``forget``)."""

    def __init__(self, skills: Iterable[str], objective: Objective) -> None:
        self.skills = sorted(set(skills))
        self.column = {s: i for i, s in enumerate(self.skills)}
        self.objective = objective
        self._key: tuple[Any, ...] | None = None
        self._force: Workforce | None = None
        self._stale: set[str] = set()

    def forget(self, worker: str) -> None:
        self._stale.add(worker)

    def team(
        self,
        workers: Sequence[Worker],
        version: int,
        load: Callable[[str], int],
        given: Mapping[str, int],
        merit: Callable[[str, str], float],
        pace: Callable[[str, str], float],
    ) -> Workforce:
        key = (version, tuple(w.name for w in workers))
        if self._key != key or self._force is None:
            self._key, self._stale = key, {w.name for w in workers}
            self._force = Workforce(
                names=[w.name for w in workers],
                skills=self.skills,
                levels=np.array([[w.skills.get(s, 0.0) for s in self.skills] for w in workers]),
                quality=np.zeros((len(workers), len(self.skills))),
                capacity=np.array([w.capacity for w in workers]),
                load=np.zeros(len(workers), dtype=int),
                cost=np.array([w.cost for w in workers], dtype=float),
                assigned=np.zeros(len(workers)),
                pace=np.ones((len(workers), len(self.skills))),
                regions=[w.region for w in workers],
            )
        force = self._force
        assert force.pace is not None
        for row, name in enumerate(force.names):
            if name in self._stale:
                force.quality[row] = [merit(name, s) for s in self.skills]
                force.pace[row] = [1.0 / pace(name, s) for s in self.skills]
            force.load[row], force.assigned[row] = load(name), given.get(name, 0)
        self._stale = set()
        return force

    def match(
        self,
        force: Workforce,
        tasks: Sequence[Task],
        failed_on: Sequence[Iterable[str]],
        excluded: Sequence[Iterable[str]],
        urgent: Sequence[bool],
    ) -> list[Assignment]:
        """The batch (best-ranked first) jointly, ``CHUNK`` tasks at a time: within a chunk
        the best total score, across chunks greedy. A joint assignment of 10,000 tasks over
        10,000 workers would need gigabytes of scores and minutes of solving."""
        index = {name: i for i, name in enumerate(force.names)}
        free, out = force.free, []
        for start in range(0, len(tasks), CHUNK):
            end = start + CHUNK
            part = slice(start, end)
            chunk = self._demand(
                force, index, tasks[part], failed_on[part], excluded[part], urgent[part]
            )
            scores = score(chunk, force, self.objective, free=free)
            pairs = assign_jointly(scores, free)
            if end < len(tasks):
                free = free.copy()
                np.subtract.at(free, [c for _, c in pairs], 1)
            out += explain(pairs, scores, chunk, force, self.objective)
        return out

    def _demand(
        self,
        force: Workforce,
        index: Mapping[str, int],
        tasks: Sequence[Task],
        failed_on: Sequence[Iterable[str]],
        excluded: Sequence[Iterable[str]],
        urgent: Sequence[bool],
    ) -> Demand:
        required = np.full((len(tasks), len(self.skills)), np.nan)
        for row, task in enumerate(tasks):
            for skill in task.skills:
                required[row, self.column[skill]] = task.min_levels.get(skill, 0.0)
        banned = [{index[n] for n in names if n in index} for names in excluded]
        for row, task in enumerate(tasks):
            if task.residency:  # a hard constraint: never a worker outside its regions
                banned[row] |= {i for i, r in enumerate(force.regions) if r not in task.residency}
        return Demand(
            ids=[t.id for t in tasks],
            required=required,
            failed_on=[{index[n] for n in names if n in index} for names in failed_on],
            excluded=banned,
            urgent=np.array(urgent, dtype=bool),
            affinity=region_preferences(tasks, force.regions),
        )

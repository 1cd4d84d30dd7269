"""Joint assignment: constraints always hold, and it equals a brute-force optimum when small."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator_graph.matching import (
    Demand,
    Workforce,
    assign_greedily,
    assign_jointly,
    explain,
    jain,
    score,
)


@st.composite
def instances(draw, max_tasks=5, max_workers=4, skills=3):
    t = draw(st.integers(1, max_tasks))
    w = draw(st.integers(1, max_workers))
    level = st.sampled_from([0.0, 0.3, 0.6, 0.9])
    levels = np.array(
        draw(st.lists(st.lists(level, min_size=skills, max_size=skills), min_size=w, max_size=w))
    )
    need = st.sampled_from([np.nan, np.nan, 0.0, 0.5, 0.8])
    required = np.array(
        draw(st.lists(st.lists(need, min_size=skills, max_size=skills), min_size=t, max_size=t))
    )
    required[np.isnan(required).all(axis=1), 0] = 0.0  # every task needs something
    capacity = np.array(draw(st.lists(st.integers(1, 2), min_size=w, max_size=w)))
    load = np.array([draw(st.integers(0, int(c))) for c in capacity])
    force = Workforce(
        names=[f"w{i}" for i in range(w)],
        skills=[f"s{i}" for i in range(skills)],
        levels=levels,
        quality=np.array(
            draw(
                st.lists(
                    st.lists(st.floats(0, 1), min_size=skills, max_size=skills),
                    min_size=w,
                    max_size=w,
                )
            )
        ),
        capacity=capacity,
        load=load,
        cost=np.array(draw(st.lists(st.floats(0, 10), min_size=w, max_size=w))),
        assigned=np.array(draw(st.lists(st.integers(0, 5), min_size=w, max_size=w))),
    )
    failed = [set(draw(st.lists(st.integers(0, w - 1), max_size=2))) for _ in range(t)]
    objective = draw(st.sampled_from(["balanced", "quality", "cost"]))
    return (
        Demand(ids=[f"t{i}" for i in range(t)], required=required, failed_on=failed),
        force,
        objective,
    )


def brute_force(scores, free) -> tuple[int, float]:
    t, w = scores.total.shape
    best = (0, 0.0)
    for choice in itertools.product([None, *range(w)], repeat=t):
        used = np.bincount([c for c in choice if c is not None], minlength=w)
        if (used > free).any() or any(
            c is not None and not scores.feasible[r, c] for r, c in enumerate(choice)
        ):
            continue
        pairs = [(r, c) for r, c in enumerate(choice) if c is not None]
        value = (len(pairs), float(sum(scores.total[r, c] for r, c in pairs)))
        if value[0] > best[0] or (value[0] == best[0] and value[1] > best[1] + 1e-9):
            best = value
    return best


def check_constraints(pairs, demand, force, scores):
    used = np.bincount([c for _, c in pairs], minlength=len(force.names))
    assert (used <= force.free).all(), "capacity exceeded"
    assert len({r for r, _ in pairs}) == len(pairs), "a task assigned twice"
    for r, c in pairs:
        for s, need in enumerate(demand.required[r]):
            if not np.isnan(need):
                assert force.levels[c, s] > 0 and force.levels[c, s] >= need, "skill missing"
        assert scores.feasible[r, c]


@pytest.mark.parametrize("method", ["dense", "sparse", "auto"])
@settings(max_examples=200, deadline=None)
@given(instance=instances())
def test_joint_assignment_is_feasible_and_optimal(method, instance):
    demand, force, objective = instance
    scores = score(demand, force, objective)
    pairs = assign_jointly(scores, force.free, method)
    check_constraints(pairs, demand, force, scores)
    found = (len(pairs), float(sum(scores.total[r, c] for r, c in pairs)))
    best = brute_force(scores, force.free)
    assert found[0] == best[0]
    assert found[1] == pytest.approx(best[1], abs=1e-4)
    greedy = assign_greedily(scores, force.free)
    check_constraints(greedy, demand, force, scores)
    greedy_value = float(sum(scores.total[r, c] for r, c in greedy))
    assert (len(greedy), greedy_value) <= (found[0], found[1] + 1e-4)


@settings(max_examples=100, deadline=None)
@given(instances(max_tasks=30, max_workers=60))
def test_pruning_to_each_tasks_best_workers_keeps_constraints(instance):
    demand, force, objective = instance
    scores = score(demand, force, objective)
    check_constraints(assign_jointly(scores, force.free), demand, force, scores)


def test_reasons_and_runner_up():
    force = Workforce(
        names=["expert", "novice", "cheap"],
        skills=["sql"],
        levels=np.array([[0.9], [0.4], [0.6]]),
        quality=np.array([[0.9], [0.5], [0.5]]),
        capacity=np.array([1, 1, 1]),
        load=np.array([0, 0, 0]),
        cost=np.array([10.0, 1.0, 0.0]),
        assigned=np.array([0, 0, 0]),
    )
    demand = Demand(ids=["q"], required=np.array([[0.5]]))
    quality = explain(
        assign_jointly(s := score(demand, force, "quality"), force.free),
        s,
        demand,
        force,
        "quality",
    )
    assert quality[0].worker == "expert" and quality[0].runner_up == "cheap"
    assert set(quality[0].parts) == {
        "skill",
        "quality",
        "load",
        "cost",
        "fairness",
        "speed",
        "urgency",
        "affinity",
    }
    assert quality[0].parts["speed"] == 0  # no pace known: speed plays no part
    assert sum(quality[0].parts.values()) == pytest.approx(quality[0].score, abs=1e-3)
    cheap = explain(
        assign_jointly(s := score(demand, force, "cost"), force.free), s, demand, force, "cost"
    )
    assert cheap[0].worker == "cheap"  # 'novice' lacks the level: never chosen


def test_jain_index():
    assert jain([3, 3, 3]) == pytest.approx(1.0)
    assert jain([9, 0, 0]) == pytest.approx(1 / 3)


def test_measured_pace_steers_matching_and_counts_more_when_urgent():
    force = Workforce(
        names=["steady", "quick"],
        skills=["s"],
        levels=np.array([[0.9], [0.7]]),
        quality=np.array([[0.5], [0.5]]),
        capacity=np.array([1, 1]),
        load=np.array([0, 0]),
        cost=np.array([0.0, 0.0]),
        assigned=np.array([0, 0]),
        pace=np.array([[1.0], [3.0]]),  # quick does three units of estimate per second
    )
    calm = Demand(ids=["a"], required=np.array([[0.0]]))
    urgent = Demand(ids=["a"], required=np.array([[0.0]]), urgent=np.array([True]))
    margin = lambda d: float(np.diff(score(d, force).total[0])[0])  # noqa: E731
    assert margin(urgent) > margin(calm)  # urgency adds to the pull of speed
    assert margin(urgent) > 0  # and then the quicker, less skilled worker wins


def test_a_batch_larger_than_a_chunk_is_assigned_chunk_by_chunk_within_capacity():
    """A batch of thousands of tasks over thousands of workers is matched ``CHUNK`` tasks at a
    time (a joint 10,000 x 10,000 problem would need gigabytes): capacity still holds across
    chunks, every slot is used, and the best-ranked tasks (first in the batch) are placed."""
    from orchestrator_graph.matching import CHUNK, TeamMatcher
    from orchestrator_graph.models import Task
    from orchestrator_graph.workers import Worker

    async def noop(payload):
        return {}

    n_tasks, n_workers = 3 * CHUNK + 100, 2 * CHUNK  # more tasks than the 3 * CHUNK slots
    workers = [
        Worker(name=f"w{i:04d}", skills={"s": 0.5 + 0.4 * (i % 2)}, capacity=1 + i % 2, run=noop)
        for i in range(n_workers)
    ]
    tasks = [Task(id=f"t{i:04d}", title="t", skills=["s"]) for i in range(n_tasks)]
    matcher = TeamMatcher(["s"], "balanced")
    force = matcher.team(workers, 1, lambda name: 0, {}, lambda n, s: 0.5, lambda n, s: 1.0)
    chosen = matcher.match(force, tasks, [set()] * n_tasks, [set()] * n_tasks, [False] * n_tasks)
    per_worker: dict[str, int] = {}
    for a in chosen:
        per_worker[a.worker] = per_worker.get(a.worker, 0) + 1
    capacity = {w.name: w.capacity for w in workers}
    assert all(k <= capacity[name] for name, k in per_worker.items())
    slots = sum(capacity.values())
    assert len(chosen) == slots == 3 * CHUNK
    assert [a.task for a in chosen] == [t.id for t in tasks[:slots]]  # the best-ranked first

"""Matching benchmark: vectorised scoring + joint assignment (scipy) vs a greedy baseline, on the
same seeded instances. Prints time, total score and Jain's fairness index.

Run: python evals/bench_matching.py [--quick]"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from orchestrator_graph.matching import (
    OBJECTIVES,
    Demand,
    Workforce,
    assign_greedily,
    assign_jointly,
    jain,
    score,
)

SKILLS = 20
PROFILES = 25  # workers come in groups with identical skills: "equally fit"


def instance(tasks: int, workers: int, seed: int) -> tuple[Demand, Workforce, np.ndarray]:
    rng = np.random.default_rng(seed)
    profiles = np.zeros((PROFILES, SKILLS))
    for p in range(PROFILES):
        chosen = rng.choice(SKILLS, size=rng.integers(2, 7), replace=False)
        profiles[p, chosen] = rng.uniform(0.3, 1.0, size=chosen.size)
    group = rng.integers(0, PROFILES, size=workers)
    force = Workforce(
        names=[f"w{i}" for i in range(workers)],
        skills=[f"s{i}" for i in range(SKILLS)],
        levels=profiles[group],
        quality=profiles[group] * 0.8 + 0.1,
        capacity=rng.integers(1, 3, size=workers),
        load=np.zeros(workers, dtype=int),
        cost=rng.uniform(0, 10, size=workers).round(2),
        assigned=np.zeros(workers),
    )
    required = np.full((tasks, SKILLS), np.nan)
    for t in range(tasks):  # needs 1-2 skills of some profile, at a level that profile has
        p = profiles[rng.integers(0, PROFILES)]
        have = np.flatnonzero(p)
        chosen = rng.choice(have, size=min(have.size, rng.integers(1, 3)), replace=False)
        required[t, chosen] = np.floor(p[chosen] * 10) / 10 * rng.uniform(0.5, 1.0)
    return Demand(ids=[f"t{i}" for i in range(tasks)], required=required), force, group


def total_score(scores, pairs) -> float:
    return float(sum(scores.total[r, c] for r, c in pairs))


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000


def fairness(tasks: int, workers: int, seed: int, fairness_weight: float, rounds: int = 6) -> float:
    """Mean Jain index of tasks per worker within each group of equally fit workers (same
    skills, quality, capacity and cost), joint assignment, balanced weights."""
    demand, force, group = instance(tasks, workers, seed)
    force.cost = np.full(workers, 5.0)
    force.capacity = np.ones(workers, dtype=int)
    weights = {**OBJECTIVES["balanced"], "fairness": fairness_weight}
    for _ in range(rounds):
        pairs = assign_jointly(score(demand, force, weights=weights), force.free)
        for _, w in pairs:
            force.assigned[w] += 1
    per_group = [
        jain(force.assigned[group == g])
        for g in range(PROFILES)
        if (group == g).sum() > 1 and force.assigned[group == g].any()
    ]
    return float(np.mean(per_group))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    grid = (
        [(100, 100), (100, 1000), (1000, 1000)]
        if args.quick
        else [
            (100, 100),
            (100, 1000),
            (100, 10000),
            (1000, 100),
            (1000, 1000),
            (1000, 10000),
            (5000, 100),
            (5000, 1000),
            (5000, 10000),
        ]
    )
    print("\n## Matching: vectorised scoring + joint assignment vs greedy (seed 1, 20 skills)\n")
    print(
        "| ready tasks | workers | score ms | joint assign ms | total ms | greedy ms | "
        "assigned joint / greedy | total score joint | total score greedy | gain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tasks, workers in grid:
        demand, force, _ = instance(tasks, workers, seed=1)
        scores, t_score = timed(score, demand, force, "balanced")
        joint, t_joint = timed(assign_jointly, scores, force.free)
        greedy, t_greedy = timed(assign_greedily, scores, force.free)
        value = partial(total_score, scores)
        gain = (value(joint) / value(greedy) - 1) * 100 if value(greedy) else 0.0
        print(
            f"| {tasks} | {workers} | {t_score:.1f} | {t_joint:.1f} | {t_score + t_joint:.1f} | "
            f"{t_greedy:.1f} | {len(joint)} / {len(greedy)} | {value(joint):.2f} | "
            f"{value(greedy):.2f} | {gain:+.2f}% |",
            flush=True,
        )
    print("\n## Fairness among equally fit workers (Jain's index, 6 rounds, 1 = perfectly even)\n")
    print("| ready tasks per round | workers | with the fairness term (0.10) | without it |")
    print("|---|---|---|---|")
    for tasks, workers in [(100, 100), (300, 1000)]:
        print(
            f"| {tasks} | {workers} | {fairness(tasks, workers, 2, True):.3f} | "
            f"{fairness(tasks, workers, 2, False):.3f} |"
        )


if __name__ == "__main__":
    main()

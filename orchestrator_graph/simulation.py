"""Simulated workers and random plans with seeded latency and failures, for scenario tests,
benchmarks and dry runs. Every draw is a pure function of (seed, task, attempt), never of call
order, so a resumed run sees exactly what an uninterrupted one would."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
from pathlib import Path
from typing import Any

from orchestrator_graph.models import Criterion, Plan, Task
from orchestrator_graph.workers import Worker, WorkerInput


def draw(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def lognormal_effort(seed: int, task_id: str, mean: float, sigma: float = 0.8) -> float:
    mu = math.log(mean) - sigma**2 / 2
    return draw(seed, "effort", task_id).lognormvariate(mu, sigma)


def random_plan(
    n: int,
    *,
    seed: int,
    shape: str = "layered",
    mean_effort: float = 0.05,
    skills: tuple[str, ...] = ("sim",),
) -> Plan:
    """``layered``: random edges between consecutive layers; ``fork_join``: wide fan-out between
    joins; ``chain_mix``: several independent chains; ``independent``: no edges."""
    rng = draw(seed, "plan", shape, n)
    ids = [f"t{i:04d}" for i in range(n)]
    deps: dict[str, list[str]] = {tid: [] for tid in ids}
    if shape == "layered":
        width = max(1, round(math.sqrt(n)))
        layers = [ids[i : i + width] for i in range(0, n, width)]
        for prev, layer in zip(layers, layers[1:], strict=False):
            for tid in layer:
                deps[tid] = sorted(rng.sample(prev, k=min(len(prev), rng.randint(1, 3))))
    elif shape == "fork_join":
        width = max(2, n // 4)
        join = None
        for i, tid in enumerate(ids):
            if i % (width + 1) == 0:
                deps[tid] = [ids[j] for j in range(max(0, i - width), i)] if i else []
                join = tid
            else:
                deps[tid] = [join] if join else []
    elif shape == "chain_mix":
        chains = max(2, round(math.sqrt(n) / 2))
        for i, tid in enumerate(ids):
            if i >= chains:
                deps[tid] = [ids[i - chains]]
    elif shape != "independent":
        raise ValueError(f"unknown shape {shape!r}: layered, fork_join, chain_mix or independent")
    tasks = [
        Task(
            id=tid,
            title=f"simulated {tid}",
            skills=[rng.choice(skills)],
            depends_on=deps[tid],
            effort=lognormal_effort(seed, tid, mean_effort),
            priority=rng.randint(1, 5),
            acceptance=[Criterion(kind="has_keys", keys=["value"])],
        )
        for tid in ids
    ]
    return Plan(goal=f"simulated {shape} plan of {n} tasks", tasks=tasks, source="declared")


class SimulatedWork:
    """A worker body: sleeps the task's effort (scaled by ``speed``), fails a seeded share of
    attempts with defective output, and appends a line per execution to ``side_effects``."""

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        defect_rate: float = 0.0,
        side_effects: str | os.PathLike[str] | None = None,
        real_sleep: bool = True,
    ) -> None:
        self.seed, self.speed, self.defect_rate = seed, speed, defect_rate
        self.side_effects = Path(side_effects) if side_effects else None
        self.real_sleep = real_sleep

    async def __call__(self, payload: WorkerInput) -> dict[str, Any]:
        task = payload.task
        if self.real_sleep:
            await asyncio.sleep(task.effort / self.speed)
        if self.side_effects is not None:
            with self.side_effects.open("a", encoding="utf-8") as fh:
                fh.write(f"{payload.run_id} {task.id} {payload.attempt}\n")
        upstream = sum(v.get("value", 0) for v in payload.upstream.values() if isinstance(v, dict))
        value = (upstream + draw(self.seed, "value", task.id).randint(1, 100)) % 100_003
        if draw(self.seed, "defect", task.id, payload.attempt).random() < self.defect_rate:
            return {"defect": "missing value", "summary": f"{task.id} defective"}
        return {"value": value, "summary": f"{task.id} -> {value}"}


def simulated_team(
    n: int, *, skills: tuple[str, ...] = ("sim",), capacity: int = 1, **work: Any
) -> list[Worker]:
    return [
        Worker(
            name=f"sim{i:03d}", skills=list(skills), capacity=capacity, run=SimulatedWork(**work)
        )
        for i in range(n)
    ]


DEMO_DEFECT_RATE = 0.125


def simulated_workers(seed: int = 7) -> list[Worker]:
    """Three workers of different speed and price, all able to do ``sim`` tasks."""
    return [
        Worker(
            name=name,
            skills={"sim": level},
            capacity=1,
            cost=cost,
            speed=speed,
            run=SimulatedWork(seed=seed, speed=speed, defect_rate=DEMO_DEFECT_RATE),
        )
        for name, level, cost, speed in (
            ("sim-alpha", 0.9, 2.0, 1.0),
            ("sim-beta", 0.8, 1.0, 1.0),
            ("sim-gamma", 0.7, 0.5, 0.8),
        )
    ]

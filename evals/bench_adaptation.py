"""Adaptation on vs off, on the same seeded scenarios.

Each scenario is a random layered plan of required tasks plus a third as many optional, larger,
low-priority follow-ups (half with a cheaper version), run through the whole graph on simulated
workers (seeded latency and failures), with a deadline of 1.25x the planned makespan. One thing
goes wrong per scenario:

- slow_critical: the best-skilled worker (first choice for critical work) runs at a quarter of
  its declared speed
- failing_worker: the best-skilled worker fails every attempt
- offline_mid_run: the best-skilled worker goes offline at 30% of the planned makespan
- tight_deadline: nothing breaks, but the deadline is 0.85x the planned makespan
- healthy: nothing breaks and the deadline is 1.25x: adaptation must cost nothing here (no
  hedge, the same makespan)

Printed per scenario and mode: makespan (mean over seeds), deadline hits, tasks cut or
simplified, and the ETA error over the run (|elapsed + ETA - actual end| / actual end, mean over
status snapshots taken every 50 ms). The planned-vs-actual Gantt chart of slow_critical, seed
1, adaptation on, is written as an SVG.

Run: python evals/bench_adaptation.py [--seeds 3] [--tasks 30] [--out evals/out]"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Worker, create_orchestrator
from orchestrator_graph.charts import gantt_figure, to_html
from orchestrator_graph.dag import analyse_plan
from orchestrator_graph.models import Criterion, Plan, Schedule, Simplification, Slot, Task
from orchestrator_graph.registry import Registry
from orchestrator_graph.schedule import plan_schedule
from orchestrator_graph.simulation import SimulatedWork, draw, lognormal_effort, random_plan

SCENARIOS = ("slow_critical", "failing_worker", "offline_mid_run", "tight_deadline", "healthy")
WORKERS = 4


def scenario_plan(n: int, seed: int) -> Plan:
    """A layered plan of ``n`` required tasks plus ``n // 3`` optional follow-ups (larger, low
    priority, each after a random required task; half have a cheaper version)."""
    plan = random_plan(n, seed=seed, shape="layered", mean_effort=0.03)
    rng = draw(seed, "optional")
    extras = []
    for i in range(n // 3):
        effort = lognormal_effort(seed, f"x{i}", 0.08)
        cheaper = Simplification(effort=effort / 4, note="a quarter of the work")
        extras.append(
            Task(
                id=f"x{i:03d}",
                title=f"optional follow-up {i}",
                skills=["sim"],
                depends_on=[rng.choice(plan.tasks).id],
                effort=effort,
                priority=rng.randint(1, 2),
                optional=True,
                simplified=cheaper if i % 2 == 0 else None,
                acceptance=[Criterion(kind="has_keys", keys=["value"])],
            )
        )
    return plan.model_copy(update={"tasks": [*plan.tasks, *extras]})


def team(name: str, seed: int) -> list[Worker]:
    """Four workers; sim0 has the best skill level, so matching prefers it."""
    out = []
    for i in range(WORKERS):
        speed = 0.25 if name == "slow_critical" and i == 0 else 1.0
        defects = 1.0 if name == "failing_worker" and i == 0 else 0.0
        out.append(
            Worker(
                name=f"sim{i}",
                skills={"sim": 1.0 if i == 0 else 0.7},
                run=SimulatedWork(seed=seed, speed=speed, defect_rate=defects),
            )
        )
    return out


async def one(name: str, seed: int, n: int, adapt: bool) -> dict[str, Any]:
    workers = team(name, seed)
    plan = scenario_plan(n, seed)
    planned = plan_schedule(plan, analyse_plan(plan), workers, {}).makespan
    plan = plan.model_copy(
        update={"deadline": round(planned * (0.85 if name == "tight_deadline" else 1.25), 4)}
    )
    registry = Registry(workers)
    graph = create_orchestrator(workers=registry).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": f"{name}-{seed}-{adapt}"}}
    statuses: list[dict[str, Any]] = []
    hedges = 0

    async def consume() -> None:
        nonlocal hedges
        async for ev in graph.astream(
            {"request": name, "plan": plan.model_dump()},
            config,
            stream_mode="custom",
            context={
                "adapt": adapt,
                "use_memory": False,
                "worker_subgraph": False,
                "status_every": 0.05,
                "max_attempts": 3,
            },
        ):
            if ev.get("kind") == "status":
                statuses.append(ev["data"])
            hedges += ev.get("kind") == "reassigned" and "hedged" in ev.get("message", "")

    async def leave() -> None:
        if name == "offline_mid_run":
            await asyncio.sleep(0.3 * planned)
            registry.set_offline("sim0")

    await asyncio.gather(consume(), leave())
    report = (await graph.aget_state(config)).values["report"]
    end = max((s["finish"] for s in report["actual"]), default=0.0)
    errors = [
        abs(s["elapsed"] + s["eta"] - end) / end
        for s in statuses
        if s["eta"] is not None and s["elapsed"] < end and end > 0
    ]
    return {
        "makespan": end,
        "planned": planned,
        "hit": end <= plan.deadline,
        "cut": len(report["cut"]),
        "simplified": len(report["simplified"]),
        "eta_error": statistics.fmean(errors) if errors else 0.0,
        "status": report["status"],
        "hedges": hedges,
        "schedule": report["schedule"],
        "actual": report["actual"],
    }


async def main(seeds: int, n: int, out: Path) -> None:
    print(f"{n} + {n // 3} optional tasks, {WORKERS} simulated workers, seeds 1..{seeds}\n")
    print(
        "| scenario | adaptation | planned s | makespan s | deadline hits | cut | simplified "
        "| hedges | ETA error | statuses |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in SCENARIOS:
        for adapt in (False, True):
            runs = [await one(name, seed, n, adapt) for seed in range(1, seeds + 1)]
            print(
                f"| {name} | {'on' if adapt else 'off'} "
                f"| {statistics.fmean(r['planned'] for r in runs):.3f} "
                f"| {statistics.fmean(r['makespan'] for r in runs):.3f} "
                f"| {sum(r['hit'] for r in runs)}/{len(runs)} "
                f"| {sum(r['cut'] for r in runs)} | {sum(r['simplified'] for r in runs)} "
                f"| {sum(r['hedges'] for r in runs)} "
                f"| {statistics.fmean(r['eta_error'] for r in runs):.1%} "
                f"| {' '.join(r['status'] for r in runs)} |"
            )
            if name == "slow_critical" and adapt:
                first = runs[0]
                out.mkdir(parents=True, exist_ok=True)
                path = out / "gantt_slow_critical.html"
                figure = gantt_figure(
                    Schedule.model_validate(first["schedule"]).planned,
                    [Slot.model_validate(s) for s in first["actual"]],
                    title="slow_critical, seed 1, adaptation on: planned vs actual",
                )
                path.write_text(to_html(figure), encoding="utf-8")
                gantt = path
    print(f"\nGantt chart (planned vs actual): {gantt}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    asyncio.run(main(args.seeds, args.tasks, args.out))

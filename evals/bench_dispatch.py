"""Dispatch benchmark: this orchestrator vs a plain LangGraph Send-per-wave loop, same process,
same seeded plans, same worker count.

1. makespan / max(critical path, total work / W) on random DAGs with log-normal task times;
2. checkpoint bytes written per completed task at 10, 100, 1,000 tasks (SQLite saver);
3. orchestration overhead with instant workers vs a plain Send fan-out, same checkpointer.

Run: python evals/bench_dispatch.py [--quick]"""

from __future__ import annotations

import argparse
import asyncio
import operator
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from langgraph.types import Send
from typing_extensions import TypedDict

from orchestrator_graph import create_orchestrator
from orchestrator_graph.dag import analyse_plan
from orchestrator_graph.models import Plan
from orchestrator_graph.simulation import random_plan, simulated_team

REPEATS = 3


class WaveState(TypedDict):
    done: Annotated[list[str], operator.add]


def send_per_wave_graph(plan: Plan, *, sleep: bool):
    """The baseline: each superstep sends every ready task; the next wave waits for all of them."""
    deps = {t.id: set(t.depends_on) for t in plan.tasks}
    effort = {t.id: t.effort for t in plan.tasks}

    def dispatch(state: WaveState) -> dict:
        return {}

    def route(state: WaveState):
        done = set(state["done"])
        ready = [t for t in deps if t not in done and deps[t] <= done]
        return [Send("work", {"task": t}) for t in ready] or END

    async def work(arg: dict) -> dict:
        if sleep:
            await asyncio.sleep(effort[arg["task"]])
        return {"done": [arg["task"]]}

    g = StateGraph(WaveState)
    g.add_node("dispatch", dispatch)
    g.add_node("work", work)
    g.add_edge(START, "dispatch")
    g.add_conditional_edges("dispatch", route, ["work", END])
    g.add_edge("work", "dispatch")
    return g


def fan_out_graph(n: int):
    """Plain LangGraph: one Send per task, one superstep, nothing else."""

    def route(state: WaveState):
        return [Send("work", {"task": f"t{i}"}) for i in range(n)]

    async def work(arg: dict) -> dict:
        return {"done": [arg["task"]]}

    g = StateGraph(WaveState)
    g.add_node("work", work)
    g.add_conditional_edges(START, route, ["work"])
    return g


async def time_orchestrator(
    plan: Plan, workers: int, saver, store, *, sleep: bool, subgraph: bool = True
) -> float:
    team = simulated_team(workers, real_sleep=sleep)
    graph = create_orchestrator(workers=team).compile(checkpointer=saver, store=store)
    cfg = {"configurable": {"thread_id": f"o{time.time_ns()}"}, "recursion_limit": 10_000}
    t0 = time.perf_counter()
    out = await graph.ainvoke(
        {"request": plan.goal, "plan": plan.model_dump()},
        cfg,
        context={"use_memory": False, "worker_subgraph": subgraph},
    )
    elapsed = time.perf_counter() - t0
    assert out["report"]["status"] == "done", out["report"]["reason"]
    return elapsed


async def time_waves(plan: Plan, workers: int, saver) -> float:
    graph = send_per_wave_graph(plan, sleep=True).compile(checkpointer=saver)
    cfg = {
        "configurable": {"thread_id": f"w{time.time_ns()}"},
        "max_concurrency": workers,
        "recursion_limit": 10_000,
    }
    t0 = time.perf_counter()
    out = await graph.ainvoke({"done": []}, cfg)
    assert len(set(out["done"])) == len(plan.tasks)
    return time.perf_counter() - t0


async def makespan_table(quick: bool) -> None:
    workers = 4
    sizes = (20,) if quick else (20, 60)
    shapes = ("layered", "fork_join", "chain_mix")
    seeds = (1, 2) if quick else (1, 2, 3)
    print(
        f"\n## Makespan / lower bound (W={workers}, log-normal task times, mean 40 ms, sigma 0.8; "
        f"median of {REPEATS} runs after a warm-up)\n"
    )
    print(
        "| shape | tasks | seed | bound s | ours s | Send-per-wave s | ours ratio | waves ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    warm = random_plan(8, seed=0, shape="layered", mean_effort=0.005)  # untimed, both sides
    await time_orchestrator(warm, workers, InMemorySaver(), InMemoryStore(), sleep=True)
    await time_waves(warm, workers, InMemorySaver())
    ours_all, waves_all = [], []
    for shape in shapes:
        for n in sizes:
            for seed in seeds:
                plan = random_plan(n, seed=seed, shape=shape, mean_effort=0.04)
                a = analyse_plan(plan)
                bound = max(a.duration, a.total_work / workers)
                ours = statistics.median(
                    [
                        await time_orchestrator(
                            plan, workers, InMemorySaver(), InMemoryStore(), sleep=True
                        )
                        for _ in range(REPEATS)
                    ]
                )
                waves = statistics.median(
                    [await time_waves(plan, workers, InMemorySaver()) for _ in range(REPEATS)]
                )
                ours_all.append(ours / bound)
                waves_all.append(waves / bound)
                print(
                    f"| {shape} | {n} | {seed} | {bound:.3f} | {ours:.3f} | {waves:.3f} | "
                    f"{ours / bound:.2f} | {waves / bound:.2f} |"
                )
    print(
        f"| **mean** | | | | | | **{statistics.fmean(ours_all):.2f}** | "
        f"**{statistics.fmean(waves_all):.2f}** |"
    )


def sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        cp = db.execute(
            "select coalesce(sum(length(checkpoint) + length(metadata)), 0) from checkpoints"
        )
        wr = db.execute("select coalesce(sum(length(value)), 0) from writes")
        return cp.fetchone()[0] + wr.fetchone()[0]


async def overhead_run(n: int, tmp: str, mode: str) -> tuple[float, int, int]:
    """One run on fresh SQLite files: (seconds, checkpoint bytes, store bytes)."""
    plan = random_plan(n, seed=7, shape="independent", mean_effort=0.01)
    cp_path, st_path = Path(tmp, f"{mode}-{time.time_ns()}.db"), Path(tmp, f"s{time.time_ns()}.db")
    async with AsyncSqliteSaver.from_conn_string(str(cp_path)) as saver:
        if mode == "fan-out":
            graph = fan_out_graph(n).compile(checkpointer=saver)
            t0 = time.perf_counter()
            await graph.ainvoke({"done": []}, {"configurable": {"thread_id": "f"}})
            return time.perf_counter() - t0, sqlite_bytes(cp_path), 0
        async with AsyncSqliteStore.from_conn_string(str(st_path)) as store:
            await store.setup()
            elapsed = await time_orchestrator(
                plan, 8, saver, store, sleep=False, subgraph=mode == "subgraph"
            )
    with sqlite3.connect(st_path) as db:
        ledger = db.execute("select coalesce(sum(length(value)), 0) from store").fetchone()[0]
    return elapsed, sqlite_bytes(cp_path), ledger


async def bytes_and_overhead_table(quick: bool) -> None:
    sizes = (10, 100) if quick else (10, 100, 1000)
    print("\n## Checkpoint bytes per completed task, and overhead with instant workers (SQLite)")
    print("\nMedian of 3 runs. 'subgraph': each attempt runs as the worker subgraph (default);")
    print("'inline': the same steps without a subgraph (context worker_subgraph=False).\n")
    print(
        "| tasks | ours checkpoint B/task | ours ledger B/task | fan-out checkpoint B/task | "
        "fan-out s | subgraph s | subgraph / fan-out | inline s | inline / fan-out |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            runs = {
                m: [await overhead_run(n, tmp, m) for _ in range(3)]
                for m in ("fan-out", "subgraph", "inline")
            }
        med = {m: statistics.median(r[0] for r in rs) for m, rs in runs.items()}
        _, cp, ledger = runs["subgraph"][0]
        fan_cp = runs["fan-out"][0][1]
        print(
            f"| {n} | {cp / n:.0f} | {ledger / n:.0f} | {fan_cp / n:.0f} | {med['fan-out']:.3f} | "
            f"{med['subgraph']:.3f} | {med['subgraph'] / med['fan-out']:.2f} | "
            f"{med['inline']:.3f} | {med['inline'] / med['fan-out']:.2f} |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes and seeds")
    args = parser.parse_args()
    await makespan_table(args.quick)
    await bytes_and_overhead_table(args.quick)


if __name__ == "__main__":
    asyncio.run(main())

"""Dispatch benchmark: this orchestrator beside plain LangGraph and a bare asyncio scheduler, in
one process, on the same seeded plans.

1. whole-run makespan (the full ``ainvoke``: planning and synthesis included) / max(critical
   path, work / W), for ours, a Send-per-wave LangGraph loop and a bare asyncio dataflow
   scheduler (what is achievable), median of 3, on an idle machine and with two CPU-hog
   processes beside it (started and stopped here);
2. CPU ms per attempt with instant workers (default and inline mode) beside a plain Send
   fan-out, at 100, 1,000 and 5,000 tasks, wide and layered; peak RSS at 5,000 layered tasks;
3. checkpoint bytes per task (SQLite saver), ours and the fan-out;
4. ten consecutive 1,000-task runs in one process (a long-lived process must not slow down);
5. the fixed cost of a 20-task declared plan before its first task starts and after its last
   one ends.

Run: python evals/bench_dispatch.py [--quick] [--only makespan,cpu,bytes,repeat,fixed]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import operator
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
CPU_REPEATS = 5  # CPU time of one run varies by about 15 % on these shared machines
FIXED_RUNS = 10
SIZES = ((20, 4), (40, 8), (100, 8), (200, 16))  # (tasks, workers)
SHAPES = ("layered", "fork_join", "chain_mix")
MEAN_EFFORT = 0.04  # seconds, log-normal with sigma 0.8


class WaveState(TypedDict):
    done: Annotated[list[str], operator.add]


def send_per_wave_graph(plan: Plan, *, sleep: bool):
    """Plain LangGraph: each superstep sends every ready task; the next wave waits for all."""
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


async def dataflow(plan: Plan, workers: int) -> float:
    """The reference: a bare asyncio scheduler, W slots, a task starts when its dependencies are
    done, longest remaining path first (the least latest start: HEFT's upward rank on equal
    workers). No persistence, no QA: what is achievable."""
    analysis = analyse_plan(plan)
    rank = {t: a.latest_start for t, a in analysis.tasks.items()}
    deps = {t.id: set(t.depends_on) for t in plan.tasks}
    effort = {t.id: t.effort for t in plan.tasks}
    waiting = {t: len(d) for t, d in deps.items()}
    children: dict[str, list[str]] = {t: [] for t in deps}
    for t, ds in deps.items():
        for d in ds:
            children[d].append(t)
    ready = sorted((t for t, n in waiting.items() if not n), key=lambda t: rank[t])
    running: set[asyncio.Task] = set()
    t0 = time.perf_counter()

    async def work(tid: str) -> str:
        await asyncio.sleep(effort[tid])
        return tid

    while ready or running:
        while ready and len(running) < workers:
            running.add(asyncio.ensure_future(work(ready.pop(0))))
        done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for job in done:
            for child in children[job.result()]:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
        ready.sort(key=lambda t: rank[t])
    return time.perf_counter() - t0


async def ours(
    plan: Plan | dict,
    workers: int,
    saver=None,
    store=None,
    *,
    sleep=True,
    subgraph=None,
    freeze=True,
):
    """Seconds and CPU seconds of one whole ``ainvoke`` (``subgraph=None``: the default mode;
    ``freeze=False``: the collector's full passes left to walk the run's objects, see ``heap``;
    ``plan`` as a model, or as the data a caller would send)."""
    declared = plan.model_dump() if isinstance(plan, Plan) else plan
    os.environ["ORCHESTRATOR_GRAPH_GC_FREEZE"] = "1" if freeze else "0"
    team = simulated_team(workers, real_sleep=sleep)
    graph = create_orchestrator(workers=team).compile(
        checkpointer=saver or InMemorySaver(), store=store or InMemoryStore()
    )
    context = {"use_memory": False}
    if subgraph is not None:
        context["worker_subgraph"] = subgraph
    cfg = {"configurable": {"thread_id": f"o{time.time_ns()}"}, "recursion_limit": 10_000}
    t0, c0 = time.perf_counter(), time.process_time()
    out = await graph.ainvoke({"request": declared["goal"], "plan": declared}, cfg, context=context)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert out["report"]["status"] == "done", out["report"]["reason"]
    return elapsed, cpu


async def waves(plan: Plan, workers: int) -> float:
    graph = send_per_wave_graph(plan, sleep=True).compile(checkpointer=InMemorySaver())
    cfg = {
        "configurable": {"thread_id": f"w{time.time_ns()}"},
        "max_concurrency": workers,
        "recursion_limit": 10_000,
    }
    t0 = time.perf_counter()
    out = await graph.ainvoke({"done": []}, cfg)
    assert len(set(out["done"])) == len(plan.tasks)
    return time.perf_counter() - t0


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for hog in hogs:  # stopped by their own pids
            hog.kill()
            hog.wait()


async def makespan_rows(quick: bool) -> list[tuple]:
    rows = []
    sizes = SIZES[:2] if quick else SIZES
    for n, w in sizes:
        for shape in SHAPES:
            plan = random_plan(n, seed=n, shape=shape, mean_effort=MEAN_EFFORT)
            a = analyse_plan(plan)
            bound = max(a.duration, a.total_work / w)
            mine = statistics.median([(await ours(plan, w))[0] for _ in range(REPEATS)])
            send = statistics.median([await waves(plan, w) for _ in range(REPEATS)])
            bare = statistics.median([await dataflow(plan, w) for _ in range(REPEATS)])
            rows.append((n, w, shape, bound, mine / bound, send / bound, bare / bound))
    return rows


async def makespan_table(quick: bool) -> None:
    warm = random_plan(8, seed=0, shape="layered", mean_effort=0.005)
    await ours(warm, 4), await waves(warm, 4), await dataflow(warm, 4)  # untimed warm-up
    for label, hogs in (("idle", 0), ("two CPU-hog processes beside it", 2)):
        with cpu_hogs(hogs):
            rows = await makespan_rows(quick)
        print(f"\n## Whole-run makespan / lower bound, {label} (median of {REPEATS})\n")
        print("| tasks | W | shape | bound s | ours | Send-per-wave | asyncio dataflow |")
        print("|---|---|---|---|---|---|---|")
        for n, w, shape, bound, a, b, c in rows:
            print(f"| {n} | {w} | {shape} | {bound:.3f} | {a:.2f} | {b:.2f} | {c:.2f} |")
        for n, w in sorted({(r[0], r[1]) for r in rows}):
            part = [r for r in rows if r[:2] == (n, w)]
            means = [statistics.fmean(r[i] for r in part) for i in (4, 5, 6)]
            print(
                f"| **{n}** | **{w}** | **mean** | | **{means[0]:.2f}** | {means[1]:.2f} | "
                f"{means[2]:.2f} |"
            )


async def fan_out_cpu(n: int) -> float:
    graph = fan_out_graph(n).compile(checkpointer=InMemorySaver())
    c0 = time.process_time()
    await graph.ainvoke({"done": []}, {"configurable": {"thread_id": "f"}})
    return time.process_time() - c0


async def cpu_table(quick: bool) -> None:
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    print(
        "\n## CPU ms per attempt, instant workers "
        f"(in-memory saver and store; median of {CPU_REPEATS})\n"
    )
    print(
        "| tasks | shape | ours default | ours inline | ours subgraph "
        "| default, collector untouched | plain fan-out |"
    )
    print("|---|---|---|---|---|---|---|")
    await ours(random_plan(20, seed=0), 8, sleep=False)
    modes = (  # (column, worker_subgraph, collector's full passes kept off the run's objects)
        ("default", None, True),
        ("inline", False, True),
        ("subgraph", True, True),
        ("untouched", None, False),
    )
    cells = [(n, shape) for n in sizes for shape in ("independent", "layered")]
    plans = {cell: random_plan(cell[0], seed=7, shape=cell[1], mean_effort=0.01) for cell in cells}
    cpu: dict[tuple, list[float]] = {}
    # Each repeat takes every cell in turn: the machine's speed drifts over minutes, and
    # back-to-back repeats would put that drift between the sizes compared.
    for _ in range(CPU_REPEATS):
        for n, shape in cells:
            for mode, sub, freeze in modes:
                run = await ours(plans[(n, shape)], 8, sleep=False, subgraph=sub, freeze=freeze)
                cpu.setdefault((n, shape, mode), []).append(run[1])
            cpu.setdefault((n, shape, "fan-out"), []).append(await fan_out_cpu(n))
    for n, shape in cells:
        per = {m: statistics.median(cpu[(n, shape, m)]) * 1000 / n for m, *_ in modes}
        fan = statistics.median(cpu[(n, shape, "fan-out")]) * 1000 / n
        print(
            f"| {n} | {'wide' if shape == 'independent' else shape} | {per['default']:.2f} "
            f"| {per['inline']:.2f} | {per['subgraph']:.2f} | {per['untouched']:.2f} "
            f"| {fan:.2f} |"
        )
    if not quick:
        rss = {k: peak_rss(k, 5000) for k in ("ours", "fan-out")}
        print(
            f"\nPeak RSS at 5,000 layered tasks (a fresh process each): ours {rss['ours']} MB, "
            f"plain fan-out {rss['fan-out']} MB ({rss['ours'] / rss['fan-out']:.2f}x)"
        )


def peak_rss(kind: str, n: int) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--rss", kind, str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


async def rss_child(kind: str, n: int) -> None:
    if kind == "fan-out":
        await fan_out_cpu(n)
    else:  # the plan as data, as a caller sends it (no Plan model of ours beside the run's)
        plan = random_plan(n, seed=7, shape="layered", mean_effort=0.01).model_dump(mode="json")
        await ours(plan, 8, sleep=False)
    # This process's own peak (VmHWM): ru_maxrss after fork+exec keeps the parent's peak.
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(peak // 1024)


def sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        cp = db.execute(
            "select coalesce(sum(length(checkpoint) + length(metadata)), 0) from checkpoints"
        )
        wr = db.execute("select coalesce(sum(length(value)), 0) from writes")
        return cp.fetchone()[0] + wr.fetchone()[0]


async def bytes_table(quick: bool) -> None:
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    print("\n## Checkpoint bytes per task (SQLite saver; the ledger is in the store)\n")
    print("| tasks | ours checkpoints B/task | ours ledger B/task | plain fan-out B/task |")
    print("|---|---|---|---|")
    for n in sizes:
        plan = random_plan(n, seed=7, shape="layered", mean_effort=0.01)
        with tempfile.TemporaryDirectory() as tmp:
            cp, st, fan = Path(tmp, "cp.db"), Path(tmp, "st.db"), Path(tmp, "fan.db")
            async with (
                AsyncSqliteSaver.from_conn_string(str(cp)) as saver,
                AsyncSqliteStore.from_conn_string(str(st)) as store,
            ):
                await store.setup()
                await ours(plan, 8, saver, store, sleep=False)
            async with AsyncSqliteSaver.from_conn_string(str(fan)) as saver:
                graph = fan_out_graph(n).compile(checkpointer=saver)
                await graph.ainvoke({"done": []}, {"configurable": {"thread_id": "f"}})
            with sqlite3.connect(st) as db:
                ledger = db.execute("select coalesce(sum(length(value)), 0) from store").fetchone()
            print(
                f"| {n} | {sqlite_bytes(cp) / n:.0f} | {ledger[0] / n:.0f} | "
                f"{sqlite_bytes(fan) / n:.0f} |"
            )


async def repeat_table(quick: bool) -> None:
    runs = 4 if quick else 10
    plan = random_plan(1000, seed=3, shape="layered", mean_effort=0.01)
    await ours(plan, 8, sleep=False)  # untimed: the process's heap grows to its size once
    times = [(await ours(plan, 8, sleep=False))[1] for _ in range(runs)]
    print(f"\n## {runs} consecutive 1,000-task runs in one process (CPU seconds each)\n")
    print("| " + " | ".join(f"{t:.2f}" for t in times) + " |")
    print("|" + "---|" * runs)
    trend = statistics.median(times[-3:]) / statistics.median(times[:3])
    print(
        f"\nmedian of the last 3 / median of the first 3: {trend:.2f}; "
        f"last / first: {times[-1] / times[0]:.2f}; max / min: {max(times) / min(times):.2f}"
    )


async def fixed_table() -> None:
    plan = random_plan(20, seed=5, shape="layered", mean_effort=0.01)
    team = simulated_team(4, real_sleep=False)
    graph = create_orchestrator(workers=team).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    before, after = [], []
    for i in range(FIXED_RUNS + 1):
        cfg = {"configurable": {"thread_id": f"x{i}"}}
        t0, stamps = time.time(), []  # events carry their own time.time() stamps
        async for _ns, ev in graph.astream(
            {"request": "fixed cost", "plan": plan.model_dump()},
            cfg,
            stream_mode="custom",
            subgraphs=True,
            context={"use_memory": False},
        ):
            if ev["kind"] in ("task_started", "task_completed"):
                stamps.append((ev["kind"], ev["at"]))
        end = time.time()
        first = min(t for k, t in stamps if k == "task_started")
        last = max(t for k, t in stamps if k == "task_completed")
        if i:  # the first run warms up
            before.append((first - t0) * 1000)
            after.append((end - last) * 1000)
    print(f"\n## Fixed cost of a 20-task declared plan (ms, median of {FIXED_RUNS})\n")
    print(
        f"before the first task starts: {statistics.median(before):.1f} ms; "
        f"after the last one ends: {statistics.median(after):.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    parser.add_argument("--only", default="makespan,cpu,bytes,repeat,fixed")
    parser.add_argument("--rss", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        await rss_child(args.rss[0], int(args.rss[1]))
        return
    print(
        f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}"
    )
    parts = args.only.split(",")
    if "fixed" in parts:
        await fixed_table()
    if "repeat" in parts:
        await repeat_table(args.quick)
    if "cpu" in parts:
        await cpu_table(args.quick)
    if "bytes" in parts:
        await bytes_table(args.quick)
    if "makespan" in parts:
        await makespan_table(args.quick)


if __name__ == "__main__":
    asyncio.run(main())

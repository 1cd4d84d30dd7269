"""The learning curve: 30 related requests, memory on vs memory off, side by side.

The team has three workers per skill, all declaring the same skill level and speed. What they
really do is hidden from the orchestrator: per skill, one is slow and sloppy, one average, one
fast and careful (seeded defects drop the field the QA gates check; seeded sleeps stand for
their speed). They run the real table tools on the bundled sales data. Requests come from three
phrasings of the bundled job, grouping by region or by product, in a seeded order.

- memory on: one plan memory (Chroma, real embeddings) and one store (performance history)
  across the 30 runs.
- memory off: no plan memory and a fresh store for every run: nothing carries over.

Per block of 10 runs: planning model calls, model tokens, QA failures (rejected attempts) and
makespan. The curve is written as an SVG.

Run: python evals/learning_curve.py [--runs 30] [--seed 7] [--out evals/out]"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Worker, create_orchestrator, default_team
from orchestrator_graph.simulation import draw
from orchestrator_graph.tools import SAMPLES
from orchestrator_graph.workers import WorkerContext, WorkerInput

TEMPLATES = (
    "Collect the sales data from {a} and {b}, clean and transform it, analyse revenue by {g}, "
    "validate the rows, and write a report.",
    "Please collect the sales figures from {a} and {b}, clean and transform them, analyse "
    "revenue by {g}, validate the rows and write a report.",
    "Gather the sales data in {a} and {b}, clean and transform it, analyse the revenue by {g}, "
    "validate every row, then write a report.",
)
GROUPS = ("region", "product")
CHECKED = {  # the field each role's QA gate checks: a defect drops it
    "collector": "rows",
    "processor": "rows",
    "analyst": "statistics",
    "validator": "issues",
    "reporter": "markdown",
}
HIDDEN = {"a": (0.45, 0.5), "b": (0.15, 1.0), "c": (0.03, 2.0)}  # defect rate, speed
SECONDS_PER_EFFORT = 0.1  # per unit of estimated effort at speed 1
RUN = {"index": 0}  # which of the runs is going: the draws depend on it, not on the random run id


class Hidden:
    """The real worker, then its hidden nature: seeded sleep for its speed, seeded defects."""

    def __init__(
        self, name: str, role: str, run: Any, seed: int, defects: float, speed: float
    ) -> None:
        self.name, self.role, self.run, self.seed = name, role, run, seed
        self.defects, self.speed = defects, speed

    async def __call__(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        output = await self.run(payload, ctx)
        rng = draw(self.seed, self.name, RUN["index"], payload.task.id, payload.attempt)
        await asyncio.sleep(
            SECONDS_PER_EFFORT * payload.task.effort / self.speed * rng.uniform(0.9, 1.1)
        )
        if rng.random() < self.defects and isinstance(output, dict):
            output = copy.deepcopy(output)
            output.pop(CHECKED[self.role], None)
        return output


def team(seed: int) -> list[Worker]:
    out = []
    for member in default_team():
        for suffix, (defects, speed) in HIDDEN.items():
            out.append(
                Worker(
                    **{
                        **member.model_dump(),
                        "name": f"{member.name}-{suffix}",
                        "capacity": 1,
                        "run": Hidden(
                            f"{member.name}-{suffix}", member.name, member.run, seed, defects, speed
                        ),
                    }
                )
            )
    return out


def requests(n: int, seed: int) -> list[str]:
    rng = draw(seed, "requests")
    a, b = SAMPLES / "sales.csv", SAMPLES / "online_sales.json"
    return [rng.choice(TEMPLATES).format(a=a, b=b, g=rng.choice(GROUPS)) for _ in range(n)]


async def series(memory_on: bool, n: int, seed: int, out_dir: str) -> list[dict[str, Any]]:
    workers = team(seed)
    chroma = tempfile.mkdtemp(prefix="chroma-")
    store = InMemoryStore()
    rows = []
    for i, request in enumerate(requests(n, seed)):
        if not memory_on:
            store = InMemoryStore()  # nothing carries over
        graph = create_orchestrator(workers=workers, memory=chroma).compile(
            checkpointer=InMemorySaver(), store=store
        )
        started = time.perf_counter()
        RUN["index"] = i
        out = await graph.ainvoke(
            {"request": request},
            {"configurable": {"thread_id": f"{memory_on}-{i}"}},
            context={"use_memory": memory_on, "output_dir": out_dir},
        )
        report = out["report"]
        rows.append(
            {
                "planner_calls": report["model_calls"].get("planner", 0),
                "tokens": sum(report["tokens"].values()),
                "qa_failures": sum(s["verdict"] == "reject" for s in report["actual"]),
                "makespan": report["makespan"],
                "status": report["status"],
                "wall": time.perf_counter() - started,
            }
        )
    return rows


def blocks(rows: list[dict[str, Any]], size: int = 10) -> list[dict[str, float]]:
    out = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        out.append(
            {
                "runs": f"{start + 1}-{start + len(chunk)}",
                "planner_calls": sum(r["planner_calls"] for r in chunk),
                "tokens": sum(r["tokens"] for r in chunk),
                "qa_failures": sum(r["qa_failures"] for r in chunk),
                "makespan": statistics.fmean(r["makespan"] for r in chunk),
                "done": sum(r["status"] == "done" for r in chunk),
            }
        )
    return out


def change(first: float, last: float) -> str:
    return f"{(last - first) / first:+.0%}" if first else "n/a"


async def main(n: int, seed: int, out: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        on = await series(True, n, seed, work)
        off = await series(False, n, seed, work)
    print(f"{n} related requests, 15 workers of hidden quality and speed, seed {seed}\n")
    print("| memory | runs | planning calls | tokens | QA failures | makespan s | done |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in (("on", on), ("off", off)):
        for b in blocks(rows):
            print(
                f"| {name} | {b['runs']} | {b['planner_calls']} | {b['tokens']} "
                f"| {b['qa_failures']} | {b['makespan']:.3f} | {b['done']}/10 |"
            )
    print("\n| memory | planning calls | tokens | QA failures | makespan |")
    print("|---|---|---|---|---|")
    for name, rows in (("on", on), ("off", off)):
        first, last = blocks(rows)[0], blocks(rows)[-1]
        calls = change(first["planner_calls"], last["planner_calls"])
        print(
            f"| {name}: last 10 vs first 10 | {calls}"
            f" | {change(first['tokens'], last['tokens'])}"
            f" | {change(first['qa_failures'], last['qa_failures'])}"
            f" | {change(first['makespan'], last['makespan'])} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    from orchestrator_graph.charts import learning_curve_figure, to_html

    path = out / "learning_curve.html"
    figure = learning_curve_figure({"memory on": on, "memory off": off})
    path.write_text(to_html(figure), encoding="utf-8")
    print(f"\ncurve: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.seed, args.out))

"""Injected faults: how many defective results QA catches, and how many reach the final output.

The bundled job (collect two tables, clean, analyse by region, validate, report) runs with the
default team, planned by the offline planner with its default acceptance criteria. A wrapper
makes a seeded share of attempts defective, one defect type at a time:

- broken_schema: a required key is missing
- wrong_numbers: a reported row count is off (analysis, validation)
- missing_sections: a section of the report is gone (reporting)
- contradicting_facts: a reported fact disagrees with the other results (analysis, validation)

Per type: injected; caught by the QA gates (that attempt rejected, retried); settled at
synthesis (a contradicting fact outvoted); reaching the final output (a defective result
approved, or a wrong fact in the deliverable). Fixed seeds.

Run: python evals/bench_faults.py [--runs 30] [--rate 0.35]"""

from __future__ import annotations

import argparse
import asyncio
import copy
import tempfile
from collections import Counter
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Worker, create_orchestrator, default_team
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.simulation import draw
from orchestrator_graph.workers import WorkerContext, WorkerInput

APPLIES = {
    "broken_schema": {
        "collector": "rows",
        "processor": "rows",
        "analyst": "statistics",
        "validator": "issues",
        "reporter": "markdown",
    },
    "wrong_numbers": {"analyst": "rows", "validator": "checked_rows"},
    "missing_sections": {"reporter": "markdown"},
    "contradicting_facts": {"processor": "facts", "validator": "facts"},
}
TYPES = list(APPLIES)


class Faulty:
    """Runs the real worker, then (seeded by run seed, task and attempt) damages its output."""

    def __init__(self, name: str, run: Any, seed: int, rate: float, log: dict) -> None:
        self.name, self.run, self.seed, self.rate, self.log = name, run, seed, rate, log

    async def __call__(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        output = await self.run(payload, ctx)
        rng = draw(self.seed, payload.task.id, payload.attempt)
        kinds = [k for k in TYPES if self.name in APPLIES[k]]
        if not kinds or rng.random() >= self.rate:
            return output
        kind = rng.choice(kinds)
        output = copy.deepcopy(output)
        field = APPLIES[kind][self.name]
        if kind == "broken_schema":
            output.pop(field, None)
        elif kind == "wrong_numbers":
            output[field] += 7
            facts = output["facts"]  # consistent with itself, wrong vs upstream
            facts["rows_analysed" if "rows_analysed" in facts else "rows_after_cleaning"] += 7
        elif kind == "missing_sections":
            lines = output[field].splitlines()
            cut = next(i for i, line in enumerate(lines) if line.startswith("## "))
            end = next(
                (i for i in range(cut + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
            )
            output[field] = "\n".join(lines[:cut] + lines[end:])
        else:
            output["facts"]["rows_after_cleaning"] += 3
        self.log[(payload.run_id, payload.task.id, payload.attempt)] = kind
        return output


async def one_run(seed: int, rate: float, out_dir: str) -> tuple[Counter, Counter, Counter, str]:
    log: dict[tuple[str, str, int], str] = {}
    team = [
        Worker(**{**w.model_dump(), "run": Faulty(w.name, w.run, seed, rate, log)})
        for w in default_team()
    ]
    store = InMemoryStore()
    graph = create_orchestrator(workers=team).compile(checkpointer=InMemorySaver(), store=store)
    out = await graph.ainvoke(
        {"request": EXAMPLE},
        {"configurable": {"thread_id": str(seed)}},
        context={"use_memory": False, "output_dir": out_dir, "worker_subgraph": False},
    )
    report = out["report"]
    injected, caught, reached = Counter(), Counter(), Counter()
    approved = {r["result_key"] for r in report["tasks"].values() if r["result_key"]}
    facts = report["deliverable"]["facts"] if report["deliverable"] else {}
    truth = 160  # rows after cleaning in the bundled data
    for (_run, task_id, attempt), kind in log.items():
        injected[kind] += 1
        key = f"{task_id}#{attempt}"
        if key not in approved:
            caught[kind] += 1
        elif kind == "contradicting_facts" and facts.get("rows_after_cleaning") == truth:
            caught["settled:" + kind] += 1
        else:
            reached[kind] += 1
    return injected, caught, reached, report["status"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rate", type=float, default=0.35)
    args = parser.parse_args()
    injected, caught, reached, statuses = Counter(), Counter(), Counter(), Counter()
    with tempfile.TemporaryDirectory() as out_dir:
        for seed in range(args.runs):
            i, c, r, status = await one_run(seed, args.rate, out_dir)
            injected += i
            caught += c
            reached += r
            statuses[status] += 1
    print(
        f"\n## Injected faults: {args.runs} seeded runs of the bundled job, defect rate "
        f"{args.rate:.0%} per attempt, default team and default criteria\n"
    )
    print(
        "| defect type | injected | caught by QA gates | settled at synthesis | "
        "reached the final output | caught |"
    )
    print("|---|---|---|---|---|---|")
    for kind in TYPES:
        n, gates, vote, bad = (
            injected[kind],
            caught[kind],
            caught["settled:" + kind],
            reached[kind],
        )
        rate = f"{(gates + vote) / n:.1%}" if n else "-"
        print(f"| {kind} | {n} | {gates} | {vote} | {bad} | {rate} |")
    print(f"\nrun outcomes: {dict(statuses)}")


if __name__ == "__main__":
    asyncio.run(main())

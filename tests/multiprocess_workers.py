"""Workers for the multi-process tests, imported by CLI subprocesses (``run:`` in a roster):
each attempt sleeps ``inputs.sleep`` seconds (and until the file ``inputs.until`` exists, if
named: the test's signal to go on), and appends when it began and ended to the file
named by ``$OG_TEST_LOG`` (one JSON line each), so a test counts what really ran where."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from orchestrator_graph.workers import WorkerInput


def _log(**entry: Any) -> None:
    with open(os.environ["OG_TEST_LOG"], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


async def sleeper(payload: WorkerInput) -> dict[str, Any]:
    task = payload.task
    began = time.time()
    _log(event="began", task=task.id, at=began)
    await asyncio.sleep(float(task.inputs.get("sleep", 0.0)))
    until = task.inputs.get("until")
    while until and not os.path.exists(until):
        await asyncio.sleep(0.05)
    _log(event="ended", task=task.id, began=began, at=time.time())
    return {"value": task.id, "summary": f"{task.id} slept"}


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    try:
        with open(path) as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []


def named_sleeper(name: str):
    """A sleeper whose log entries name the worker (for per-worker checks)."""

    async def run(payload: WorkerInput) -> dict[str, Any]:
        task = payload.task
        began = time.time()
        await asyncio.sleep(float(task.inputs.get("sleep", 0.0)))
        _log(
            event="ended",
            task=task.id,
            worker=name,
            run=payload.run_id,
            began=began,
            at=time.time(),
        )
        return {"value": task.id, "summary": f"{task.id} slept"}

    return run


FLEET_TEAM = {"w1": 2, "w2": 1}  # worker -> capacity, shared by every orchestrator process


async def fleet(url: str, process: int, runs: int, tasks: int) -> None:
    """One orchestrator process: ``runs`` runs one after another on the shared PostgreSQL,
    each a plan of ``tasks`` independent sleeps, all for the same team."""
    from orchestrator_graph import Context, Worker, create_orchestrator
    from orchestrator_graph.persistence import open_persistence

    team = [
        Worker(name=n, skills={"sim": 1.0}, capacity=c, run=named_sleeper(n))
        for n, c in FLEET_TEAM.items()
    ]
    plan = {
        "tasks": [
            {"id": f"s{i}", "title": f"sleep {i}", "skills": ["sim"], "inputs": {"sleep": 0.03}}
            for i in range(tasks)
        ]
    }
    async with open_persistence(postgres_url=url) as (saver, store):
        graph = create_orchestrator(workers=team).compile(checkpointer=saver, store=store)
        for i in range(runs):
            out = await graph.ainvoke(
                {"request": f"sleeps {process}-{i}", "plan": plan},
                {"configurable": {"thread_id": f"fleet-{process}-{i}"}},
                context=Context(use_memory=False),
            )
            assert out["report"]["status"] == "done", out["report"]


if __name__ == "__main__":
    import sys

    asyncio.run(fleet(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))

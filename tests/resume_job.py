"""Crash-test job: ``python resume_job.py start|resume HOME POSTGRES_URL|- THREAD EFFECTS``.
Simulated workers append one line per execution to EFFECTS; the report is printed as JSON."""

import asyncio
import json
import sys

from orchestrator_graph import create_orchestrator
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.simulation import random_plan, simulated_team

PLAN = random_plan(12, seed=5, shape="layered", mean_effort=0.12)


async def main(mode: str, home: str, postgres: str, thread: str, effects: str) -> None:
    team = simulated_team(2, seed=5, side_effects=effects)
    async with open_persistence(home, None if postgres == "-" else postgres) as (saver, store):
        graph = create_orchestrator(workers=team).compile(checkpointer=saver, store=store)
        payload = {"request": "simulated job", "plan": PLAN.model_dump(mode="json")}
        out = await graph.ainvoke(
            payload if mode == "start" else None,
            {"configurable": {"thread_id": thread}},
            context={"use_memory": False},
            durability="sync",
        )
        print(json.dumps(out["report"]))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

"""A three-level organisation (parent -> regional leads -> teams) running a two-stage project,
for the hierarchy crash test: ``python tests/hierarchy_job.py HOME THREAD start|resume``.

Leaf workers append ``run task attempt`` per execution to ``HOME/effects``. Every event is
printed as a JSON line as it happens (``depth``: 0 the parent's own, 1 a regional child's, 2 a
team's), so the harness can kill the process at a chosen level; the last line is the report."""

from __future__ import annotations

import asyncio
import json
import sys

from orchestrator_graph import create_orchestrator
from orchestrator_graph.organisation import organisation
from orchestrator_graph.persistence import open_persistence

SHAPE = {"workers": 8, "tasks": 24, "regions": 2, "teams": 2, "stages": 2, "mean_effort": 0.15}


def tree_org(home: str):
    return organisation(3, side_effects=f"{home}/effects", **SHAPE)


async def main(home: str, thread: str, mode: str) -> None:
    org = tree_org(home)
    async with open_persistence(home) as (saver, store):
        graph = create_orchestrator(workers=org.workers).compile(checkpointer=saver, store=store)
        config = {"configurable": {"thread_id": thread}}
        payload = {
            "request": "two-stage regional project",
            "plan": org.plan.model_dump(mode="json"),
        }
        async for event in graph.astream(
            payload if mode == "start" else None,
            config,
            context={"use_memory": False, "adapt": False},  # no hedges: one execution each
            durability="sync",
            stream_mode="custom",
        ):
            data = event.get("data", {})
            line = {
                "kind": event["kind"],
                "task_id": event.get("task_id"),
                "depth": data.get("depth", 0),
            }
            print(json.dumps(line), flush=True)
        state = await graph.aget_state(config)
        print("REPORT " + json.dumps(state.values["report"]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

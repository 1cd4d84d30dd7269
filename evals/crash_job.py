"""A seeded simulated job for crash tests and the crash benchmark.

``python evals/crash_job.py start|resume HOME POSTGRES_URL|- THREAD EFFECTS [MODEL_DELAY]``

Simulated workers append one line per execution to EFFECTS. Progress events are printed as JSON
lines as they happen (so a harness can kill at a chosen point); the last line is ``REPORT {...}``.
MODEL_DELAY (seconds, default 0) slows every model call, and turns on a rubric review of every
result, so planning, QA and synthesis take time too and can be interrupted."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from orchestrator_graph import OfflineChatModel, create_orchestrator
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.simulation import random_plan, simulated_team

PLAN = random_plan(12, seed=5, shape="layered", mean_effort=0.12)


class SlowOfflineModel(OfflineChatModel):
    delay: float = 0.0

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any):
        await asyncio.sleep(self.delay)
        return self._generate(messages, stop=stop, **kwargs)


async def main(
    mode: str, home: str, postgres: str, thread: str, effects: str, delay: str = "0"
) -> None:
    team = simulated_team(2, seed=5, side_effects=effects)
    model = SlowOfflineModel(delay=float(delay))
    # The planner is asked (so planning takes time); this scripted answer is the seeded plan.
    model.responders["PlanDraft"] = lambda _prompt, _schema: PLAN.model_dump(
        mode="json", include={"goal", "tasks"}
    )
    context = {"use_memory": False, "review_mode": "always" if float(delay) else "auto"}
    async with open_persistence(home, None if postgres == "-" else postgres) as (saver, store):
        graph = create_orchestrator(workers=team, model=model).compile(
            checkpointer=saver, store=store
        )
        payload = {"request": "simulated job"}
        async for _ns, event in graph.astream(
            payload if mode == "start" else None,
            {"configurable": {"thread_id": thread}},
            context=context,
            durability="sync",
            stream_mode="custom",
            subgraphs=True,
        ):
            print(json.dumps({"kind": event["kind"], "task_id": event.get("task_id")}), flush=True)
        state = await graph.aget_state({"configurable": {"thread_id": thread}})
        print("REPORT " + json.dumps(state.values["report"]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

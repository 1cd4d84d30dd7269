"""A seeded simulated job for crash tests and the crash benchmark.

``python evals/crash_job.py start|resume HOME POSTGRES_URL|- THREAD EFFECTS [MODEL_DELAY]``
(or ``start()`` below). The helpers at the end are the harness's, shared by the crash test and
the crash benchmark.

Simulated workers append one line per execution to EFFECTS. Progress events are printed as JSON
lines as they happen (so a harness can kill at a chosen point); the last line is ``REPORT {...}``.
MODEL_DELAY (seconds, default 0) slows every model call, and turns on a rubric review of every
result, so planning, QA and synthesis take time too and can be interrupted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
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


# --- harness helpers ---------------------------------------------------------------------------


def start(mode: str, home: Path, pg: str, thread: str, delay: str = "0") -> subprocess.Popen:
    """Run this job in a new process; worker executions go to ``home / "effects"``."""
    return subprocess.Popen(
        [sys.executable, __file__, mode, str(home), pg, thread, str(home / "effects"), delay],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report_of(proc: subprocess.Popen) -> dict[str, Any]:
    out, err = proc.communicate(timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"job exited {proc.returncode}: {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1].removeprefix("REPORT "))


def executions(home: Path) -> list[tuple[str, ...]]:
    """(run id, task, attempt) per worker execution, in order."""
    path = home / "effects"
    return [tuple(x.split()) for x in path.read_text().splitlines()] if path.exists() else []


async def finished_attempts(home: Path, pg: str) -> set[tuple[str, ...]]:
    """(run id, task, attempt) of every attempt in the ledger."""
    async with open_persistence(home, None if pg == "-" else pg) as (_saver, store):
        items = await store.asearch(("orchestrator_graph", "runs"), limit=10_000)
    return {(i.namespace[2], *i.key.split("#")) for i in items}


def outcome(report: dict[str, Any]) -> dict[str, Any]:
    """What must equal an uninterrupted run's: status, deliverable, approved attempt per task."""
    return {
        "status": report["status"],
        "deliverable": report["deliverable"],
        "tasks": {t: (r["status"], r["result_key"]) for t, r in report["tasks"].items()},
    }


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

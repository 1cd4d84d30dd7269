"""Races in the dispatcher, reproduced deterministically on the whole graph."""

from __future__ import annotations

import asyncio

from test_workforce import run, task

from orchestrator_graph import Plan, Worker


async def test_a_hedge_and_its_original_finishing_in_one_wake_up_finish_the_task_once():
    """Found from outside: under CPU load a stalled attempt and its hedge finished in the same
    wake-up; the task was finished twice, its dependent unlocked twice, and started before its
    other dependency was approved (KeyError: ledger has no attempt '')."""
    gate = asyncio.Event()
    calls: list[str] = []

    async def held(payload):
        calls.append(payload.task.id)
        if payload.task.id == "a":
            if len(calls_for("a")) == 2:  # the hedge: release both at once
                gate.set()
            await gate.wait()
        elif payload.task.id == "c":
            await asyncio.sleep(0.4)  # b's other dependency is still running
        return {"value": 1, "summary": payload.task.id}

    def calls_for(tid: str) -> list[str]:
        return [c for c in calls if c == tid]

    team = [Worker(name=f"w{i}", skills=["s"], run=held) for i in range(3)]
    plan = Plan(
        tasks=[
            task("a", effort=0.01),
            task("c", effort=0.01),
            task("b", effort=0.01, depends_on=["a", "c"]),
        ]
    )
    report, events = await run(team, plan, context={"stall_after": 2.0})
    assert report["status"] == "done"
    assert len(calls_for("a")) == 2, "the stalled attempt was hedged"
    starts = {e["task_id"]: e["at"] for e in events if e["kind"] == "task_started"}
    done_c = next(e["at"] for e in events if e["kind"] == "task_completed" and e["task_id"] == "c")
    assert starts["b"] >= done_c, "b started before c was approved"
    completed = [e["task_id"] for e in events if e["kind"] == "task_completed"]
    assert completed.count("b") == 1

"""Races in the dispatcher, reproduced deterministically on the whole graph."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from test_workforce import run, task

from orchestrator_graph import Plan, Worker, create_orchestrator


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
            task("c", effort=0.4),  # expected as slow as it is: only a stalls
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


async def test_a_stalled_attempt_is_hedged_as_soon_as_a_slot_frees():
    """Found under CPU load: a stall seen while every worker was busy was never hedged later,
    so an attempt that would only finish beside its hedge waited for ever."""
    gate = asyncio.Event()
    calls: list[str] = []

    async def held(payload):
        calls.append(payload.task.id)
        if payload.task.id == "a":
            if calls.count("a") == 2:  # the hedge
                gate.set()
            await gate.wait()
        else:
            await asyncio.sleep(0.3)  # busy, as expected: the only other slot
        return {"value": 1, "summary": payload.task.id}

    team = [Worker(name=f"w{i}", skills=["s"], run=held) for i in range(2)]
    plan = Plan(tasks=[task("a", effort=0.01), task("c", effort=0.3)])
    report, events = await asyncio.wait_for(run(team, plan, context={"stall_after": 2.0}), 20)
    assert report["status"] == "done"
    assert calls.count("a") == 2
    hedged_at = [e["at"] for e in events if e["kind"] == "task_started" and e["task_id"] == "a"]
    c_done = next(e["at"] for e in events if e["kind"] == "task_completed" and e["task_id"] == "c")
    assert hedged_at[1] >= c_done  # it waited for the slot, and took it


def test_a_team_serves_runs_on_several_event_loops_one_after_another():
    """Found by the benchmark: the registry's change signal was an asyncio.Event bound to the
    first loop; a second ``asyncio.run`` with the same team got RuntimeError from it on every
    wait, and the dispatcher spun on the failing waits."""
    team = [Worker(name="w", skills=["s"], run=lambda payload: {"value": 1, "summary": "ok"})]
    graph = create_orchestrator(workers=team).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    plan = Plan(tasks=[task("a"), task("b", depends_on=["a"])])
    for i in range(2):
        out = asyncio.run(
            graph.ainvoke(
                {"request": "r", "plan": plan.model_dump()},
                {"configurable": {"thread_id": str(i)}},
                context={"use_memory": False},
            )
        )
        assert out["report"]["status"] == "done"


def test_the_registry_signals_changes_on_each_event_loop():
    from orchestrator_graph.registry import Registry

    registry = Registry([Worker(name="w", skills=["s"], run=lambda payload: {})])

    async def change_seen(name: str) -> None:
        waiting = asyncio.ensure_future(registry.wait_changed())
        await asyncio.sleep(0)
        registry.register(Worker(name=name, skills=["s"], run=lambda payload: {}))
        await asyncio.wait_for(waiting, 1.0)

    asyncio.run(change_seen("a"))
    asyncio.run(change_seen("b"))  # RuntimeError: bound to a different event loop, before


async def test_a_run_stopped_by_its_budget_frees_the_workers_it_held():
    """The registry is shared by every run of the process: a stopped dispatch must not keep
    its workers' slots."""
    from orchestrator_graph.registry import Registry

    async def slow(payload):
        await asyncio.sleep(0.2)
        return {"value": 1, "summary": "ok"}

    registry = Registry([Worker(name=f"w{i}", skills=["s"], run=slow) for i in range(2)])
    plan = Plan(tasks=[task(f"t{i}") for i in range(4)])
    report, _ = await run(registry, plan, context={"budget_seconds": 0.05})
    assert report["status"] == "stopped"
    assert [registry.load(w.name) for w in registry.workers()] == [0, 0]


async def test_a_round_looks_at_what_changed_not_at_every_running_attempt(monkeypatch):
    """Found by the scale benchmark: every dispatcher round read the clocks and status of every
    running attempt and worker, so a flat team of 1,000 spent more CPU per task than one of
    100. With N attempts running at once and finishing one by one, the reads must stay O(N)."""
    from orchestrator_graph.dispatch.board import WorkerClocks
    from orchestrator_graph.registry import Registry

    reads = {"note": 0, "status": 0}
    note, status = WorkerClocks.note, Registry.status

    def counted_note(self, run_id, run):
        reads["note"] += 1
        return note(self, run_id, run)

    def counted_status(self, name):
        reads["status"] += 1
        return status(self, name)

    monkeypatch.setattr(WorkerClocks, "note", counted_note)
    monkeypatch.setattr(Registry, "status", counted_status)
    n = 300

    async def spread(payload):  # finishing one by one over about 0.3 s: about n rounds
        await asyncio.sleep(0.001 * int(payload.task.id[1:]))
        return {"value": 1, "summary": payload.task.id}

    team = [Worker(name=f"w{i:03d}", skills=["s"], run=spread) for i in range(n)]
    plan = Plan(tasks=[task(f"t{i:03d}", effort=0.001 * i + 0.001) for i in range(n)])
    report, events = await run(team, plan)
    assert report["status"] == "done"
    rounds = len({e["at"] for e in events if e["kind"] == "task_completed"})
    assert rounds > n / 3, "the attempts finished in few rounds: the test measures nothing"
    assert reads["note"] < 5 * n, reads
    assert reads["status"] < 20 * n, reads  # a few whole-team passes: start, snapshots, end


async def test_snapshots_of_a_large_run_take_a_small_share_of_its_time(monkeypatch):
    """Found by the scale benchmark: a status snapshot covers every task and worker (25 ms at
    1,000 of each), and came every 0.5 s whatever it cost. A costly snapshot now comes less
    often: the snapshots take at most about 5 % of the run, even when asked for every 10 ms."""
    import time

    from orchestrator_graph.monitor import Monitor

    spent, snapshot = [0.0], Monitor.snapshot

    def timed(self, board, now, elapsed):
        began = time.perf_counter()
        try:
            return snapshot(self, board, now, elapsed)
        finally:
            spent[0] += time.perf_counter() - began

    monkeypatch.setattr(Monitor, "snapshot", timed)
    n = 1500

    async def spread(payload):
        await asyncio.sleep(0.0005 * int(payload.task.id[1:]))
        return {"value": 1, "summary": payload.task.id}

    team = [Worker(name=f"w{i:04d}", skills=["s"], run=spread) for i in range(n)]
    plan = Plan(tasks=[task(f"t{i:04d}", effort=0.0005 * i + 0.001) for i in range(n)])
    began = time.perf_counter()
    report, events = await run(team, plan, context={"status_every": 0.01})
    took = time.perf_counter() - began
    assert report["status"] == "done"
    assert sum(e["kind"] == "status" for e in events) >= 2  # at the start and at the end
    assert spent[0] < 0.15 * took, (spent[0], took)

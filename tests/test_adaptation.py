"""Scenarios with simulated workers (seeded latency and failures): the monitor finds what goes
wrong, the dispatcher adapts, the run ends (done, or stopped with its reason) and no finished
result is lost."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from test_workforce import run, sim, task

from orchestrator_graph import Plan, Worker, create_orchestrator
from orchestrator_graph.charts import gantt_figure
from orchestrator_graph.dag import analyse_plan
from orchestrator_graph.ledger import read_status
from orchestrator_graph.registry import Registry
from orchestrator_graph.schedule import list_schedule, plan_schedule
from orchestrator_graph.simulation import SimulatedWork


def chain(n: int, prefix: str = "c", effort: float = 0.05, **fields) -> list:
    return [
        task(f"{prefix}{i}", effort=effort, depends_on=[f"{prefix}{i - 1}"] if i else [], **fields)
        for i in range(n)
    ]


def nothing_lost(report: dict, events: list[dict]) -> None:
    """Every task that counts was approved from a recorded attempt, and each finished attempt
    was reported once."""
    for tid, rec in report["tasks"].items():
        if not rec["cut"] and not rec["replaced_by"] and rec["status"] == "approved":
            assert rec["result_key"].startswith(f"{tid}#")
    finished = [(e["task_id"], e["attempt"]) for e in events if e["kind"] == "task_completed"]
    assert len(finished) == len(set(finished))


def test_heft_puts_long_work_on_the_fast_worker_and_backs_up_the_critical_path():
    team = [sim("quick", ["s"], speed=4.0), sim("plain", ["s"])]
    plan = Plan(tasks=[task("big", effort=1.0), task("small", effort=0.1)])
    schedule = plan_schedule(plan, analyse_plan(plan), team, {})
    slots = {s.task_id: s for s in schedule.planned}
    assert slots["big"].worker == "quick" and slots["big"].finish == 0.25
    assert slots["small"].worker == "plain"
    assert schedule.makespan == 0.25
    assert schedule.risks["big"].backup == "plain"  # critical: it gets a backup
    assert schedule.risks["big"].score > schedule.risks["small"].score
    # Busy slots and unfinished dependencies push work later.
    later = list_schedule(
        plan.tasks, {"small": ["big"]}, team, {}, now=1.0, free_at={"quick": [2.0], "plain": [1]}
    )
    assert {s.task_id: s.start for s in later} == {"big": 1.0, "small": 2.0}


def test_a_deadline_the_plan_cannot_meet_is_flagged_with_what_to_cut():
    plan = Plan(
        deadline=0.3,
        tasks=[
            *chain(3, effort=0.1),
            task("nice", effort=0.5, optional=True, priority=1),
            task("nicer", effort=0.5, optional=True, priority=2),
        ],
    )
    schedule = plan_schedule(plan, analyse_plan(plan), [sim("one", ["s"])], {})
    assert not schedule.meets_deadline
    assert schedule.would_cut == ["nice", "nicer"]  # lowest priority first, until it fits (or not)


def test_the_gantt_chart_has_a_labelled_bar_per_slot(tmp_path):
    plan = Plan(tasks=chain(3))
    schedule = plan_schedule(plan, analyse_plan(plan), [sim("a", ["s"])], {})
    actual = [s.model_copy(update={"attempt": 1, "verdict": "approve"}) for s in schedule.planned]
    figure = gantt_figure(schedule.planned, actual, critical=["c0"], title="chain <3>")
    bars = [(t.name, label) for t in figure.data for label in t.text]
    assert sorted(bars) == sorted(
        [("planned", s.task_id) for s in schedule.planned]
        + [("approved", s.task_id) for s in schedule.planned]
    )
    assert figure.layout.title.text == "chain <3>"


async def test_a_slow_worker_on_the_critical_path_is_hedged_and_then_avoided():
    # "slow" looks best on paper (level 1.0) but runs at a tenth of its declared pace: far
    # enough behind that the hedge wins on a loaded machine too.
    slow = Worker(name="slow", skills={"s": 1.0}, run=SimulatedWork(speed=0.1))
    fast = [sim(f"fast{i}", {"s": 0.6}) for i in range(2)]
    plan = Plan(tasks=chain(4))
    report, events = await run([slow, *fast], plan)
    assert report["status"] == "done"
    kinds = [b["kind"] for b in report["bottlenecks"]]
    assert "stall" in kinds and "slip" in kinds
    hedged = [e for e in events if e["kind"] == "reassigned" and "hedged" in e["message"]]
    assert hedged and hedged[0]["task_id"] == "c0"
    # The hedge won, and once the slip was seen the critical path went to the fast workers.
    assert report["tasks"]["c0"]["worker"].startswith("fast")
    assert all(report["tasks"][f"c{i}"]["worker"].startswith("fast") for i in range(1, 4))
    assert {s["task_id"] for s in report["actual"]} == {"c0", "c1", "c2", "c3"}
    nothing_lost(report, events)


class SlowLedgerStore(InMemoryStore):
    """A real in-memory store whose ledger writes take 0.15 s, as on a busy database."""

    async def aput(self, namespace, key, value, *args, **kw):
        if "attempts" in namespace:
            await asyncio.sleep(0.15)
        return await super().aput(namespace, key, value, *args, **kw)


async def test_review_and_recording_after_the_worker_returned_are_not_a_stall():
    # Found from outside: instant workers on a slow store gave ~900 "stall" findings per
    # 1,000 tasks, because the stall clock kept running after the worker had returned.
    team = [sim(f"w{i}", ["s"]) for i in range(3)]
    plan = Plan(tasks=[task(f"t{i}", effort=0.001) for i in range(6)])
    report, events = await run(team, plan, store=SlowLedgerStore(), context={"stall_after": 2})
    assert report["status"] == "done"
    assert [b for b in report["bottlenecks"] if b["kind"] == "stall"] == []
    assert not [e for e in events if e["kind"] == "reassigned"]


async def test_without_adaptation_the_slow_worker_is_only_reported():
    slow = Worker(name="slow", skills={"s": 1.0}, run=SimulatedWork(speed=0.2))
    fast = [sim("fast0", {"s": 0.6})]
    report, events = await run([slow, *fast], Plan(tasks=chain(2)), context={"adapt": False})
    assert report["status"] == "done"
    assert report["tasks"]["c0"]["worker"] == "slow"
    assert (
        all(b["response"] == "none: adaptation is off" for b in report["bottlenecks"])
        and report["bottlenecks"]
    )
    assert not [e for e in events if e["kind"] == "reassigned"]


async def test_a_worker_that_fails_for_good_is_replaced_by_the_fallback_policy():
    broken = Worker(name="broken", skills={"s": 1.0}, run=SimulatedWork(defect_rate=1.0))
    steady = sim("steady", {"s": 0.5})
    plan = Plan(tasks=chain(2))
    report, events = await run([broken, steady], plan, context={"max_attempts": 1})
    assert report["status"] == "done"
    fallback = [d for d in report["decisions"] if d["by"] == "policy"]
    assert fallback and fallback[0]["action"] == "retry"
    assert "fallback retry_elsewhere: steady has not tried it" in fallback[0]["reason"]
    assert report["tasks"]["c0"]["worker"] == "steady"
    assert report["tasks"]["c0"]["avoid"] == ["broken"]
    nothing_lost(report, events)


async def test_a_worker_going_offline_mid_run_loses_its_task_and_the_status_shows_it():
    registry = Registry([sim("leaver", {"s": 0.9}), sim("stayer", {"s": 0.5})])
    store = InMemoryStore()
    plan = Plan(tasks=[task("long", effort=0.4), *chain(2, prefix="d", effort=0.05)])
    live = []

    async def leave() -> None:
        await asyncio.sleep(0.15)
        registry.set_offline("leaver")
        for _ in range(20):
            await asyncio.sleep(0.05)
            found = await store.asearch(("orchestrator_graph", "status"))
            live.extend(found)

    report, events = await run(registry, plan, store=store, during=leave)
    assert report["status"] == "done"
    assert any(e["kind"] == "reassigned" and "went offline" in e["message"] for e in events)
    assert {r["worker"] for r in report["tasks"].values()} == {"stayer"}
    snapshot = await read_status(store, report["run_id"])
    assert snapshot is not None and snapshot.counts == {"approved": 3}
    assert snapshot.workers["leaver"].status == "offline"
    assert live, "the status snapshot is readable from the store while the run goes"
    nothing_lost(report, events)


async def test_an_impossible_deadline_simplifies_then_cuts_optional_work():
    seen: list[dict] = []

    async def worker_fn(payload):
        seen.append({"task": payload.task.id, "inputs": dict(payload.task.inputs)})
        await asyncio.sleep(payload.task.effort)
        return {"value": 1, "summary": payload.task.id}

    plan = Plan(
        deadline=0.15,
        tasks=[
            *chain(3, effort=0.1),
            task(
                "chart",
                effort=0.3,
                priority=2,
                inputs={"detail": "full"},
                simplified={"inputs": {"detail": "summary"}, "effort": 0.01, "note": "no plots"},
            ),
            task("extra", effort=0.3, optional=True, priority=1),
            task("extra2", effort=0.3, optional=True, priority=1, depends_on=["extra"]),
        ],
    )
    report, events = await run([Worker(name="solo", skills=["s"], run=worker_fn)], plan)
    assert not report["schedule"]["meets_deadline"]
    assert report["simplified"] == ["chart"]
    assert {"task": "chart", "inputs": {"detail": "summary"}} in seen
    assert report["cut"] == ["extra", "extra2"]
    assert "dropped to meet the deadline" in report["tasks"]["extra"]["feedback"]
    assert any(b["kind"] == "deadline" for b in report["bottlenecks"])
    assert report["status"] == "done" and "cut to meet the deadline" in report["reason"]
    assert all(report["tasks"][f"c{i}"]["status"] == "approved" for i in range(3))
    nothing_lost(report, events)


async def test_a_run_that_would_loop_is_stopped_by_the_re_plan_loop_guard():
    # Every worker fails "fragile" the same way: retries, re-plans and retries again cannot help.
    fragile = [
        Worker(name=f"f{i}", skills=["fragile"], run=SimulatedWork(defect_rate=1.0))
        for i in range(2)
    ]
    plan = Plan(tasks=[task("ok", effort=0.01), task("bad", "fragile", effort=0.01)])
    report, events = await run(
        [sim("plain", ["s"]), *fragile],
        plan,
        context={"fallback": ["retry_elsewhere", "replan", "partial"], "max_attempts": 2},
    )
    assert report["status"] == "partial"
    replans = report["replans"]
    assert [r["applied"] for r in replans] == [True, False]
    assert replans[0]["removed"] == ["bad"] and replans[0]["added"] == ["bad~r1"]
    last = report["decisions"][-1]
    assert "loop guard: the re-plan repeats an earlier one" in last["reason"]
    assert report["tasks"]["bad"]["replaced_by"] == ["bad~r1"]
    assert report["tasks"]["ok"]["status"] == "approved"
    assert report["model_calls"]["planner"] == 2  # the two re-plans; the plan was declared
    nothing_lost(report, events)


async def test_a_spent_budget_stops_the_run_with_its_reason_in_the_report():
    plan = Plan(tasks=chain(3, effort=0.01))
    graph = create_orchestrator(workers=[sim("w", ["s"])]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "budget"}}
    out = await graph.ainvoke(
        {"request": "r", "plan": plan.model_dump()},
        config,
        context={"budget_attempts": 1, "use_memory": False},
    )
    assert out["report"]["status"] == "stopped"
    assert out["report"]["reason"].startswith("attempts budget spent: 1 of 1")
    assert out["report"]["tasks"]["c0"]["status"] == "approved"
    state = await graph.aget_state(config)
    assert state.next == ("budget_gate",)


async def test_a_retry_granted_after_the_loop_guard_really_runs_again():
    def twice_broken(payload):
        if payload.attempt <= 2:
            return {"defect": "missing value", "summary": "broken"}
        return {"value": 1, "summary": "fixed"}

    graph = create_orchestrator(workers=[Worker(name="w", skills=["s"], run=twice_broken)]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "guard"}, "recursion_limit": 20}
    context = {"loop_guard": 2, "max_attempts": 5, "escalation": "human", "use_memory": False}
    await graph.ainvoke(
        {"request": "r", "plan": Plan(tasks=[task("x")]).model_dump()}, config, context=context
    )
    (question,) = [i.value for t in (await graph.aget_state(config)).tasks for i in t.interrupts]
    assert question["reason"].startswith("loop guard: failed the same way 2 times")
    out = await graph.ainvoke(Command(resume="retry"), config, context=context)
    assert out["report"]["status"] == "done" and out["report"]["tasks"]["x"]["attempts"] == 3


async def test_a_task_waits_for_a_busy_worker_that_will_finish_it_much_sooner():
    quick = Worker(name="quick", skills=["s"], run=SimulatedWork(speed=4.0))
    slow = Worker(name="slow", skills=["s"], run=SimulatedWork(speed=0.5))
    store = InMemoryStore()
    plan = Plan(tasks=[task(f"t{i}", effort=0.2) for i in range(2)])
    first, _ = await run([quick, slow], plan, store=store)  # measures both: one task each
    assert sorted(r["worker"] for r in first["tasks"].values()) == ["quick", "slow"]
    second, events = await run([quick, slow], plan, store=store)
    # quick: 0.05 s a task, slow: 0.4 s. Waiting 0.05 s for quick beats 0.4 s on slow.
    assert [e["worker"] for e in events if e["kind"] == "task_started"] == ["quick", "quick"]
    assert second["status"] == "done" and second["makespan"] < 0.3

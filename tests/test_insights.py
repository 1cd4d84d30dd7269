"""The optimizer's answers, checked against real runs of simulated teams."""

from __future__ import annotations

from langgraph.store.memory import InMemoryStore
from test_workforce import run, sim, task

from orchestrator_graph import Plan
from orchestrator_graph.insights import insights, simulate
from orchestrator_graph.memory import MemoryHandle
from orchestrator_graph.registry import load_history


def fan_out_plan() -> Plan:
    """One collection, eight analyses that can all run at once, one report."""
    return Plan(
        tasks=[
            task("collect", "collect", effort=0.05),
            *[task(f"a{i}", "analysis", effort=0.25, depends_on=["collect"]) for i in range(8)],
            task("report", "report", effort=0.05, depends_on=[f"a{i}" for i in range(8)]),
        ]
    )


def team_with(analysts: int) -> list:
    return [
        sim("collector", ["collect"]),
        sim("reporter", ["report"]),
        *[sim(f"analyst{i}", ["analysis"]) for i in range(analysts)],
    ]


async def test_the_capacity_plan_holds_when_the_recommended_team_really_runs():
    store = InMemoryStore()
    team = team_with(1)
    first, _ = await run(team, fan_out_plan(), store=store, context={"use_memory": True})
    assert first["status"] == "done" and first["makespan"] > 2.0  # eight analyses in a row

    records = await MemoryHandle().call("records")
    history = await load_history(store, [w.name for w in team])
    target = 0.9
    found = insights(records, team, history, target=target)
    capacity = found.capacity
    assert capacity is not None and capacity.reached
    assert capacity.hires == {"analysis": 2}  # ceil(8 / 3) x 0.25 s + 0.1 s = 0.85 s
    assert capacity.simulated <= target < capacity.current
    assert any(r.startswith("add 2 analysis") for r in found.recommendations)

    # The recommended team, really run on the recorded plan: within the target (plus the
    # orchestration's own overhead); one analyst fewer is not.
    plan = records[0].plan
    recommended, _ = await run(team_with(3), plan, store=InMemoryStore())
    fewer, _ = await run(team_with(2), plan, store=InMemoryStore())
    assert recommended["status"] == fewer["status"] == "done"
    assert recommended["makespan"] <= target * 1.15 < fewer["makespan"]


def test_skill_gaps_load_and_idle_workers_are_reported():
    from orchestrator_graph.memory import RunRecord, TaskOutcome

    plan = Plan(tasks=[task("x", "analysis", effort=1.0), task("y", "translation", effort=1.0)])
    records = [
        RunRecord(
            run_id=f"r{i}",
            request="r",
            status="done",
            plan=plan,
            assignments={"x": "a1"},
            outcomes={
                "x": TaskOutcome(
                    skills=["analysis"], effort=1.0, worker="a1", status="approved", seconds=1.0
                )
            },
            bottlenecks=["queue"],
        )
        for i in range(3)
    ]
    team = [sim("a1", ["analysis"]), sim("a2", ["analysis"])]
    found = insights(records, team, {})
    gaps = {c.skill: c.gap for c in found.skills}
    assert gaps == {"analysis": "", "translation": "no worker has it"}
    assert found.bottlenecks == {"queue": 3}
    assert [w.tasks for w in found.load] == [3, 0] and found.fairness == 0.5
    assert "a2 got no task in 3 runs: its skills are covered better" in found.recommendations
    assert simulate([plan], team, {}) == 1.0  # translation: nobody, it takes its estimate

"""The dynamic workforce: registry, roster files, plugins, and runs whose team changes."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Plan, PlanValidationError, Task, Worker, create_orchestrator
from orchestrator_graph.registry import (
    Registry,
    discover_plugins,
    load_history,
    load_roster,
)
from orchestrator_graph.simulation import SimulatedWork


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sim(name: str, skills, *, capacity: int = 1, **fields) -> Worker:
    return Worker(name=name, skills=skills, capacity=capacity, run=SimulatedWork(), **fields)


def task(tid: str, skill: str = "s", effort: float = 0.01, **fields) -> Task:
    return Task(
        id=tid,
        title=tid,
        skills=[skill],
        effort=effort,
        acceptance=[{"kind": "has_keys", "keys": ["value"]}],
        **fields,
    )


async def run(registry_or_team, plan: Plan, *, store=None, context=None, during=None):
    graph = create_orchestrator(workers=registry_or_team).compile(
        checkpointer=InMemorySaver(), store=store or InMemoryStore()
    )
    events: list[dict] = []
    config = {"configurable": {"thread_id": "w"}}

    async def consume() -> None:
        async for _ns, ev in graph.astream(
            {"request": "r", "plan": plan.model_dump()},
            config,
            stream_mode="custom",
            subgraphs=True,
            context={"use_memory": False, **(context or {})},
        ):
            events.append(ev)

    if during is None:
        await consume()
    else:
        await asyncio.gather(consume(), during())
    return (await graph.aget_state(config)).values["report"], events


# --- registry -----------------------------------------------------------------------------------


def test_register_update_heartbeat_drain_remove():
    clock = Clock()
    reg = Registry([sim("a", {"s": 0.5}, heartbeat_timeout=10)], clock=clock)
    reg.register(sim("b", ["s", "t"]))
    with pytest.raises(ValueError, match="'a' is registered already"):
        reg.register(sim("a", ["s"]))
    assert {w.name for w in reg.assignable()} == {"a", "b"}
    assert reg.skills() == {"s": 1.0, "t": 1.0}

    reg.update("a", skills={"s": 0.9}, capacity=3)
    assert reg.get("a").skills == {"s": 0.9} and reg.get("a").capacity == 3
    with pytest.raises(ValueError, match="update of worker 'a'.*capacity"):
        reg.update("a", capacity=0)

    clock.now += 11  # heartbeat lapsed
    assert reg.status("a") == "offline" and reg.gone({"a", "b"}) == {"a"}
    reg.heartbeat("a")
    assert reg.status("a") == "available"

    reg.occupy("b")  # b has capacity 1: now busy, still a candidate for matching
    assert reg.status("b") == "busy" and "b" in {w.name for w in reg.assignable()}
    reg.release("b")
    assert reg.status("b") == "available"

    reg.drain("b")
    assert [w.name for w in reg.assignable()] == ["a"] and reg.status("b") == "draining"
    version = reg.version
    reg.remove("b")
    assert reg.version > version and reg.get("b") is None and reg.gone({"b"}) == {"b"}
    with pytest.raises(KeyError, match="no worker named 'zed' \\(registered: a\\)"):
        reg.heartbeat("zed")


# --- roster files and plugins ------------------------------------------------------------------


def test_roster_file_yaml_and_json(tmp_path):
    (tmp_path / "team.yaml").write_text(
        textwrap.dedent("""
        workers:
          - name: analyst-2
            skills: {analysis: 0.8}
            capacity: 2
            cost: 1.5
            region: eu-west
            run: orchestrator_graph.team:analyse
          - name: remote-analyst
            skills: [analysis]
            remote: {url: "http://127.0.0.1:2999", graph: table_analyst}
    """)
    )
    local, remote = load_roster(tmp_path / "team.yaml")
    assert local.skills == {"analysis": 0.8} and local.region == "eu-west" and local.capacity == 2
    assert type(remote.run).__name__ == "RemoteGraph"
    (tmp_path / "team.json").write_text(
        '{"workers": [{"name": "x", "skills": ["s"], "run": "orchestrator_graph.team:collect"}]}'
    )
    assert [w.name for w in load_roster(tmp_path / "team.json")] == ["x"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            '{"name": "a", "run": "orchestrator_graph.team:analyse"}',
            r"worker #1 \('a'\): skills: Field required",
        ),
        (
            '{"name": "b", "skills": {"s": 1.5}, "run": "orchestrator_graph.team:analyse"}',
            "outside \\[0, 1\\]",
        ),
        ('{"name": "c", "skills": ["s"]}', "give exactly one of 'run'"),
        ('{"name": "d", "skills": ["s"], "run": "orchestrator_graph.team:nope"}', "cannot import"),
        ('{"name": "e", "skills": ["s"], "run": "x:y", "colour": "red"}', "colour: Extra inputs"),
    ],
)
def test_roster_errors_name_the_entry_and_field(tmp_path, entry, message):
    path = tmp_path / "bad.json"
    path.write_text('{"workers": [' + entry + "]}")
    with pytest.raises(ValueError, match=message) as info:
        load_roster(path)
    assert str(path) in str(info.value)


def test_workers_from_an_installed_plugin(tmp_path, monkeypatch):
    (tmp_path / "acme_workers.py").write_text(
        textwrap.dedent("""
        from orchestrator_graph import Worker
        def translate(payload):
            return {"value": 1, "summary": "translated"}
        def team():
            return [Worker(name="acme-translator", skills=["translation"], run=translate)]
    """)
    )
    dist = tmp_path / "acme_workers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-workers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[orchestrator_graph.workers]\nacme = acme_workers:team\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    found = discover_plugins()
    assert [w.name for w in found] == ["acme-translator"]
    assert found[0].skills == {"translation": 1.0}
    sys.modules.pop("acme_workers", None)


# --- runs whose team changes -------------------------------------------------------------------


async def test_a_task_nobody_can_do_is_refused_at_planning_with_its_levels():
    plan = Plan(tasks=[task("x", min_levels={"s": 0.9})])
    with pytest.raises(PlanValidationError, match=r"task 'x' needs s at 0.9 \(best worker: 0.5\)"):
        await run([sim("a", {"s": 0.5})], plan)


async def test_a_task_whose_only_worker_left_is_escalated_and_nothing_is_lost():
    reg = Registry([sim("generalist", ["s"]), sim("specialist", ["rare"])])
    plan = Plan(
        tasks=[
            task("first", effort=0.2),
            task("late", "rare", depends_on=["first"]),
            task("other", effort=0.05),
        ]
    )

    async def specialist_leaves() -> None:
        await asyncio.sleep(0.05)
        reg.remove("specialist")

    report, events = await run(reg, plan, during=specialist_leaves)
    assert report["tasks"]["first"]["status"] == "approved"
    assert report["tasks"]["other"]["status"] == "approved"
    assert report["tasks"]["late"]["status"] == "failed"
    (escalated,) = [e for e in events if e["kind"] == "escalated"]
    assert escalated["message"] == "no registered worker has rare>=0"
    assert report["status"] == "partial" and report["decisions"][0]["task_id"] == "late"


async def test_more_ready_tasks_than_slots_wait_in_priority_order():
    tasks = [task(f"t{p}", effort=0.02, priority=p) for p in (2, 5, 1, 4, 3)]
    report, events = await run([sim("only", ["s"], capacity=2)], Plan(tasks=tasks))
    starts = [e["task_id"] for e in events if e["kind"] == "task_started"]
    assert starts == ["t5", "t4", "t3", "t2", "t1"]
    queued = {e["task_id"] for e in events if e["kind"] == "task_queued"}
    assert queued == {"t3", "t2", "t1"}
    assert report["status"] == "done"


async def test_a_worker_whose_heartbeat_lapses_mid_task_loses_it_to_another():
    reg = Registry([sim("flaky", {"s": 0.9}, heartbeat_timeout=0.15), sim("steady", {"s": 0.5})])
    store = InMemoryStore()
    report, events = await run(reg, Plan(tasks=[task("x", effort=0.6)]), store=store)
    assert report["status"] == "done"
    assert [e["worker"] for e in events if e["kind"] == "task_started"] == ["flaky", "steady"]
    assert any(e["kind"] == "reassigned" and "went offline" in e["message"] for e in events)
    attempts = await store.asearch(("orchestrator_graph", "runs"), limit=10)
    assert [(a.key, a.value["result"]["worker"]) for a in attempts] == [("x#1", "steady")]
    assert report["tasks"]["x"]["worker"] == "steady" and report["tasks"]["x"]["attempts"] == 1


async def test_a_worker_registered_mid_run_takes_pending_tasks():
    reg = Registry([sim("first", ["s"])])
    plan = Plan(tasks=[task(f"t{i}", effort=0.1) for i in range(6)])

    async def newcomer() -> None:
        await asyncio.sleep(0.05)
        reg.register(sim("newcomer", ["s"], capacity=2))

    report, _ = await run(reg, plan, during=newcomer)
    assert report["status"] == "done"
    assert report["tasks_per_worker"]["newcomer"] >= 3


async def test_a_skill_level_raised_mid_run_unblocks_a_queued_task():
    reg = Registry([sim("junior", {"s": 0.5}), sim("expert", {"s": 0.95}), sim("busy", ["t"])])
    reg.drain("expert")  # registered, so the plan is valid, but takes no new work
    plan = Plan(tasks=[task("hard", min_levels={"s": 0.8}), task("long", "t", effort=0.4)])

    async def training() -> None:
        await asyncio.sleep(0.1)
        reg.update("junior", skills={"s": 0.85})

    report, events = await run(reg, plan, during=training)
    assert report["status"] == "done"
    assert report["tasks"]["hard"]["worker"] == "junior"
    assert [e["task_id"] for e in events if e["kind"] == "task_queued"] == ["hard"]


async def test_objectives_and_reasons():
    team = [sim("pricey", {"s": 0.9}, cost=10.0), sim("cheap", {"s": 0.6}, cost=0.0)]
    plan = Plan(tasks=[task("x")])
    cost_first, events = await run(team, plan, context={"objective": "cost"})
    quality_first, _ = await run(team, plan, context={"objective": "quality"})
    assert cost_first["tasks"]["x"]["worker"] == "cheap"
    assert quality_first["tasks"]["x"]["worker"] == "pricey"
    why = cost_first["tasks"]["x"]["assignment"]
    assert why["objective"] == "cost" and why["runner_up"] == "pricey"
    assert why["score"] > why["runner_up_score"] and set(why["parts"]) >= {"skill", "cost"}
    (started,) = [e for e in events if e["kind"] == "task_started"]
    assert started["data"]["assignment"] == why


async def test_history_persists_and_steers_the_next_run():
    def broken(payload):
        return {"summary": "no value"}  # fails the has_keys criterion

    store = InMemoryStore()
    team = [
        Worker(name="a-sloppy", skills=["s"], capacity=4, run=broken),
        Worker(name="b-careful", skills=["s"], capacity=4, run=SimulatedWork()),
    ]
    plan = Plan(tasks=[task(f"t{i}") for i in range(3)])
    first, events = await run(team, plan, store=store, context={"objective": "quality"})
    assert first["status"] == "done"
    first_picks = [e["worker"] for e in events if e["kind"] == "task_started" and e["attempt"] == 1]
    assert "a-sloppy" in first_picks  # no history yet: an even split
    sloppy = (await load_history(store, ["a-sloppy"]))["a-sloppy"]["s"]
    assert sloppy.attempts >= 1 and sloppy.successes == 0

    second, events = await run(team, plan, store=store, context={"objective": "quality"})
    picks = [e["worker"] for e in events if e["kind"] == "task_started"]
    assert picks == ["b-careful"] * 3 and second["status"] == "done"


def test_fairness_is_reported():
    team = [sim(f"w{i}", ["s"]) for i in range(3)]
    report, _ = asyncio.run(run(team, Plan(tasks=[task(f"t{i}", effort=0.02) for i in range(9)])))
    assert sorted(report["tasks_per_worker"].values()) == [3, 3, 3]
    assert report["fairness"] == pytest.approx(1.0)


def test_durations_come_from_history_and_speed():
    from orchestrator_graph.registry import SkillStats, expected_durations

    fast = sim("fast", ["s"], speed=2.0)
    veteran = sim("veteran", ["s", "t"])
    tasks = [task("a", effort=1.0), task("b", "t", effort=4.0), task("c", "zzz", effort=3.0)]
    stats = SkillStats()
    stats.add(True, 1.0, 0.5, effort=2.0)  # measured: a quarter of the estimate's time
    durations = expected_durations(tasks, [fast, veteran], {"veteran": {"s": stats}})
    assert durations == {"a": 0.25, "b": 4.0, "c": 3.0}  # history beats speed beats effort
    stats.add(True, 1.0, 1.5, effort=2.0)
    assert stats.slowness == 0.5 and stats.spread == pytest.approx(0.5)
    assert expected_durations(tasks[:1], [fast, veteran], {})["a"] == 0.5  # effort / speed


async def test_the_plan_is_analysed_with_the_teams_speed():
    plan = Plan(tasks=[task("a", effort=1.0), task("b", effort=1.0, depends_on=["a"])])
    graph = create_orchestrator(workers=[sim("quick", ["s"], speed=4.0)]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "d"}}
    await graph.ainvoke(
        {"request": "r", "plan": plan.model_dump()},
        config,
        context={"use_memory": False},
        interrupt_before=["dispatcher"],
    )
    analysis = (await graph.aget_state(config)).values["analysis"]
    assert analysis["duration"] == 0.5  # two tasks of effort 1 at 4x speed

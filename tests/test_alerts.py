"""Each alert rule fires on a run made to trigger it (seeded simulated workers, declared plans)
and stays silent on a healthy run; the Prometheus rules file matches the package's rules and
only uses metrics the package exports; every alert has its runbook."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Plan, Task, Worker, create_orchestrator
from orchestrator_graph.alerts import RULES, RULES_FILE, Thresholds, evaluate
from orchestrator_graph.metrics import exposition
from orchestrator_graph.observe import LocalSource, RunView
from orchestrator_graph.simulation import SimulatedWork

ROOT = Path(__file__).resolve().parent.parent
TIGHT = Thresholds(
    stall_seconds=0.4,
    failing_share=0.5,
    failing_min_attempts=2,
    escalation_wait_seconds=600,
    error_rate=0.2,
    error_min_attempts=5,
)


def worker(name: str, *, defect: float = 0.0, speed: float = 1.0) -> Worker:
    return Worker(
        name=name,
        skills={"sim": 0.8},
        cost=1.0,
        run=SimulatedWork(seed=3, speed=speed, defect_rate=defect),
    )


async def broken(payload):  # a worker whose every attempt raises
    raise RuntimeError("the worker's backend is down")


def plan(n: int, effort: float = 0.02) -> dict:
    tasks = [
        Task(
            id=f"t{i}",
            title=f"task {i}",
            skills=["sim"],
            effort=effort,
            acceptance=[{"kind": "has_keys", "keys": ["value"]}],
        )
        for i in range(n)
    ]
    return Plan(tasks=tasks, source="declared").model_dump()


class Job:
    """One graph over an in-memory saver and store, and the views operations see of it."""

    def __init__(self, workers: list[Worker], memory: str | None = None) -> None:
        self.saver, self.store = InMemorySaver(), InMemoryStore()
        self.graph = create_orchestrator(workers=workers, memory=memory).compile(
            checkpointer=self.saver, store=self.store
        )

    async def run(self, n: int, thread: str = "t", effort: float = 0.02, **context) -> dict:
        context.setdefault("use_memory", False)
        return await self.graph.ainvoke(
            {"request": "alert scenario", "plan": plan(n, effort)},
            {"configurable": {"thread_id": thread}},
            context=context,
        )

    async def views(self) -> list[RunView]:
        return await LocalSource(self.saver, self.store).runs()


def names(alerts) -> list[str]:
    return sorted(a.name for a in alerts)


async def test_a_healthy_run_raises_no_alert(tmp_path):
    job = Job([worker("steady-1"), worker("steady-2")], memory=str(tmp_path / "chroma"))
    out = await job.run(6, use_memory=True)
    assert out["report"]["status"] == "done"
    views = await job.views()
    assert views[0].memory_ok is True
    assert evaluate(views, TIGHT) == []
    assert evaluate(views, TIGHT, now=views[0].updated_at + 3600) == []  # finished: never stalls


async def test_a_slow_worker_stalls_the_run_then_the_alert_clears():
    job = Job([worker("slowpoke", speed=0.02)])
    running = asyncio.create_task(job.run(1, effort=0.02))  # one second on this worker
    await asyncio.sleep(0.7)
    fired = evaluate(await job.views(), TIGHT)
    assert names(fired) == ["OrchestratorRunStalled"], fired
    assert fired[0].value > TIGHT.stall_seconds and fired[0].runbook.endswith(".md")
    assert evaluate(await job.views(), Thresholds()) == []  # the default waits 5 minutes
    await running
    assert evaluate(await job.views(), TIGHT) == []


async def test_a_failing_worker_and_a_broken_one():
    job = Job([worker("flaky", defect=1.0), worker("steady")])
    await job.run(6)
    fired = evaluate(await job.views(), TIGHT)
    assert names(fired) == ["OrchestratorWorkerFailing"], fired
    assert fired[0].worker == "flaky" and fired[0].value == 1.0

    job = Job([Worker(name="down", skills={"sim": 0.9}, run=broken), worker("steady")])
    await job.run(6)
    fired = evaluate(await job.views(), TIGHT)
    assert "OrchestratorHighErrorRate" in names(fired), fired
    assert {a.worker for a in fired if a.name == "OrchestratorWorkerFailing"} == {"down"}


async def test_a_spent_budget_and_an_unanswered_escalation():
    job = Job([worker("steady")])
    await job.run(4, budget_attempts=2)
    views = await job.views()
    assert views[0].state == "waiting" and [q.kind for q in views[0].waiting] == ["budget"]
    assert names(evaluate(views, TIGHT)) == ["OrchestratorBudgetExhausted"]

    job = Job([worker("flaky", defect=1.0)])
    await job.run(1, escalation="human", max_attempts=1)
    views = await job.views()
    (question,) = views[0].waiting
    assert question.kind == "human" and question.task_id == "t0"
    assert evaluate(views, TIGHT, now=question.since + 60) == []
    fired = evaluate(views, TIGHT, now=question.since + 601)
    assert names(fired) == ["OrchestratorEscalationWaiting"]


async def test_memory_unavailable(tmp_path):
    not_a_folder = tmp_path / "chroma"
    not_a_folder.write_text("this is a file, not a Chroma folder")
    job = Job([worker("steady")], memory=str(not_a_folder))
    out = await job.run(2, use_memory=True)
    note = out["report"]["memory"]
    assert "without memory" in note or "not remembered" in note, note
    fired = evaluate(await job.views(), TIGHT)
    assert names(fired) == ["OrchestratorMemoryUnavailable"]
    text = exposition(await job.views()).decode()
    assert "orchestrator_memory_available 0.0" in text


def test_the_rules_file_matches_the_package_and_every_alert_has_a_runbook():
    rules = yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == list(RULES)
    for rule in rules:
        assert (ROOT / rule["annotations"]["runbook_url"]).is_file(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
    used = {m for r in rules for m in re.findall(r"orchestrator_[a-z_]+", r["expr"])}
    exported = set(re.findall(r"^# TYPE (orchestrator_[a-z_]+)", exposition([]).decode(), re.M))
    exported |= {f"{name}_total" for name in exported}  # counters are sampled as _total
    assert used - exported <= {"orchestrator_memory_available"}, used - exported


@pytest.mark.parametrize("name", list(RULES))
def test_thresholds_come_from_the_environment(name, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_ALERT_STALL_SECONDS", "12.5")
    assert Thresholds.from_env().stall_seconds == 12.5
    assert (ROOT / "docs" / "runbooks" / f"{name}.md").is_file()

"""Regression tests for wrong answers found from outside: each failed before its fix."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from pydantic import ValidationError
from test_workforce import sim, task
from typer.testing import CliRunner

from orchestrator_graph import Plan, Task, TaskResult, Worker, create_orchestrator
from orchestrator_graph.cli import EXAMPLE, app
from orchestrator_graph.insights import hire, plan_capacity, simulate
from orchestrator_graph.ledger import THREAD_OWNERS
from orchestrator_graph.memory import RunRecord, TaskOutcome, failure_patterns
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.qa import run_gates

# --- resume and status after a crash between a node's writes and the next checkpoint --------


async def crash_after_writes(home: Path, checkpoint: int) -> None:
    """Run the bundled job and die when the ``checkpoint``-th checkpoint is written: the node
    before it has saved its writes, the checkpoint that would follow them is missing."""
    async with open_persistence(home) as (saver, store):
        graph = create_orchestrator(memory=str(home / "chroma")).compile(
            checkpointer=saver, store=store
        )
        original, count = saver.aput, itertools.count(1)

        async def dies(config, snapshot, metadata, versions):
            if next(count) == checkpoint:
                raise SystemError("killed")
            return await original(config, snapshot, metadata, versions)

        saver.aput = dies  # type: ignore[method-assign]
        await store.aput(THREAD_OWNERS, "t", {"pid": dead_pid(), "host": socket.gethostname()})
        with pytest.raises(SystemError):
            await graph.ainvoke(
                {"request": EXAMPLE}, {"configurable": {"thread_id": "t"}}, durability="sync"
            )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def cli(*args: str, home: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("checkpoint", [4, 5, 7])  # after planner, dispatcher, final review
def test_resume_finishes_a_thread_that_died_between_writes_and_checkpoint(tmp_path, checkpoint):
    asyncio.run(crash_after_writes(tmp_path, checkpoint))
    code, out, errors = cli("status", "t", "--json", home=tmp_path)
    status = json.loads(out)
    assert code == 0 and status["next"] == [] and status["status"] == "interrupted", errors
    code, out, errors = cli("resume", "t", "--json", home=tmp_path)
    assert code == 0, errors
    assert json.loads(out)["status"] == "done"


def test_resume_refuses_a_thread_its_process_still_runs(tmp_path):
    asyncio.run(crash_after_writes(tmp_path, 5))

    async def owned_by_this_process() -> None:
        async with open_persistence(tmp_path) as (_saver, store):
            await store.aput(THREAD_OWNERS, "t", {"pid": os.getpid(), "host": socket.gethostname()})

    asyncio.run(owned_by_this_process())
    assert json.loads(cli("status", "t", "--json", home=tmp_path)[1])["status"] == "running"
    code, _out, errors = cli("resume", "t", home=tmp_path)
    assert code == 2 and f"is running in process {os.getpid()}" in errors


def test_status_reads_the_live_snapshot_and_the_ledger(tmp_path):
    """Died after the dispatcher finished every task, before its checkpoint: the checkpoint
    says all pending, the live snapshot and the ledger say approved, one attempt each."""
    asyncio.run(crash_after_writes(tmp_path, 5))
    status = json.loads(cli("status", "t", "--json", home=tmp_path)[1])
    rows = status["tasks"]
    assert len(rows) == 6
    assert {r["status"] for r in rows.values()} == {"approved"}
    assert {r["attempts"] for r in rows.values()} == {1}
    text = cli("status", "t", home=tmp_path)[1]
    assert "thread t: interrupted" in text and "orchestrator-graph resume t" in text


# --- the final gate ---------------------------------------------------------------------------


async def run_plan(workers: list[Worker], plan: Plan, **context) -> dict:
    graph = create_orchestrator(workers=workers).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    values = await graph.ainvoke(
        {"request": "r", "plan": plan.model_dump()},
        {"configurable": {"thread_id": "1"}},
        context={"use_memory": False, "max_attempts": 1, **context},
    )
    return values["report"]


def broken(payload) -> dict:
    raise RuntimeError("always fails")


async def test_the_final_gate_rejects_a_run_with_no_approved_task():
    report = await run_plan(
        [Worker(name="w", skills=["s"], run=broken)],
        Plan(tasks=[Task(id="only", title="only", skills=["s"])]),
        fallback=["partial"],
    )
    gate = report["final_review"]
    assert report["tasks"]["only"]["status"] != "approved"
    assert gate["verdict"] == "reject"
    assert "no task was approved" in gate["feedback"]


async def test_non_ascii_task_ids_are_found_by_the_final_gate():
    def value(payload) -> dict:
        return {"value": 1, "summary": f"did {payload.task.id}"}

    report = await run_plan(
        [Worker(name="w", skills=["s"], run=value)],
        Plan(
            tasks=[
                Task(id="données", title="Collecter les données", skills=["s"]),
                Task(id="résumé", title="Résumer", skills=["s"], depends_on=["données"]),
            ]
        ),
    )
    assert report["status"] == "done", report["reason"]
    assert report["final_review"]["verdict"] == "approve", report["final_review"]["feedback"]


# --- default acceptance ------------------------------------------------------------------------


def test_an_empty_result_under_a_required_key_is_rejected():
    analyse = Task(
        id="analyse",
        title="Analyse",
        skills=["analysis"],
        acceptance=[{"kind": "has_keys", "keys": ["statistics", "issues"]}],
    )

    def gates(output: dict) -> list:
        result = TaskResult(task_id="analyse", attempt=1, worker="w", output=output)
        return [c for c in run_gates(analyse, result) if not c.passed]

    failed = gates({"statistics": {}, "issues": [], "summary": "nothing"})
    assert [c.name for c in failed] == ["has_keys:statistics,issues"]
    assert failed[0].detail == "empty keys: ['statistics']"
    assert gates({"statistics": {"n": 1}, "issues": []}) == []  # no issues found is an answer
    assert "missing keys: ['issues']" in gates({"statistics": {"n": 1}})[0].detail


# --- failure patterns ----------------------------------------------------------------------------


def test_a_run_both_recent_and_recalled_counts_once():
    record = RunRecord(
        run_id="r1",
        request="x",
        status="partial",
        plan=Plan(tasks=[Task(id="a", title="a", skills=["s"])]),
        outcomes={
            "a": TaskOutcome(
                skills=["s"],
                effort=1.0,
                status="failed",
                verdicts=[("w", "reject"), ("w", "approve")],
            )
        },
    )
    (pattern,) = failure_patterns([record, record])  # recent, then recalled
    assert (pattern.attempts, pattern.failures) == (2, 1)


# --- the capacity planner against brute force -----------------------------------------------


def brute_force(plans: list[Plan], team: list[Worker], target: float, most: int) -> int | None:
    """The fewest hires (the planner's own ``hire`` per skill) that meet the target."""
    skills = sorted({s for p in plans for t in p.tasks for s in t.skills})
    for total in range(most + 1):
        for counts in itertools.product(range(total + 1), repeat=len(skills)):
            if sum(counts) != total:
                continue
            members = list(team)
            for skill, n in zip(skills, counts, strict=True):
                for i in range(n):
                    members.append(hire(skill, members, {}, i + 1))
            if simulate(plans, members, {}) <= target + 1e-9:
                return total
    return None


def test_four_parallel_tasks_on_one_worker_need_three_hires():
    plan = Plan(tasks=[task(f"t{i}", "s", effort=0.2) for i in range(4)])
    found = plan_capacity([plan], [sim("one", ["s"])], {}, target=0.25)
    assert found.reached and found.hires == {"s": 3}, found


CASES = [
    ([("a", 0.2)] * 4, [["a"]], 0.25),
    ([("a", 0.2)] * 5 + [("b", 0.3)] * 3, [["a"], ["b"]], 0.35),
    ([("a", 0.1)] * 6 + [("b", 0.1)] * 2, [["a", "b"]], 0.2),
    ([("a", 0.3), ("a", 0.3), ("b", 0.1)], [["a"], ["b"]], 0.3),
    ([("a", 0.2)] * 3 + [("b", 0.2)] * 3, [["a"], ["b"]], 0.1),  # not reachable
]


@pytest.mark.parametrize(("tasks", "team", "target"), CASES)
def test_the_capacity_plan_reaches_the_target_whenever_brute_force_does(tasks, team, target):
    plan = Plan(tasks=[task(f"t{i}", s, effort=e) for i, (s, e) in enumerate(tasks)])
    members = [sim(f"w{i}", skills) for i, skills in enumerate(team)]
    fewest = brute_force([plan], members, target, most=6)
    found = plan_capacity([plan], members, {}, target)
    assert found.reached == (fewest is not None or found.simulated <= target), found
    if fewest is not None:
        assert found.reached and sum(found.hires.values()) <= fewest + 1, (found, fewest)


# --- worker fields that matching ignored -------------------------------------------------------


def test_fields_matching_ignored_are_refused_not_silently_kept(tmp_path):
    for field, value in (("experience", 5), ("tags", ["sql"])):
        with pytest.raises(ValidationError, match=f"{field}\n  Extra inputs are not permitted"):
            Worker(name="w", skills=["s"], run=broken, **{field: value})
    roster = tmp_path / "team.yaml"
    roster.write_text(
        "workers:\n  - {name: w, skills: [s], tags: [sql], "
        "run: 'orchestrator_graph.team:analyse'}\n"
    )
    code, _out, errors = cli("workers", "--roster", str(roster), home=tmp_path)
    assert code == 2 and "worker #1 ('w'): tags: Extra inputs are not permitted" in errors
    assert {"region", "skills", "capacity"} <= set(Worker.model_fields)

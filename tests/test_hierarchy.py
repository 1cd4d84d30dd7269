"""Hierarchies of orchestrators: a parent delegates phases to regional leads, whose children
delegate to team leads, whose children run the work. A crash at each level resumes the whole
tree without re-running finished work at any level (checked on the ledgers of every run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from test_cli import cli

from orchestrator_graph import create_orchestrator
from orchestrator_graph.audit import audit_trail
from orchestrator_graph.hierarchy import ChildFailed, child_thread, resolve, team_lead, tree
from orchestrator_graph.ledger import ROOT, Ledger
from orchestrator_graph.models import Criterion, Plan, RunReport, Task
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.run_links import ParentRun
from orchestrator_graph.simulation import random_plan, simulated_team
from orchestrator_graph.workers import Worker

JOB = Path(__file__).with_name("hierarchy_job.py")


def _job(home: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(JOB), str(home), "tree", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ORCHESTRATOR_GRAPH_HOME": str(home)},
    )


def _kill_at(proc: subprocess.Popen, depth: int) -> None:
    """SIGKILL the job right after the first task recorded done at ``depth`` (0 = the parent)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("kind") == "task_completed" and event.get("depth") == depth:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
    raise AssertionError(f"the job ended before an approval at depth {depth}: {proc.stderr.read()}")


async def _ledgers(home: Path) -> dict[tuple[str, str], float]:
    """(run id, task#attempt) -> when it finished, for every attempt of every run in the tree."""
    async with open_persistence(home) as (_saver, store):
        items = await store.asearch((ROOT, "runs"), limit=100_000)
    return {
        (i.namespace[2], i.key): i.value["result"]["finished_at"]
        for i in items
        if i.namespace[-1] == "attempts"
    }


async def _verdicts(home: Path, keys: list[tuple[str, str]]) -> list[str]:
    async with open_persistence(home) as (_saver, store):
        items = [await store.aget((ROOT, "runs", run, "attempts"), key) for run, key in keys]
    return [f"{i.value['review']['verdict']}: {i.value['review']['feedback']}" for i in items]


def _effects(home: Path) -> list[tuple[str, str]]:
    path = home / "effects"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(run, f"{task}#{attempt}") for run, task, attempt in (x.split() for x in lines)]


@pytest.mark.slow
async def test_crash_at_each_level_resumes_the_tree_without_rerunning(tmp_path):
    snapshots, ran_before = [], []
    proc = _job(tmp_path, "start")
    for depth in (2, 1, 0):  # a team's run, then a regional lead's, then the parent's
        _kill_at(proc, depth)
        snapshots.append(await _ledgers(tmp_path))
        ran_before.append(len(_effects(tmp_path)))
        proc = _job(tmp_path, "resume")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1].removeprefix("REPORT "))
    assert report["status"] == "done"

    final = await _ledgers(tmp_path)
    for before in snapshots:  # nothing recorded before a crash was recorded again after it
        assert before, "a crash came before anything finished"
        assert {k: final.get(k) for k in before} == before
    assert len(snapshots[0]) < len(snapshots[1]) < len(snapshots[2]) < len(final)

    per_task = Counter((run, key.split("#")[0]) for run, key in final)
    twice = sorted(k for k in final if per_task[(k[0], k[1].split("#")[0])] > 1)
    assert not twice, (
        f"tasks with more than one attempt: {twice} {await _verdicts(tmp_path, twice)}"
    )
    effects = _effects(tmp_path)
    assert len({run for run, _ in effects}) == 8  # eight team runs did the work, none restarted
    assert {k for k in effects} <= set(final)
    for crash, before in enumerate(snapshots):
        again = [e for e in effects[ran_before[crash] :] if e in before]
        assert not again, f"finished leaf work ran again after crash {crash + 1}: {again}"

    async with open_persistence(tmp_path) as (_saver, store):
        links = await tree(store, report["run_id"])
    assert sorted(link["child_thread"] for link in links) == [
        child_thread("tree", phase, 1) for phase in sorted(report["tasks"])
    ]
    assert all(len(link["children"]) == 2 for link in links)
    teams = [team for link in links for team in link["children"]]
    assert all(t["status"] == "done" and t["attempt"] == 1 and not t["children"] for t in teams)
    assert len(per_task) == len(report["tasks"]) + 8 + 24  # phases, team phases, leaf tasks

    status = cli("status", "tree", "--json", home=tmp_path)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)["children"]
    assert [c["child_thread"] for c in shown] == [link["child_thread"] for link in links]
    assert sum(len(c["children"]) for c in shown) == 8
    text = "".join(cli("status", "tree", home=tmp_path).stdout.split())  # wrapped: no spaces
    assert "childruns:" in text
    assert all(f"{t['child_thread']}(run{t['child_run_id']})done" in text for t in teams)


def _phase_plan(n: int) -> Plan:
    return Plan(
        goal="phases",
        tasks=[
            Task(
                id=f"p{i}",
                title=f"phase {i}",
                skills=["phase"],
                depends_on=[f"p{i - 1}"] if i else [],
                inputs={"budget": {"seconds": 30}},
                acceptance=[Criterion(kind="has_keys", keys=["summary", "refs"])],
            )
            for i in range(n)
        ],
        source="declared",
    )


async def _run_tree(leads, plan: Plan, thread: str = "top"):
    store = InMemoryStore()
    graph = create_orchestrator(workers=leads).compile(checkpointer=InMemorySaver(), store=store)
    events = []
    config = {"configurable": {"thread_id": thread}}
    async for event in graph.astream(
        {"request": "phases", "plan": plan.model_dump(mode="json")},
        config,
        context={"use_memory": False, "max_attempts": 1},
        stream_mode="custom",
    ):
        events.append(event)
    return (await graph.aget_state(config)).values, store, events


async def test_child_returns_references_and_the_parent_gates_them():
    sub = random_plan(3, seed=3, shape="independent", mean_effort=0.01)
    lead = team_lead("lead", skills=["phase"], team=simulated_team(2), plan=lambda d: sub)
    values, store, events = await _run_tree([lead], _phase_plan(2))
    assert values["report"]["status"] == "done"
    (result, review), _ = await Ledger(store, values["run_id"]).attempts()
    assert review.verdict == "approve"
    output = result.output
    assert output["child"]["thread_id"] == "top/p0#1"
    assert set(output["refs"]) == {t.id for t in sub.tasks}
    child = await Ledger(store, output["child"]["run_id"]).attempts()
    assert {r.task_id: r.output for r, _ in child} == {
        tid: await resolve(store, ref) for tid, ref in output["refs"].items()
    }
    assert set(output) == {"summary", "child", "refs", "tasks"}  # the outputs stay below
    relayed = [e for e in events if e["data"].get("thread") == "top/p0#1"]
    assert {e["kind"] for e in relayed} >= {"run_started", "qa_verdict", "synthesized"}
    links = await tree(store, values["run_id"])
    assert [(x["task_id"], x["child_run_id"], x["status"]) for x in links] == [
        ("p0", output["child"]["run_id"], "done"),
        ("p1", links[1]["child_run_id"], "done"),
    ]
    assert all(x["bytes_down"] > 0 and x["bytes_up"] > 0 for x in links)


async def test_the_reports_link_parent_and_child_runs():
    sub = random_plan(2, seed=3, shape="independent", mean_effort=0.01)
    team = [w.model_copy(update={"cost": 0.25}) for w in simulated_team(2)]
    lead = team_lead("lead", skills=["phase"], team=team, plan=lambda d: sub)
    saver, store = InMemorySaver(), InMemoryStore()
    graph = create_orchestrator(workers=[lead]).compile(checkpointer=saver, store=store)
    out = await graph.ainvoke(
        {"request": "phases", "plan": _phase_plan(2).model_dump(mode="json")},
        {"configurable": {"thread_id": "top"}},
        context={"use_memory": False, "max_attempts": 1},
    )
    report = RunReport.model_validate(out["report"])
    assert report.parent is None
    assert [(c.task_id, c.attempt, c.lead, c.thread_id, c.status) for c in report.children] == [
        ("p0", 1, "lead", "top/p0#1", "done"),
        ("p1", 1, "lead", "top/p1#1", "done"),
    ]
    for child in report.children:
        assert len(await Ledger(store, child.run_id).attempts()) == 2  # the child's own ledger
        assert child.cost == pytest.approx(0.5)  # two attempts at 0.25
    child_graph = create_orchestrator(workers=team).compile(checkpointer=saver, store=store)
    state = await child_graph.aget_state({"configurable": {"thread_id": "top/p1#1"}})
    child_report = RunReport.model_validate(state.values["report"])
    assert child_report.run_id == report.children[1].run_id
    assert child_report.parent == ParentRun(
        thread_id="top", run_id=report.run_id, task_id="p1", attempt=1, lead="lead"
    )
    assert child_report.children == []


async def test_a_child_that_cannot_finish_fails_its_phase_up_to_the_parent():
    def broken(payload):
        raise RuntimeError("tool down")

    team = [Worker(name="w", skills=["sim"], run=broken)]
    sub = random_plan(1, seed=3, shape="independent", mean_effort=0.01)
    lead = team_lead("lead", skills=["phase"], team=team, plan=lambda d: sub)
    values, store, _ = await _run_tree([lead], _phase_plan(1))
    assert values["report"]["status"] == "failed"
    [(result, review)] = await Ledger(store, values["run_id"]).attempts()
    assert review.verdict == "reject"
    assert result.error.startswith(f"{ChildFailed.__name__}: child thread 'top/p0#1' failed")
    [link] = await tree(store, values["run_id"])
    assert link["status"] == "failed"
    # the child's unsettled failure reached the parent's mediator, which decided on the phase
    [decision] = [d for d in values["decisions"] if d["task_id"] == "p0"]
    assert decision["by"] == "policy" and "child thread 'top/p0#1' failed" in decision["reason"]


async def test_a_child_cancelled_as_it_starts_goes_on_when_the_parent_resumes():
    """Found by the crash test: a child killed before its first step has state but no next
    node; it was read as finished-without-report and its phase failed instead of resuming."""
    sub = random_plan(3, seed=3, shape="independent", mean_effort=0.01)
    lead = team_lead("lead", skills=["phase"], team=simulated_team(2), plan=lambda d: sub)
    store = InMemoryStore()
    graph = create_orchestrator(workers=[lead]).compile(checkpointer=InMemorySaver(), store=store)
    config = {"configurable": {"thread_id": "top"}}
    context = {"use_memory": False, "max_attempts": 1}
    stream = graph.astream(
        {"request": "phases", "plan": _phase_plan(1).model_dump(mode="json")},
        config,
        context=context,
        stream_mode="custom",
    )
    async for event in stream:  # the child's first event: stop everything right there
        if event["data"].get("thread") == "top/p0#1":
            break
    await stream.aclose()
    assert not (await graph.aget_state(config)).values.get("report")
    out = await graph.ainvoke(None, config, context=context)
    assert out["report"]["status"] == "done"
    [link] = await tree(store, out["report"]["run_id"])
    assert (link["child_thread"], link["status"]) == ("top/p0#1", "done")
    assert len(await Ledger(store, link["child_run_id"]).attempts()) == 3


async def test_the_audit_trail_names_the_child_run():
    sub = random_plan(2, seed=3, shape="independent", mean_effort=0.01)
    lead = team_lead("lead", skills=["phase"], team=simulated_team(1), plan=lambda d: sub)
    values, store, _ = await _run_tree([lead], _phase_plan(1))
    [link] = await tree(store, values["run_id"])
    trail = await audit_trail(store, values)
    [started] = [e for e in trail if e.action == "attempt started"]
    assert started.detail == (
        f"p0 attempt 1, delegated to thread top/p0#1 (run {link['child_run_id']})"
    )


async def test_the_phase_budget_goes_down_and_a_stopped_child_fails_the_phase():
    sub = random_plan(4, seed=3, shape="layered", mean_effort=0.4)
    lead = team_lead("lead", skills=["phase"], team=simulated_team(1), plan=lambda d: sub)
    plan = _phase_plan(1)
    plan.tasks[0].inputs["budget"] = {"seconds": 0.3}
    values, store, _ = await _run_tree([lead], plan)
    [(result, _review)] = await Ledger(store, values["run_id"]).attempts()
    assert "child thread 'top/p0#1' stopped: seconds budget spent" in result.error
    [link] = await tree(store, values["run_id"])
    child = await Ledger(store, link["child_run_id"]).attempts()
    assert len(child) < 4  # the child stopped on the phase's budget, not at the end of its plan


async def test_a_parent_without_a_checkpointer_still_runs_its_children():
    sub = random_plan(2, seed=3, shape="independent", mean_effort=0.01)
    lead = team_lead("lead", skills=["phase"], team=simulated_team(1), plan=lambda d: sub)
    graph = create_orchestrator(workers=[lead]).compile(store=InMemoryStore())
    out = await graph.ainvoke(
        {"request": "phases", "plan": _phase_plan(2).model_dump(mode="json")},
        context={"use_memory": False},
    )
    assert out["report"]["status"] == "done"

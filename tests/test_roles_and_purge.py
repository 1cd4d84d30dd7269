"""Roles in the library (the identity in the run context) and the command line (a configured
identity), and retention: ``purge`` removes a run everywhere and keeps its audit chain
verifiable."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from test_cli import cli

from orchestrator_graph import Plan, Task, Worker, create_orchestrator
from orchestrator_graph.auditlog import AuditLog
from orchestrator_graph.identity import key_digest

KEY = "roles-test-audit-key-0123456789"
ROLES = ("viewer", "operator", "approver", "admin")


async def test_an_escalation_answer_needs_an_approver_and_records_who():
    task = Task(id="x", title="x", skills=["s"], acceptance=[{"kind": "has_keys", "keys": ["v"]}])
    graph = create_orchestrator(
        workers=[Worker(name="w", skills=["s"], run=lambda p: {"note": "no v"})]
    ).compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    config = {"configurable": {"thread_id": "h"}}
    viewer = {"name": "vic", "tenant": "acme", "roles": ["viewer"]}
    approver = {"name": "ann", "tenant": "acme", "roles": ["approver"]}
    ctx = {"escalation": "human", "max_attempts": 1, "identity": viewer}
    await graph.ainvoke(
        {"request": "r", "plan": Plan(tasks=[task]).model_dump()}, config, context=ctx
    )
    await graph.ainvoke(Command(resume="skip"), config, context=ctx)
    state = await graph.aget_state(config)
    (again,) = [i.value for t in state.tasks for i in t.interrupts]
    assert "vic (roles viewer) may not answer escalations" in again["error"]
    await graph.ainvoke(Command(resume="skip"), config, context={**ctx, "identity": approver})
    report = (await graph.aget_state(config)).values["report"]
    assert [(d["action"], d["actor"]) for d in report["decisions"]] == [("skip", "ann")]


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    path = tmp_path_factory.mktemp("ids") / "identities.json"
    keys = {
        key_digest(f"key-{r}"): {"name": f"{r}-1", "tenant": "acme", "roles": [r]} for r in ROLES
    }
    path.write_text(json.dumps({"api_keys": keys}))
    return path


def as_(role: str | None, identities) -> dict[str, str]:
    env = {"ORCHESTRATOR_GRAPH_IDENTITIES": str(identities), "ORCHESTRATOR_GRAPH_AUDIT_KEY": KEY}
    return env | ({"ORCHESTRATOR_GRAPH_API_KEY": f"key-{role}"} if role else {})


@pytest.mark.slow
def test_the_cli_acts_as_its_configured_identity(tmp_path, identities):
    for role, args, needs in [
        ("viewer", ("run", "--example"), "start"),
        ("approver", ("run", "--example"), "start"),
        ("operator", ("purge", "t1"), "purge"),
        ("operator", ("backup", "--out", "b.tar.gz"), "backup"),
    ]:
        refused = cli(*args, home=tmp_path, **as_(role, identities))
        assert refused.returncode == 2, (role, args, refused.stderr)
        assert f"{role}-1 (tenant acme, roles {role}) may not {needs}" in refused.stderr
    for env in (
        as_(None, identities),
        {**as_(None, identities), "ORCHESTRATOR_GRAPH_API_KEY": "x"},
    ):
        refused = cli("run", "--example", home=tmp_path, **env)
        assert refused.returncode == 2 and (
            "no credentials" in refused.stderr or "unknown API key" in refused.stderr
        )
    assert (
        not (tmp_path / "state.db").exists()
        or not sqlite3.connect(tmp_path / "state.db")
        .execute("SELECT name FROM sqlite_master WHERE name='checkpoints'")
        .fetchone()
    )


@pytest.mark.slow
def test_purge_removes_a_run_and_keeps_its_chain_verifiable(tmp_path, identities):
    done = cli(
        "run", "--example", "--thread", "t1", "--json", home=tmp_path, **as_("operator", identities)
    )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    purged = cli("purge", "t1", home=tmp_path, **as_("admin", identities))
    assert purged.returncode == 0, purged.stderr
    (summary,) = json.loads(purged.stdout)
    assert summary["run_id"] == run_id and summary["memory_records"] == 1
    assert summary["store_items"] >= 8 and summary["audit_payloads"] >= 14

    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("SELECT count(*) FROM checkpoints WHERE thread_id='t1'").fetchone() == (
            0,
        )
    with sqlite3.connect(tmp_path / "store.db") as db:
        left = db.execute(
            "SELECT prefix FROM store WHERE prefix LIKE ? OR key = ?", (f"%{run_id}%", run_id)
        ).fetchall()
        assert {p for (p,) in left} == {f"orchestrator_graph.audit.{run_id}"}
        payloads = db.execute(
            "SELECT value FROM store WHERE prefix = ?", (f"orchestrator_graph.audit.{run_id}",)
        ).fetchall()
    assert [json.loads(v)["payload"] is None for (v,) in payloads].count(
        False
    ) == 1  # the purge's own
    assert "t1" in json.loads(payloads[-1][0])["payload"]["thread"]
    gone = cli("status", "t1", home=tmp_path, **as_("viewer", identities))
    assert gone.returncode == 2

    async def verify():
        from orchestrator_graph.persistence import open_persistence

        async with open_persistence(tmp_path) as (_saver, store):
            return await AuditLog(store, run_id, KEY.encode(), tmp_path / "audit-heads").verify()

    result = asyncio.run(verify())
    assert result.ok and result.purged == result.entries - 1 and result.head == result.entries

    again = cli("purge", "--older-than", "0", home=tmp_path, **as_("admin", identities))
    assert again.returncode == 0 and json.loads(again.stdout) == []
    both = cli("purge", "t1", "--older-than", "1", home=tmp_path, **as_("admin", identities))
    assert both.returncode == 2 and "one of them" in both.stderr


async def test_purge_runs_from_the_library_needs_an_admin(tmp_path, monkeypatch):
    """``orchestrator_graph.purge_runs``: the identity passed decides, by thread or by age; the
    purged run's chain still verifies and names the admin who purged it."""
    from orchestrator_graph import InputError, purge_runs
    from orchestrator_graph.errors import AccessDenied

    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(tmp_path))
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_AUDIT_KEY", KEY)
    graph = create_orchestrator(
        workers=[Worker(name="w", skills=["s"], run=lambda p: {"v": 1})]
    ).compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    plan = Plan(tasks=[Task(id="x", title="x", skills=["s"])]).model_dump()
    runs = {}
    for thread in ("old", "kept"):
        config = {"configurable": {"thread_id": thread}}
        await graph.ainvoke({"request": "r", "plan": plan}, config)
        runs[thread] = (await graph.aget_state(config)).values["run_id"]
    admin = {"name": "ada", "tenant": "acme", "roles": ["admin"]}
    for role in ("viewer", "operator", "approver"):
        who = {"name": "eve", "tenant": "acme", "roles": [role]}
        with pytest.raises(AccessDenied, match=f"eve .*roles {role}. may not purge thread old"):
            await purge_runs(graph, identity=who, thread="old")
    with pytest.raises(InputError, match="give a thread or older_than"):
        await purge_runs(graph, identity=admin)
    with pytest.raises(InputError, match="thread nowhere: no such thread"):
        await purge_runs(graph, identity=admin, thread="nowhere")

    (purged,) = await purge_runs(graph, identity=admin, thread="old")
    assert purged.run_id == runs["old"] and purged.audit_payloads > 0
    assert (await graph.aget_state({"configurable": {"thread_id": "old"}})).values == {}
    log = AuditLog(graph.store, runs["old"], KEY.encode(), tmp_path / "audit-heads")
    result = await log.verify()
    assert result.ok and result.head == result.entries and result.purged == result.entries - 1
    assert (await log.records())[-1].actor == "ada"
    assert await purge_runs(graph, identity=admin, older_than=3600) == []  # nothing that old
    (by_age,) = await purge_runs(graph, identity=admin, older_than=0)
    assert by_age.thread == "kept" and by_age.run_id == runs["kept"]


async def test_a_run_paused_midway_has_its_assignments_and_answers_chained(tmp_path, monkeypatch):
    """Chained as they happen, not when the run ends: a run paused for a human already holds
    each assignment (with why) before its attempt, and the answer once it is given."""
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(tmp_path))
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_AUDIT_KEY", KEY)
    needs_v = [{"kind": "has_keys", "keys": ["v"]}]
    plan = Plan(
        tasks=[
            Task(id="a", title="a", skills=["s"]),
            Task(id="x", title="x", skills=["s"], acceptance=needs_v),
        ]
    )
    graph = create_orchestrator(
        workers=[
            Worker(name="w", skills=["s"], run=lambda p: {"note": "no v"}),
            Worker(name="u", skills=["s"], run=lambda p: {"note": "no v either"}),
        ]
    ).compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    config = {"configurable": {"thread_id": "p"}}
    ctx = {"escalation": "human", "max_attempts": 1}
    await graph.ainvoke({"request": "r", "plan": plan.model_dump()}, config, context=ctx)
    state = await graph.aget_state(config)
    assert [i.value["task_id"] for t in state.tasks for i in t.interrupts] == ["x"]
    log = AuditLog(graph.store, state.values["run_id"], KEY.encode(), tmp_path / "audit-heads")

    records = await log.records()
    seq = {r.event: r.seq for r in records}
    for task in ("a", "x"):
        (assigned,) = [
            r for r in records if r.action == "assignment" and r.payload["task_id"] == task
        ]
        assert assigned.payload["reasons"], f"why {task} went to {assigned.payload['worker']}"
        assert assigned.seq < seq[f"attempt:{task}#1"]  # chained before its attempt ran
    assert not [r for r in records if r.action.startswith(("decision", "run "))]
    checked = await log.verify()
    assert checked.ok and checked.head == checked.entries == len(records)

    approver = {"name": "ann", "tenant": "acme", "roles": ["approver"]}
    await graph.ainvoke(Command(resume="retry"), config, context={**ctx, "identity": approver})
    state = await graph.aget_state(config)
    assert [i.value["task_id"] for t in state.tasks for i in t.interrupts] == ["x"]  # again
    (answer,) = [r for r in await log.records() if r.action.startswith("decision")]
    assert (answer.action, answer.actor) == ("decision retry", "ann")
    assert (await log.verify()).ok

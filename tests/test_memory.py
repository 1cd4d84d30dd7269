"""The plan memory on a real Chroma (embedded and served) with the real offline embeddings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from test_workforce import run, sim, task

from orchestrator_graph import Plan, Worker, create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.memory import (
    MIN_SIMILARITY,
    PlanMemory,
    RunRecord,
    TaskOutcome,
    adapt_plan,
    client_for,
    failure_patterns,
    mitigations,
)
from orchestrator_graph.simulation import SimulatedWork

FAMILIES = {
    "sales": [
        "Analyse quarterly sales revenue by region and write a report",
        "Summarise the revenue per region for last quarter in a short report",
        "Compare regional sales figures and report the totals",
    ],
    "translation": [
        "Translate the user manual into German",
        "Produce a French translation of the product documentation",
    ],
    "security": [
        "Audit the web server logs for failed login attempts",
        "Check the authentication logs for brute-force login attacks",
    ],
}


def record(run_id: str, request: str, **fields) -> RunRecord:
    plan = Plan(tasks=[task("t")])
    return RunRecord(run_id=run_id, request=request, status="done", plan=plan, **fields)


def test_similar_requests_recall_each_other_and_unrelated_ones_do_not(tmp_path):
    memory = PlanMemory(client_for(str(tmp_path / "chroma")))
    for family, requests in FAMILIES.items():
        memory.remember(record(family, requests[0]))
    for family, requests in FAMILIES.items():
        for request in requests[1:]:
            found = memory.recall(request, k=3)
            assert [r.record.run_id for r in found] == [family], (request, found)
            assert found[0].similarity >= 0.5
    assert memory.recall("Plan a birthday party for twenty guests") == []
    exact = memory.recall(FAMILIES["sales"][0])[0]
    assert exact.record.run_id == "sales" and exact.similarity == pytest.approx(1.0, abs=1e-3)
    unrelated = memory.recall("Plan a birthday party for twenty guests", min_similarity=0.0)
    assert max(r.similarity for r in unrelated) < MIN_SIMILARITY  # left out by the threshold


def test_memory_survives_a_restart(tmp_path):
    folder = tmp_path / "chroma"
    PlanMemory(client_for(str(folder))).remember(record("r1", FAMILIES["security"][0]))
    code = (
        "from orchestrator_graph.memory import PlanMemory, client_for; import sys; "
        f"m = PlanMemory(client_for({str(folder)!r})); "
        f"print([r.record.run_id for r in m.recall({FAMILIES['security'][1]!r})])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['r1']"


async def test_a_corrupted_memory_folder_is_reported_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    graph = create_orchestrator(memory=str(folder)).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    out = await graph.ainvoke(
        {"request": EXAMPLE},
        {"configurable": {"thread_id": "m"}},
        context={"output_dir": str(tmp_path)},
    )
    report = out["report"]
    assert report["status"] == "done"
    assert report["memory"].startswith(f"plan memory at {folder} cannot be")
    assert report["memory"].endswith("this run goes on without memory")
    assert (folder / "chroma.sqlite3").read_bytes().startswith(b"this is not")  # left alone


async def test_a_memory_folder_that_cannot_exist_is_reported_and_the_run_goes_on(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    where = tmp_path / "a-file" / "chroma"
    team = [sim("w", ["s"])]
    graph = create_orchestrator(workers=team, memory=str(where)).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    out = await graph.ainvoke(
        {"request": "r", "plan": Plan(tasks=[task("t")]).model_dump()},
        {"configurable": {"thread_id": "x"}},
    )
    assert out["report"]["status"] == "done"
    assert out["report"]["memory"].startswith(f"plan memory at {where} cannot be opened")


async def test_a_second_similar_run_adapts_the_remembered_plan_without_the_planner(tmp_path):
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    context = {"output_dir": str(tmp_path)}
    first = await graph.ainvoke(
        {"request": EXAMPLE}, {"configurable": {"thread_id": "a"}}, context=context
    )
    assert first["report"]["model_calls"]["planner"] == 1
    assert first["report"]["memory"].startswith("remembered in ")
    again = EXAMPLE.replace("analyse them by region", "analyse them by region, please,")
    second = await graph.ainvoke(
        {"request": again}, {"configurable": {"thread_id": "b"}}, context=context
    )
    assert second["report"]["model_calls"].get("planner", 0) == 0
    assert second["report"]["status"] == "done"


def test_a_recalled_plan_is_adapted_to_what_the_new_request_names():
    plan = Plan(
        tasks=[
            task("load", inputs={"path": "data/q3.csv"}),
            task("analyse", inputs={"group_by": "region", "sources": ["data/q3.csv"]}),
        ]
    )
    old = "Analyse data/q3.csv by region"
    adapted = adapt_plan(plan, old, "Please analyse data/q4.csv by product")
    assert adapted is not None
    assert adapted.tasks[0].inputs == {"path": "data/q4.csv"}
    assert adapted.tasks[1].inputs == {"group_by": "product", "sources": ["data/q4.csv"]}
    assert adapted.source == "recalled" and adapted.goal == "Please analyse data/q4.csv by product"
    # The new request drops the grouping without naming another: the old plan would be wrong.
    assert adapt_plan(plan, old, "Analyse data/q3.csv overall") is None


def test_failure_patterns_lead_to_avoidance_or_a_stricter_check():
    outcome = TaskOutcome(
        skills=["s"],
        effort=1.0,
        status="approved",
        verdicts=[("bad", "reject"), ("bad", "reject"), ("good", "approve")],
    )
    records = [record("r", "x", outcomes={"t": outcome})]
    (pattern,) = failure_patterns(records)
    assert (pattern.worker, pattern.failures, pattern.attempts) == ("bad", 2, 2)
    tasks = [task("a"), task("b", "other")]
    fixes = mitigations(tasks, [pattern], {"a": ["bad", "good"]})
    assert fixes == {
        "a": {"avoid": ["bad"], "qa_policy": None, "pad": 2.0, "why": "bad failed 2/2"}
    }
    alone = mitigations(tasks, [pattern], {"a": ["bad"]})["a"]
    assert alone["avoid"] == [] and alone["qa_policy"] == "strict"


async def test_a_worker_that_failed_before_is_avoided_in_the_next_similar_run():
    team = [
        Worker(name="bad", skills={"s": 1.0}, run=SimulatedWork(defect_rate=1.0)),
        sim("good", {"s": 0.5}),
    ]
    plan = Plan(tasks=[task(f"t{i}") for i in range(3)])
    store = InMemoryStore()
    memory = {"use_memory": True, "max_attempts": 3}
    first, _ = await run(team, plan, store=store, context=memory)
    assert ["bad", "reject"] in _verdicts(first)
    second, events = await run(team, plan, store=store, context=memory)
    assert set(second["mitigations"]) == {"t0", "t1", "t2"}
    assert all(m["avoid"] == ["bad"] for m in second["mitigations"].values())
    assert {e["worker"] for e in events if e["kind"] == "task_started"} == {"good"}
    assert second["status"] == "done"


def _verdicts(report: dict) -> list[list[str]]:
    return [[s["worker"], s["verdict"]] for s in report["actual"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
async def test_the_memory_on_a_chroma_server(tmp_path):
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    server = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "served"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                client_for(url).heartbeat()
                break
            except Exception:
                from orchestrator_graph import memory as memory_module

                memory_module._clients.pop(url, None)
                time.sleep(0.2)
        graph = create_orchestrator(memory=url).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore()
        )
        context = {"output_dir": str(tmp_path)}
        reports = []
        for thread in ("one", "two"):
            out = await graph.ainvoke(
                {"request": EXAMPLE}, {"configurable": {"thread_id": thread}}, context=context
            )
            reports.append(out["report"])
        assert reports[0]["memory"] == f"remembered in {url}"
        assert reports[1]["model_calls"].get("planner", 0) == 0  # recalled from the server
        assert PlanMemory(client_for(url)).count() == 2
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_a_worker_avoided_for_past_failures_still_takes_a_retry_when_nobody_else_can():
    one, two = SimulatedWork(defect_rate=1.0), SimulatedWork()
    team = [Worker(name="w1", skills=["s"], run=one), Worker(name="w2", skills=["s"], run=two)]
    plan = Plan(tasks=[task("t")])
    store = InMemoryStore()
    context = {"use_memory": True, "max_attempts": 1, "loop_guard": 5}
    # alone, w1 fails twice: a pattern (one run counts once, however it is recalled)
    await run(team[:1], plan, store=store, context={**context, "max_attempts": 2})
    one.defect_rate, two.defect_rate = 0.0, 1.0  # now w2 fails and w1 works
    report, _ = await run(team, plan, store=store, context=context)
    assert report["mitigations"]["t"]["avoid"] == ["w1"]
    assert report["status"] == "done" and report["tasks"]["t"]["worker"] == "w1"
    assert "fallback retry_elsewhere: w1 has not tried it" in report["decisions"][0]["reason"]

"""Worker kinds, the graph's shape, and prompts shipped inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from orchestrator_graph import Plan, Task, Worker, create_orchestrator

ROOT = Path(__file__).resolve().parent.parent


class Inner(TypedDict, total=False):
    task: dict
    upstream: dict
    output: dict


def inner_graph():
    def work(state: Inner) -> dict:
        return {"output": {"value": len(state["upstream"]) + 100, "summary": "graph worker"}}

    g = StateGraph(Inner)
    g.add_node("work", work)
    g.add_edge(START, "work")
    return g.compile()


async def test_function_runnable_and_graph_workers_in_one_run():
    team = [
        Worker(name="fn", skills=["a"], run=lambda p: {"value": 1, "summary": "function"}),
        Worker(
            name="runnable",
            skills=["b"],
            run=RunnableLambda(lambda d: {"value": len(d["upstream"]), "summary": "runnable"}),
        ),
        Worker(name="graph", skills=["c"], run=inner_graph()),
    ]
    plan = Plan(
        tasks=[
            Task(id="one", title="one", skills=["a"]),
            Task(id="two", title="two", skills=["b"], depends_on=["one"]),
            Task(
                id="three",
                title="three",
                skills=["c"],
                depends_on=["one", "two"],
                acceptance=[
                    {"kind": "number_range", "field": "value", "value": 102, "maximum": 102}
                ],
            ),
        ]
    )
    graph = create_orchestrator(workers=team).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    out = await graph.ainvoke(
        {"request": "mixed", "plan": plan.model_dump()}, {"configurable": {"thread_id": "w"}}
    )
    tasks = out["report"]["tasks"]
    assert out["report"]["status"] == "done"
    assert [tasks[t]["worker"] for t in ("one", "two", "three")] == ["fn", "runnable", "graph"]
    assert tasks["two"]["summary"] == "runnable" and tasks["three"]["summary"] == "graph worker"


def test_graph_shape_draws_every_node_and_routed_edge():
    drawing = create_orchestrator().compile().get_graph().draw_mermaid()
    for node in (
        "recall",
        "planner",
        "dispatcher",
        "mediator",
        "synthesizer",
        "final_review",
        "budget_gate",
        "learn",
    ):
        assert node in drawing
    for edge in (
        "dispatcher -.-> mediator",
        "dispatcher -.-> synthesizer",
        "mediator -.-> dispatcher",
        "dispatcher -.-> budget_gate",
        "budget_gate -.-> dispatcher",
    ):
        assert edge in drawing, drawing
    schema = create_orchestrator().compile().get_input_jsonschema()
    assert "required" not in schema  # a request, or messages whose last human one is it
    assert {"request", "messages", "plan"} == set(schema["properties"])


@pytest.mark.slow
def test_prompts_ship_in_the_wheel_and_load_when_installed(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("orchestrator_graph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "orchestrator_graph/prompts/planner.system.md" in names
    assert "orchestrator_graph/samples/sales.csv" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import orchestrator_graph.prompts as p; print(p.prompt_dir()); "
        "print(p.render('planner.user', request='r', skills='s', workers='w', examples='e', "
        "feedback='f')[:9])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1] == "<request>"

"""The ecosystem's kinds of worker in one run beside a real `langgraph dev` (a RemoteGraph
worker) and a real stdio MCP server (an MCP tool worker); the server's streams as Studio
and the SDK see them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph_server import langgraph_dev
from test_ecosystem import scripted
from test_server import remote_stats_task

from orchestrator_graph import Plan, Task, Worker, create_orchestrator
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.registry import remote_worker

pytestmark = pytest.mark.slow
MCP_SERVER = Path(__file__).with_name("mcp_server.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eco-server")
    env = {"ORCHESTRATOR_GRAPH_OUTPUT_ROOT": str(folder / "outputs")}  # what clients may write in
    with langgraph_dev(folder, env=env) as url:
        yield url


tables_made: list[dict] = []


@tool
def make_table(regions: list[str], value: float) -> dict:
    """A table with one row per region, every row holding value."""
    tables_made.append({"regions": regions, "value": value})
    rows = [{"region": r, "sales": value * (i + 1)} for i, r in enumerate(regions)]
    return {"source": "make_table", "rows": rows, "columns": ["region", "sales"], "summary": "t"}


async def test_agent_tool_mcp_and_remote_workers_in_one_run(server):
    from langchain_mcp_adapters.client import MultiServerMCPClient

    connection = {"command": sys.executable, "args": [str(MCP_SERVER)], "transport": "stdio"}
    (scale,) = await MultiServerMCPClient({"units": connection}).get_tools()
    model = scripted(AIMessage("Sales by region for N and S; scaled 30.0"))
    team = [
        Worker(name="tabler", skills=["tables"], run=make_table),
        Worker(name="mcp-scale", skills=["units"], run=scale),
        remote_worker("remote-analyst", server, "table_analyst", skills=["analysis"]),
        Worker(name="writer", skills=["write"], run=create_agent(model, [])),
    ]
    tasks = [
        Task(
            id="load", title="load", skills=["tables"], inputs={"regions": ["N", "S"], "value": 2}
        ),
        Task(id="scale", title="scale", skills=["units"], inputs={"values": [3], "factor": 10}),
        remote_stats_task(),
        Task(
            id="brief",
            title="Brief the sales",
            skills=["write"],
            depends_on=["stats", "scale"],
            acceptance=[{"kind": "contains", "field": "answer", "text": "scaled 30.0"}],
        ),
    ]
    store = InMemoryStore()
    graph = create_orchestrator(workers=team).compile(checkpointer=InMemorySaver(), store=store)
    out = await graph.ainvoke(
        {"request": "eco", "plan": Plan(tasks=tasks).model_dump()},
        {"configurable": {"thread_id": "eco"}},
        context={"use_memory": False},
    )
    report = out["report"]
    assert report["status"] == "done", [t.get("feedback") for t in report["tasks"].values()]
    workers = {t: report["tasks"][t]["worker"] for t in ("load", "scale", "stats", "brief")}
    assert workers == {
        "load": "tabler",
        "scale": "mcp-scale",
        "stats": "remote-analyst",
        "brief": "writer",
    }
    assert tables_made == [{"regions": ["N", "S"], "value": 2.0}]
    outputs = {r.task_id: r.output for r, _ in await Ledger(store, report["run_id"]).attempts()}
    assert outputs["scale"] == {"received": {"values": [3.0], "factor": 10.0}, "scaled": [30.0]}
    assert outputs["stats"]["rows"] == 2 and set(outputs["stats"]["groups"]) == {"N", "S"}
    conversation = model.received[0][-1].text
    assert "Brief the sales" in conversation and '"scaled": [' in conversation
    assert '"groups": {' in conversation  # the remote analyst's approved output


async def test_studio_sees_node_updates_state_and_the_chat_answer_while_it_runs(server):
    from langgraph_sdk import get_client

    from orchestrator_graph.cli import EXAMPLE

    client = get_client(url=server)
    thread = await client.threads.create()
    events = []
    async for part in client.runs.stream(
        thread["thread_id"],
        "orchestrator",
        input={"messages": [{"role": "human", "content": EXAMPLE}]},  # as Studio's chat sends
        context={"output_dir": "studio"},  # inside the deployment's output root
        stream_mode=["updates", "values", "custom"],
    ):
        events.append((part.event, part.data))
    updates = {n: v for e, d in events if e == "updates" for n, v in d.items()}
    for node in ("recall", "planner", "dispatcher", "synthesizer", "final_review", "learn"):
        assert updates.get(node) is not None, node
    assert len(updates["planner"]["plan"]["tasks"]) == 6 and len(updates["planner"]["tasks"]) == 6
    assert set(updates["dispatcher"]["tasks"]) == set(updates["planner"]["tasks"])
    order = [e if e != "custom" else f"custom:{d['kind']}" for e, d in events]
    dispatched = next(i for i, (e, d) in enumerate(events) if e == "updates" and "dispatcher" in d)
    assert "custom:task_started" in order[:dispatched] and "custom:status" in order[:dispatched]
    values = [d for e, d in events if e == "values"]
    assert any("plan" in v and "report" not in v for v in values)  # state before the end
    final = values[-1]
    assert final["report"]["status"] == "done"
    assert final["messages"][-1]["type"] == "ai" and final["messages"][-1]["name"] == "orchestrator"
    assert final["messages"][-1]["content"].startswith("**done**")


async def test_xray_drawing_and_subgraphs_through_the_sdk(server):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    (assistant,) = await client.assistants.search(graph_id="orchestrator", limit=1)
    drawing = await client.assistants.get_graph(assistant["assistant_id"], xray=True)
    nodes = {n["id"] for n in drawing["nodes"]}
    assert {"dispatcher:execute", "dispatcher:review", "planner", "learn"} <= nodes
    subgraphs = await client.assistants.get_subgraphs(assistant["assistant_id"])
    assert set(subgraphs) == {"dispatcher"}
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert {"planner_model", "reviewer_model"} <= set(schemas["context_schema"]["properties"])
    assert "messages" in schemas["input_schema"]["properties"]

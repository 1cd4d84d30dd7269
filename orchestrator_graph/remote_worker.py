"""A worker as a graph of its own, to serve on a LangGraph server and use from anywhere with
``registry.remote_worker(name, url, graph="table_analyst", skills=[...])``.

It takes the ``WorkerInput`` fields as its state and answers in ``output``: descriptive
statistics of the tables its upstream tasks produced, grouped by ``inputs.group_by`` if given."""

from __future__ import annotations

from typing import Any, NotRequired

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from orchestrator_graph import tools


class WorkerState(TypedDict):
    run_id: str
    task: dict[str, Any]
    attempt: int
    upstream: dict[str, Any]
    feedback: NotRequired[str]
    output: NotRequired[dict[str, Any]]


def analyse(state: WorkerState) -> dict[str, Any]:
    tables = [v for v in state["upstream"].values() if isinstance(v, dict) and "rows" in v]
    if not tables:
        raise ValueError("table_analyst needs at least one upstream table")
    result = tools.describe(tools.combine(tables), state["task"].get("inputs", {}).get("group_by"))
    summary = f"{result['rows']} rows; statistics for {', '.join(result['statistics'])}"
    return {"output": {**result, "summary": summary}}


builder = StateGraph(WorkerState)
builder.add_node("analyse", analyse)
builder.add_edge(START, "analyse")
builder.add_edge("analyse", END)
graph = builder.compile(name="table_analyst")

"""The graph served by a real `langgraph dev`, driven by the real `langgraph_sdk` client."""

from __future__ import annotations

import pytest
from langgraph_server import langgraph_dev

from orchestrator_graph.cli import EXAMPLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The deployment's output root: clients may write only inside it."""
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def server(tmp_path_factory, outputs):
    env = {"ORCHESTRATOR_GRAPH_OUTPUT_ROOT": str(outputs)}
    with langgraph_dev(tmp_path_factory.mktemp("server"), env=env) as url:
        yield url


async def test_thread_run_stream_state_and_history(server, outputs):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    thread = await client.threads.create()
    kinds, namespaces = [], set()
    async for part in client.runs.stream(
        thread["thread_id"],
        "orchestrator",
        input={"request": EXAMPLE},
        context={"output_dir": "stream", "worker_subgraph": True},
        stream_mode=["custom", "updates"],
        stream_subgraphs=True,
    ):
        if part.event.startswith("custom"):
            kinds.append(part.data["kind"])
            namespaces.add(part.event)
    assert {"planned", "task_started", "qa_verdict", "task_completed", "learned", "status"} <= set(
        kinds
    )
    assert any("|" in ns for ns in namespaces), "worker attempts stream from their own subgraph"

    state = await client.threads.get_state(thread["thread_id"])
    report = state["values"]["report"]
    assert report["status"] == "done", (report["reason"], report["final_review"])
    assert len(report["tasks"]) == 6
    assert (outputs / "stream" / f"{report['run_id']}-report.md").is_file()
    assert state["values"]["status"]["counts"] == {"approved": 6}
    live = await client.store.get_item(["orchestrator_graph", "status"], report["run_id"])
    assert live["value"]["run_id"] == report["run_id"] and live["value"]["eta"] == 0
    history = await client.threads.get_history(thread["thread_id"], limit=50)
    steps = [h["metadata"].get("step") for h in history]
    assert len(history) >= 7 and steps == sorted(steps, reverse=True)
    assert any("dispatcher" in (h["next"] or []) for h in history)


async def test_human_escalation_paused_and_resumed_through_the_sdk(server):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    thread = await client.threads.create()
    plan = {
        "tasks": [
            {
                "id": "load",
                "title": "load",
                "skills": ["data_collection"],
                "inputs": {"path": "nope.csv"},
            },
            {"id": "stats", "title": "stats", "skills": ["analysis"], "depends_on": ["load"]},
        ]
    }
    context = {"escalation": "human", "max_attempts": 1}
    await client.runs.wait(
        thread["thread_id"],
        "orchestrator",
        context=context,
        input={"request": "load and analyse", "plan": plan},
    )
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["mediator"]
    (question,) = [i["value"] for t in state["tasks"] for i in t["interrupts"]]
    assert question["task_id"] == "load" and "no such data file: 'nope.csv'" in question["reason"]

    await client.runs.wait(
        thread["thread_id"],
        "orchestrator",
        context=context,
        command={"resume": {"action": "skip", "reason": "file is gone"}},
    )
    report = (await client.threads.get_state(thread["thread_id"]))["values"]["report"]
    assert report["status"] == "failed"
    assert report["tasks"]["stats"]["status"] == "skipped"
    assert report["decisions"][0]["by"] == "human"


def remote_stats_task():
    """Statistics by region of the table task ``load`` gives, for the remote analyst."""
    from orchestrator_graph import Task

    return Task(
        id="stats",
        title="stats",
        skills=["analysis"],
        depends_on=["load"],
        inputs={"group_by": "region"},
        acceptance=[{"kind": "has_keys", "keys": ["groups"]}],
    )


async def test_a_remote_worker_served_by_langgraph_dev(server):
    """A local orchestrator whose analyst is a graph on the server (RemoteGraph)."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from orchestrator_graph import Plan, Task, create_orchestrator, default_team, tools
    from orchestrator_graph.registry import remote_worker

    collector = next(w for w in default_team() if w.name == "collector")
    analyst = remote_worker("remote-analyst", server, "table_analyst", skills={"analysis": 0.9})
    plan = Plan(
        tasks=[
            Task(
                id="load",
                title="load",
                skills=["data_collection"],
                inputs={"path": str(tools.SAMPLES / "sales.csv")},
            ),
            remote_stats_task(),
        ]
    )
    store = InMemoryStore()
    graph = create_orchestrator(workers=[collector, analyst]).compile(
        checkpointer=InMemorySaver(), store=store
    )
    out = await graph.ainvoke(
        {"request": "remote", "plan": plan.model_dump()},
        {"configurable": {"thread_id": "remote"}},
        context={"use_memory": False},
    )
    report = out["report"]
    assert report["status"] == "done", report["tasks"]
    assert report["tasks"]["stats"]["worker"] == "remote-analyst"
    item = await store.aget(("orchestrator_graph", "runs", report["run_id"], "attempts"), "stats#1")
    got = item.value["result"]["output"]
    table = tools.load_table(str(tools.SAMPLES / "sales.csv"))
    expected = tools.describe(tools.combine([table]), "region")
    assert got["groups"] == expected["groups"] and got["statistics"] == expected["statistics"]


async def test_clients_cannot_choose_an_output_folder_outside_the_deployments_root(
    server, outputs, tmp_path
):
    """A client's ``output_dir`` (absolute elsewhere, climbing with '..', or a link inside the
    root that points out) refuses the run at its start; nothing is written outside the root."""
    from langgraph_sdk import get_client

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (outputs / "escape").symlink_to(elsewhere)
    client = get_client(url=server)
    for chosen in (str(elsewhere), "../" + elsewhere.name, "escape"):
        thread = await client.threads.create()
        run = await client.runs.create(
            thread["thread_id"],
            "orchestrator",
            input={"request": EXAMPLE},
            context={"output_dir": chosen, "use_memory": False},
        )
        joined = await client.runs.join(thread["thread_id"], run["run_id"])
        done = await client.runs.get(thread["thread_id"], run["run_id"])
        assert done["status"] == "error", chosen
        error = joined["__error__"]
        assert error["error"] == "SandboxError" and error["message"].startswith(
            f"output_dir {chosen!r}"
        )
        assert ("'..' is not allowed" if ".." in chosen else "is outside the output root") in (
            error["message"]
        )
        state = await client.threads.get_state(thread["thread_id"])
        assert not state["values"].get("report") and state["tasks"][0]["name"] == "recall"
    assert list(elsewhere.iterdir()) == []

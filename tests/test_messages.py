"""Messages in, messages out: the orchestrator as an agent inside ``create_supervisor`` and as a
node of a messages graph; the synthesizer's answer streaming on ``stream_mode="messages"``."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore
from test_ecosystem import scripted

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.errors import InputError

TEAM = None  # the default team: the offline request below is one it delivers
CONTEXT = {"use_memory": False}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default team's reporter writes its report here


def orchestrator():
    return create_orchestrator(workers=TEAM).compile(name="orchestrator")


async def test_inside_create_supervisor():
    from langgraph_supervisor import create_supervisor

    handoff = {"name": "transfer_to_orchestrator", "args": {}, "id": "h1"}
    model = scripted(AIMessage("", tool_calls=[handoff]), AIMessage("Your report is ready."))
    supervisor = create_supervisor(
        [orchestrator()], model=model, prompt="Send data work to the orchestrator."
    ).compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    out = await supervisor.ainvoke(
        {"messages": [HumanMessage(EXAMPLE)]},
        {"configurable": {"thread_id": "sup"}},
        context=CONTEXT,
    )
    ours = [m for m in out["messages"] if m.name == "orchestrator" and m.type == "ai"]
    assert ours[0].text.startswith("**done**: ") and "## " in ours[0].text
    # the supervisor saw the orchestrator's answer before it replied
    assert any("**done**" in m.text for m in model.received[1])
    assert out["messages"][-1].text == "Your report is ready."


async def test_as_a_node_of_a_messages_graph_with_earlier_messages_as_context():
    seen = []

    def after(state: MessagesState) -> dict:
        seen.append(state["messages"][-1])
        return {"messages": [AIMessage("noted", name="after")]}

    builder = StateGraph(MessagesState)
    builder.add_node("team", orchestrator())
    builder.add_node("after", after)
    builder.add_edge(START, "team")
    builder.add_edge("team", "after")
    graph = builder.compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    conversation = [
        HumanMessage("Our stores are in the north."),
        AIMessage("Noted: northern stores."),
        HumanMessage(EXAMPLE),
    ]
    out = await graph.ainvoke(
        {"messages": conversation}, {"configurable": {"thread_id": "node"}}, context=CONTEXT
    )
    assert [m.type for m in out["messages"]] == ["human", "ai", "human", "ai", "ai"]
    assert seen[0].name == "orchestrator" and seen[0].text.startswith("**done**")
    state = await graph.aget_state({"configurable": {"thread_id": "node"}}, subgraphs=True)
    assert state.values["messages"][-1].text == "noted"
    inner = create_orchestrator(workers=TEAM).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "inner"}}
    await inner.ainvoke({"messages": conversation}, config, context=CONTEXT)
    request = (await inner.aget_state(config)).values["request"]
    assert request.startswith(f"{EXAMPLE}\n\nEarlier in the conversation:\n")
    assert "human: Our stores are in the north.\nai: Noted: northern stores." in request


async def test_no_request_and_no_human_message_is_one_precise_error():
    graph = orchestrator()
    with pytest.raises(InputError, match="non-empty 'request' string or a human message"):
        await graph.ainvoke({"messages": [AIMessage("hello")]}, context=CONTEXT)


async def test_the_synthesizers_answer_streams_token_by_token():
    graph = create_orchestrator(workers=TEAM).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    pieces, final = [], None
    async for chunk, meta in graph.astream(
        {"messages": [HumanMessage(EXAMPLE)]},
        {"configurable": {"thread_id": "stream"}},
        stream_mode="messages",
        context=CONTEXT,
    ):
        if meta["langgraph_node"] == "synthesizer":
            pieces += [c["args"] for c in chunk.tool_call_chunks]
        if meta["langgraph_node"] == "learn":
            final = chunk
    assert len(pieces) > 10
    deliverable = json.loads("".join(pieces))
    assert deliverable["summary"] and deliverable["summary"] in final.text


async def test_each_new_human_message_on_a_thread_is_the_next_request():
    graph = create_orchestrator(workers=TEAM).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "chat"}}
    await graph.ainvoke({"messages": [HumanMessage(EXAMPLE)]}, config, context=CONTEXT)
    again = EXAMPLE.replace("write a report", "write a short report")
    out = await graph.ainvoke({"messages": [HumanMessage(again)]}, config, context=CONTEXT)
    request = (await graph.aget_state(config)).values["request"]
    assert request.startswith(again) and "Earlier in the conversation" in request
    assert [m.type for m in out["messages"]] == ["human", "ai", "human", "ai"]
    # a request given on the thread afterwards is taken as given
    await graph.ainvoke({"request": EXAMPLE}, config, context=CONTEXT)
    assert (await graph.aget_state(config)).values["request"] == EXAMPLE

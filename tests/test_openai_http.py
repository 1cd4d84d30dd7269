"""The real langchain-openai client over real HTTP against a loopback OpenAI-compatible server."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from openai_server import FakeOpenAI

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.llm import StructuredOutputError, ask_structured
from orchestrator_graph.team import WorkerNote


@pytest.fixture
def api():
    with FakeOpenAI() as server:
        yield server


def chat(api: FakeOpenAI) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-test", base_url=api.url, api_key="not-a-key", max_retries=0)


async def test_structured_output_over_http_with_repair(api):
    api.malformed = 1
    note = await ask_structured(chat(api), WorkerNote, [HumanMessage("<facts>3 rows</facts>")])
    assert note.summary == "[offline] 3 rows"
    assert len(api.requests) == 2  # malformed, re-asked with the error, valid
    first = api.requests[0]["body"]
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["name"] == "WorkerNote"
    assert "could not be used as a WorkerNote" in str(api.requests[1]["body"]["messages"][-1])


async def test_malformed_every_time_fails_precisely(api):
    api.malformed = 10
    with pytest.raises(StructuredOutputError, match="WorkerNote: no valid answer after 3 tries"):
        await ask_structured(chat(api), WorkerNote, [HumanMessage("x")])


async def test_whole_run_on_chat_openai_for_every_role(api, tmp_path):
    graph = create_orchestrator(model=chat(api)).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    out = await graph.ainvoke(
        {"request": EXAMPLE},
        {"configurable": {"thread_id": "o"}},
        context={"output_dir": str(tmp_path), "use_memory": False},
    )
    assert out["report"]["status"] == "done"
    schemas = {r["body"]["response_format"]["json_schema"]["name"] for r in api.requests}
    assert schemas == {"PlanDraft", "WorkerNote", "DeliverableDraft"}


async def test_unreachable_provider_is_an_error_not_a_hang():
    dead = ChatOpenAI(
        model="x", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=5
    )
    with pytest.raises(Exception, match="Connection"):
        await ask_structured(dead, WorkerNote, [HumanMessage("x")])

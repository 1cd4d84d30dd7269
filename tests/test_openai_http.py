"""The real langchain-openai client over real HTTP against a loopback OpenAI-compatible server."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from openai_server import MALFORMED, FakeOpenAI

from orchestrator_graph import create_orchestrator
from orchestrator_graph.cli import EXAMPLE
from orchestrator_graph.errors import ProviderError
from orchestrator_graph.llm import (
    CallProfile,
    Limits,
    StructuredOutputError,
    ask_structured,
    calling,
)
from orchestrator_graph.schemas import WorkerNote


@pytest.fixture
def api():
    with FakeOpenAI() as server:
        yield server


def chat(api: FakeOpenAI) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-test", base_url=api.url, api_key="not-a-key", max_retries=0)


STRICT = CallProfile(role="worker", method="json_schema", limits=Limits(backoff=0.01))


async def test_structured_output_over_http_with_repair_showing_what_the_model_wrote(api):
    api.malformed = 1
    with calling(STRICT):
        note = await ask_structured(chat(api), WorkerNote, [HumanMessage("<facts>3 rows</facts>")])
    assert note.summary == "[offline] 3 rows"
    assert len(api.requests) == 2  # malformed, re-asked with the error, valid
    first = api.requests[0]["body"]
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["name"] == "WorkerNote"
    assert first["response_format"]["json_schema"]["strict"] is True
    repair = str(api.requests[1]["body"]["messages"][-1])
    assert "could not be used as a WorkerNote" in repair and MALFORMED in repair


async def test_malformed_every_time_fails_precisely_on_one_line(api):
    api.malformed = 10
    with (
        calling(STRICT),
        pytest.raises(
            StructuredOutputError,
            match="^worker model gpt-test: no valid WorkerNote after 3 tries; last problem: "
            "not valid JSON",
        ) as caught,
    ):
        await ask_structured(chat(api), WorkerNote, [HumanMessage("x")])
    assert "\n" not in str(caught.value)


async def test_whole_run_on_chat_openai_for_every_role(api, tmp_path):
    graph = create_orchestrator(model=chat(api)).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    out = await graph.ainvoke(
        {"request": EXAMPLE},
        {"configurable": {"thread_id": "o"}},
        context={
            "output_dir": str(tmp_path),
            "use_memory": False,
            "structured_output": {r: "json_schema" for r in ("planner", "worker", "synthesizer")},
        },
    )
    report = out["report"]
    assert report["status"] == "done"
    schemas = {r["body"]["response_format"]["json_schema"]["name"] for r in api.requests}
    assert schemas == {"PlanDraft", "WorkerNote", "DeliverableDraft"}
    # every request the server answered is counted, per role and model, with its tokens
    assert sum(report["model_calls"].values()) == len(api.requests)
    counted = sum(u["tokens"] for models in report["usage"].values() for u in models.values())
    assert counted == api.tokens
    assert report["usage"]["planner"]["gpt-test"]["methods"] == ["json_schema"]


async def test_unreachable_provider_is_one_line_not_a_hang():
    dead = ChatOpenAI(model="x", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    profile = CallProfile(role="planner", limits=Limits(timeout=5, retries=1, backoff=0.01))
    with calling(profile), pytest.raises(ProviderError, match="^planner model x: .*Connection"):
        await ask_structured(dead, WorkerNote, [HumanMessage("x")])


async def test_a_compatible_server_gets_max_tokens_too(api, monkeypatch):
    """llama.cpp ignores max_completion_tokens (what langchain-openai sends) and generates to
    the end of its context: a model string for a server that is not OpenAI's sends both."""
    from orchestrator_graph.llm import resolve_model

    monkeypatch.setenv("OPENAI_BASE_URL", api.url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    await resolve_model("openai:m", timeout=5, max_tokens=320).ainvoke("hi")
    body = api.requests[0]["body"]
    assert body["max_tokens"] == body["max_completion_tokens"] == 320

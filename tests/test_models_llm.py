from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from orchestrator_graph import OfflineChatModel, StructuredOutputError, resolve_model
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.prompts import messages, prompt_dir, render
from orchestrator_graph.schemas import PlanDraft, WorkerNote


class Scripted(OfflineChatModel):
    """Answers with the scripted tool-call arguments in order and records every prompt."""

    script: list[Any] = []
    seen: list[str] = []

    def _generate(self, msgs, stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.seen.append("\n".join(str(m.content) for m in msgs))
        name = kwargs["tools"][0]["function"]["name"]
        args = self.script.pop(0)
        msg = AIMessage(
            content="", tool_calls=[{"name": name, "args": args, "id": f"c{len(self.seen)}"}]
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_offline_model_is_a_chat_model_with_structured_output():
    model = resolve_model("offline")
    assert isinstance(model, BaseChatModel) and model._llm_type == "offline-deterministic"
    prompt = messages(
        "planner",
        request="Collect data.csv, analyse it by region and report",
        skills="data_collection, analysis, reporting",
        workers="none",
        examples="none",
        feedback="none",
    )
    draft = model.with_structured_output(PlanDraft).invoke(prompt)
    assert isinstance(draft, PlanDraft)
    assert [t.id for t in draft.tasks] == ["collect_1", "analyse", "report"]
    plan = draft.to_plan()
    assert plan.tasks[0].inputs == {"path": "data.csv"}
    assert plan.tasks[1].inputs == {"group_by": "region"}
    assert draft.goal.startswith("[offline]")
    text = model.invoke([HumanMessage("hello")])
    assert text.content.startswith("[offline]") and text.usage_metadata["input_tokens"] == 1


async def test_malformed_output_is_reasked_with_the_error():
    model = Scripted(script=[{"summary": None}, {"summary": "fixed"}], seen=[])
    note = await ask_structured(model, WorkerNote, [HumanMessage("go")])
    assert note.summary == "fixed"
    assert len(model.seen) == 2 and "could not be used as a WorkerNote" in model.seen[1]


async def test_checker_rejection_is_reasked_then_fails_precisely():
    model = Scripted(script=[{"summary": "a"}, {"summary": "b"}, {"summary": "c"}], seen=[])

    def check(note: WorkerNote) -> None:
        raise ValueError(f"summary {note.summary!r} is too short")

    with pytest.raises(StructuredOutputError, match="no valid WorkerNote after 3 tries.*'c'"):
        await ask_structured(model, WorkerNote, [HumanMessage("go")], check=check, reasks=2)
    assert "summary 'b' is too short" in model.seen[2]


def test_prompts_load_by_name_and_need_their_values():
    assert (prompt_dir() / "planner.system.md").is_file()
    with pytest.raises(KeyError, match="needs a value for 'request'"):
        render("planner.user", skills="x", examples="")
    with pytest.raises(KeyError, match="no prompt named 'nope'"):
        render("nope")


def test_bad_model_spec_is_named():
    with pytest.raises(ValueError, match="provider:model"):
        resolve_model("")


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
async def test_the_offline_model_answers_every_schema_under_every_method(method):
    from test_provider_matrix import ROLE_CALLS

    from orchestrator_graph.llm import CallProfile, calling
    from orchestrator_graph.usage import track_usage

    for call in ROLE_CALLS.values():
        with track_usage() as usage, calling(CallProfile(role=call.role, method=method)):
            answer = await ask_structured(OfflineChatModel(), call.schema, call.prompt())
        assert isinstance(answer, call.schema)
        stats = usage.models["offline-deterministic"]
        assert stats.methods == [method] and stats.failures == 0 and stats.calls == 1


def test_the_method_comes_from_the_context_then_the_model_string_then_the_table():
    from orchestrator_graph.context import Context
    from orchestrator_graph.llm import method_for
    from orchestrator_graph.roles import Roles

    roles = Roles("offline", {"planner": "offline#json_mode"})
    assert roles.profile("planner", Context()).method == "json_mode"
    chosen = Context(structured_output={"planner": "json_schema"})
    assert roles.profile("planner", chosen).method == "json_schema"
    worker = roles.profile("worker", Context())
    assert worker.method is None
    assert method_for(roles.model("worker", Context()), worker) == "function_calling"
    with pytest.raises(ValueError, match="unknown structured-output method 'xml'"):
        Roles("offline#xml")
    with pytest.raises(ValueError, match="structured_output\\['planner'\\]: 'yaml' is not allowed"):
        Context(structured_output={"planner": "yaml"})

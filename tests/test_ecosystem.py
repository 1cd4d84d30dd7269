"""Workers users bring from the ecosystem (prebuilt agents, LangChain tools) get their task in
their own terms; the planner sees every worker's contract; roles' prompts can be replaced."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import OfflineChatModel, Plan, Task, Worker, create_orchestrator
from orchestrator_graph.errors import PlanValidationError
from orchestrator_graph.ledger import Ledger


class ScriptedModel(GenericFakeChatModel):
    """Answers from a script and keeps every conversation it was sent."""

    received: list[list[BaseMessage]] = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.received.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)

    def bind_tools(self, tools, **kwargs):
        return self


def scripted(*answers: AIMessage) -> ScriptedModel:
    return ScriptedModel(messages=iter(answers), received=[])


def lookup_call(city: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "population", "args": {"city": city}, "id": "c1"}])


@tool
def population(city: str) -> int:
    """The population of a city."""
    return {"Lyon": 522_000}.get(city, 0)


received_by_tool: list[dict[str, Any]] = []


@tool
def convert(amount: float, rate: float) -> dict:
    """Convert an amount at a rate."""
    received_by_tool.append({"amount": amount, "rate": rate})
    return {"value": amount * rate, "summary": f"{amount} at {rate}"}


def run(team: list[Worker], tasks: list[Task], **kw) -> tuple[dict, InMemoryStore]:
    store = InMemoryStore()
    graph = create_orchestrator(workers=team, **kw).compile(
        checkpointer=InMemorySaver(), store=store
    )
    plan = Plan(tasks=tasks).model_dump()
    config = {"configurable": {"thread_id": "t"}}
    return graph, store, graph.ainvoke({"request": "eco", "plan": plan}, config)


async def test_agent_and_tool_workers_get_their_task_inputs_and_upstream():
    received_by_tool.clear()
    model = scripted(lookup_call("Lyon"), AIMessage("Lyon has 522000 people; 250.0 converted"))
    team = [
        Worker(name="converter", skills=["fx"], run=convert),
        Worker(name="writer", skills=["write"], run=create_agent(model, [population])),
    ]
    tasks = [
        Task(id="fx", title="convert", skills=["fx"], inputs={"amount": 100, "rate": 2.5}),
        Task(
            id="brief",
            title="Write the city brief",
            description="Use the population tool.",
            skills=["write"],
            depends_on=["fx"],
            inputs={"city": "Lyon"},
            acceptance=[{"kind": "contains", "field": "answer", "text": "522000"}],
        ),
    ]
    _, store, call = run(team, tasks)
    out = await call
    report = out["report"]
    assert report["status"] == "done", [t["feedback"] for t in report["tasks"].values()]
    assert received_by_tool == [{"amount": 100, "rate": 2.5}]
    first = model.received[0][-1].text
    assert "Write the city brief" in first and "Use the population tool." in first
    assert '"city": "Lyon"' in first and '"value": 250.0' in first  # inputs and upstream
    assert model.received[1][-1].type == "tool" and model.received[1][-1].text == "522000"
    attempts = await Ledger(store, report["run_id"]).attempts()
    result = next(r for r, _ in attempts if r.task_id == "brief")
    assert result.output["tool_calls"] == [
        {"name": "population", "args": {"city": "Lyon"}, "result": "522000"}
    ]
    assert result.output["answer"].startswith("Lyon has 522000") and result.tokens > 0


def capital_task(title: str, skill: str, field: str) -> Task:
    """A task whose result must name Paris in ``field``."""
    return Task(
        id="capital",
        title=title,
        skills=[skill],
        acceptance=[{"kind": "contains", "field": field, "text": "Paris"}],
    )


async def test_an_agent_that_ignores_its_task_is_rejected_by_qa():
    from langgraph.prebuilt import create_react_agent

    model = scripted(*[AIMessage("I received 0 messages: []")] * 3)
    with pytest.warns(Warning, match="create_react_agent has been moved"):
        agent = create_react_agent(model, [])
    team = [Worker(name="echo", skills=["write"], run=agent)]
    _, _, call = run(team, [capital_task("Name the capital of France", "write", "answer")])
    report = (await call)["report"]
    assert "Name the capital of France" in model.received[0][-1].text
    assert report["tasks"]["capital"]["status"] == "failed"
    assert "'Paris' not found" in report["tasks"]["capital"]["feedback"]
    assert report["status"] == "failed"


async def test_structured_response_is_the_output():
    from langchain.agents.structured_output import ToolStrategy
    from pydantic import BaseModel

    class Answer(BaseModel):
        capital: str

    call = {"name": "Answer", "args": {"capital": "Paris"}, "id": "a1"}
    model = scripted(AIMessage("", tool_calls=[call]))
    agent = create_agent(model, [], response_format=ToolStrategy(Answer))
    team = [Worker(name="geo", skills=["geo"], run=agent)]
    _, store, call_ = run(team, [capital_task("Capital of France", "geo", "capital")])
    report = (await call_)["report"]
    assert report["status"] == "done", report["tasks"]
    assert "Capital of France" in model.received[0][-1].text
    (result,) = [r for r, _ in await Ledger(store, report["run_id"]).attempts()]
    assert result.output == {"capital": "Paris"}


def test_plan_validation_refuses_inputs_that_break_a_contract():
    translate = Worker(
        name="translate",
        skills=["translation"],
        input_schema={
            "type": "object",
            "properties": {"text": {"type": "string"}, "to": {"enum": ["fr", "de"]}},
            "required": ["text", "to"],
        },
        run=lambda p: {"text": p.task.inputs["text"]},
    )
    team = [translate, Worker(name="converter", skills=["fx"], run=convert)]
    graph = create_orchestrator(workers=team)
    from orchestrator_graph.nodes.planner import validate_for_team
    from orchestrator_graph.registry import Registry

    plan = Plan(
        tasks=[
            Task(id="tr", title="tr", skills=["translation"], inputs={"to": "es"}),
            Task(id="fx", title="fx", skills=["fx"], inputs={"amount": "ten"}),
        ]
    )
    with pytest.raises(PlanValidationError) as err:
        validate_for_team(plan, Registry(team))
    problems = err.value.problems
    assert problems[0].startswith("task 'tr' inputs break worker 'translate''s contract:")
    assert (
        "'text' is a required property" in problems[0]
        and "inputs.to: 'es' is not one" in (problems[0])
    )
    assert "inputs.amount: 'ten' is not of type 'number'" in problems[1]
    assert "'rate' is a required property" in problems[1]
    assert graph is not None


async def test_a_contract_breach_stops_the_run_before_any_worker_runs():
    received_by_tool.clear()
    team = [Worker(name="converter", skills=["fx"], run=convert)]
    _, _, call = run(team, [Task(id="fx", title="fx", skills=["fx"], inputs={"amount": 3})])
    with pytest.raises(PlanValidationError, match="inputs break worker 'converter'"):
        await call
    assert received_by_tool == []


class RecordingPlanner(OfflineChatModel):
    seen: list[list[BaseMessage]] = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


async def test_the_planner_sees_descriptions_and_contracts():
    planner = RecordingPlanner(seen=[])
    team = [
        Worker(name="converter", skills=["fx"], run=convert),
        Worker(name="writer", skills=["write"], description="writes briefs", run=lambda p: {}),
    ]
    graph = create_orchestrator(workers=team, models={"planner": planner}).compile()
    with pytest.raises(Exception):  # noqa: B017 - the offline plan is not the point here
        await graph.ainvoke({"request": "convert 10 at 2"})
    prompt = planner.seen[0][-1].text
    assert "- converter (skills: fx): Convert an amount at a rate." in prompt
    assert '"required":["amount","rate"]' in prompt
    assert "- writer (skills: write): writes briefs" in prompt


async def test_prompt_overrides_string_file_and_template(tmp_path):
    with pytest.raises(ValueError, match=r"prompts\['planner'\]: missing variables: request"):
        create_orchestrator(prompts={"planner": "Plan this: $workers"})
    with pytest.raises(ValueError, match="unknown ones: colour"):
        create_orchestrator(prompts={"planner": "$request $workers $colour"})
    with pytest.raises(ValueError, match="no role 'boss'"):
        create_orchestrator(prompts={"boss": "x"})
    with pytest.raises(ValueError, match="no file"):
        create_orchestrator(prompts={"planner": str(tmp_path / "missing.md")})

    team = [Worker(name="converter", skills=["fx"], run=convert)]
    file = tmp_path / "planner.md"
    file.write_text("FROM FILE <request>$request</request> <skills>$skills</skills> $workers")
    template = ChatPromptTemplate.from_messages(
        [
            ("system", "You plan tersely."),
            ("human", "TEMPLATE <request>{request}</request> {workers}"),
        ]
    )
    for override, marker in ((file, "FROM FILE"), (template, "TEMPLATE")):
        planner = RecordingPlanner(seen=[])
        graph = create_orchestrator(
            workers=team, models={"planner": planner}, prompts={"planner": override}
        ).compile()
        with pytest.raises(Exception):  # noqa: B017 - only the prompt is checked
            await graph.ainvoke({"request": "convert ten"})
        sent = planner.seen[0]
        assert sent[-1].text.startswith(f"{marker} <request>convert ten</request>")
        assert "- converter (skills: fx)" in sent[-1].text
    assert sent[0].text == "You plan tersely."


def test_a_tools_arguments_are_checked_before_it_is_called():
    """At the attempt too (a tool worker that joined after the plan was checked)."""
    from orchestrator_graph.adapters import tool_arguments
    from orchestrator_graph.errors import ToolArgumentsError

    received_by_tool.clear()
    inputs = {"amount": "ten", "note": "not an argument"}
    with pytest.raises(ToolArgumentsError) as err:
        tool_arguments(convert, "fx", inputs)
    assert str(err.value) == (
        "tool 'convert' cannot take the inputs of task 'fx': (inputs): 'rate' is a required "
        "property; amount: 'ten' is not of type 'number'"
    )
    assert tool_arguments(convert, "fx", {"amount": 1, "rate": 2, "x": 0}) == {
        "amount": 1,
        "rate": 2,
    }
    assert received_by_tool == []

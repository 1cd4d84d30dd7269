"""Workers brought from the LangChain ecosystem: a compiled agent whose state is ``messages``
(``create_agent``, ``create_react_agent``, any such graph), a LangChain tool (``@tool``,
``BaseTool``, MCP tools loaded by ``langchain-mcp-adapters``). Each kind gets its task in the
form it understands and answers in a form the gates and the ledger can read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from jsonschema import Draft202012Validator
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.pregel import Pregel
from pydantic import BaseModel

from orchestrator_graph.errors import ToolArgumentsError
from orchestrator_graph.prompts import render

Kind = Literal["agent", "tool", "other"]
SUMMARY_CHARS = 200


def kind_of(run: Any) -> Kind:
    if isinstance(run, BaseTool):
        return "tool"
    if isinstance(run, Pregel) and takes_messages(run):
        return "agent"
    return "other"


def takes_messages(graph: Pregel) -> bool:
    """A graph whose input is a conversation: ``messages`` and nothing the worker input holds."""
    props = graph.get_input_jsonschema().get("properties", {})
    return "messages" in props and "task" not in props


def tool_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON Schema of the tool's arguments (MCP tools carry theirs as a dict)."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()  # type: ignore[union-attr]  # pydantic v2 models only


def schema_errors(schema: Mapping[str, Any], value: Any) -> list[str]:
    """Every way ``value`` breaks ``schema``, one line each, with the path into the value."""
    errors = sorted(Draft202012Validator(dict(schema)).iter_errors(value), key=lambda e: e.path)
    return [f"{'.'.join(map(str, e.path)) or '(inputs)'}: {e.message}" for e in errors]


def tool_arguments(tool: BaseTool, task_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The tool's arguments from the task's inputs (the keys its schema names), validated."""
    schema = tool_schema(tool)
    names = schema.get("properties", {})
    args = {k: v for k, v in inputs.items() if k in names}
    problems = schema_errors(schema, args)
    if problems:
        raise ToolArgumentsError(
            f"tool {tool.name!r} cannot take the inputs of task {task_id!r}: {'; '.join(problems)}"
        )
    return args


async def call_tool(tool: BaseTool, payload: Any) -> Any:
    task = payload.task
    out = await tool.ainvoke(tool_arguments(tool, task.id, task.inputs))
    return as_output(out)


def as_output(value: Any) -> Any:
    """A dict stays as it is (also one an MCP tool sent as JSON text); anything else becomes
    ``{"result", "summary"}``."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return value
    if isinstance(value, (list, tuple)) and value and all(_is_text_block(v) for v in value):
        value = _parsed("".join(v["text"] for v in value))  # MCP content blocks
        if isinstance(value, dict):
            return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return {"result": value, "summary": text[:SUMMARY_CHARS]}


def _parsed(text: str) -> Any:
    """An MCP tool's structured answer arrives as JSON text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_text_block(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "text" and "text" in value


def conversation(payload: Any) -> list[BaseMessage]:
    """The task, its instructions and inputs, the approved upstream outputs and any feedback,
    as the conversation an agent starts from."""
    task = payload.task
    text = render(
        "worker_agent",
        title=task.title,
        description=task.description,
        inputs=json.dumps(task.inputs, default=str, indent=1),
        upstream=json.dumps(payload.upstream, default=str, indent=1)[:20_000],
        feedback=payload.feedback or "none",
    )
    return [HumanMessage(text)]


async def call_agent(agent: Pregel, payload: Any) -> Any:
    state = await agent.ainvoke({"messages": conversation(payload)})
    return agent_output(state)


def agent_output(state: Mapping[str, Any]) -> Any:
    """The agent's ``structured_response`` if it has one, else its last AI message, with the
    tool calls it made on the way and their results (the ledger keeps them with the result;
    grounding finds the figures the answer took from them)."""
    every = state.get("messages", [])
    results = {m.tool_call_id: m.text for m in every if isinstance(m, ToolMessage)}
    messages = [m for m in every if isinstance(m, AIMessage)]
    calls = [
        {"name": c["name"], "args": c["args"], "result": results.get(c["id"] or "")}
        for m in messages
        for c in m.tool_calls
    ]
    structured = state.get("structured_response")
    if structured is not None:
        return as_output(structured)
    if not messages:
        raise ValueError("the agent answered with no AI message")
    text = messages[-1].text
    return {"answer": text, "summary": text[:SUMMARY_CHARS], "tool_calls": calls}

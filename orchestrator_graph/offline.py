"""``OfflineChatModel``: a deterministic, rule-based stand-in for a chat model.

It is a genuine ``BaseChatModel`` (tool binding and ``with_structured_output`` included), so the
whole orchestrator runs through exactly the code paths a real model uses — with no key, no server
and no network. Its answers are keyword rules and templates over the prompt's tagged blocks
(``<request>``, ``<skills>``, ``<facts>``, ``<checks>``, ``<results>``): predictable plumbing for
demos and tests, not intelligence. Every answer it writes starts with ``[offline]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Responder = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(prompt text, JSON schema of the tool) -> the tool call's arguments."""

TAG = "[offline]"


def tagged(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.S)
    return match.group(1) if match else ""


# --- planner -------------------------------------------------------------------------------

_SKILL_WORDS: dict[str, tuple[str, ...]] = {
    "data_collection": ("collect", "load", "read", "gather", "ingest", "fetch"),
    "processing": ("clean", "transform", "process", "filter", "derive", "normali"),
    "analysis": ("analy", "statistic", "summari", "aggregate", "compare", "trend"),
    "validation": ("validat", "check", "verify", "quality", "audit"),
    "reporting": ("report", "write", "document", "present", "markdown"),
}
_PATH = re.compile(r"[\w./-]+\.(?:csv|json)\b")
_GROUP_BY = re.compile(r"\bby ([a-z_]+)\b", re.I)


def _plan(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    request = tagged(prompt, "request") or prompt
    skills = [s.strip() for s in tagged(prompt, "skills").split(",") if s.strip()]
    lowered = request.lower()
    wanted = [s for s in skills if any(w in lowered for w in _SKILL_WORDS.get(s, (s,)))]
    paths = _PATH.findall(request)
    if paths and "data_collection" in skills and "data_collection" not in wanted:
        wanted.insert(0, "data_collection")
    if not wanted:
        wanted = skills[:1]
    tasks: list[dict[str, Any]] = []
    upstream: list[str] = []
    if "data_collection" in wanted:
        for i, path in enumerate(paths or [""], start=1):
            inputs = {"path": path} if path else {}
            tasks.append(
                _task(
                    f"collect_{i}",
                    f"Collect {path or 'the data'}",
                    "data_collection",
                    [],
                    inputs,
                    [{"kind": "min_items", "field": "rows", "value": 1}],
                )
            )
        upstream = [t["id"] for t in tasks]
    if "processing" in wanted:
        tasks.append(
            _task(
                "process",
                "Clean and transform the data",
                "processing",
                upstream,
                {},
                [{"kind": "min_items", "field": "rows", "value": 1}],
            )
        )
        upstream = ["process"]
    middle: list[str] = []
    group = _GROUP_BY.search(request)
    if "analysis" in wanted:
        inputs = {"group_by": group.group(1).lower()} if group else {}
        tasks.append(
            _task(
                "analyse",
                "Analyse the data",
                "analysis",
                upstream,
                inputs,
                [{"kind": "has_keys", "keys": ["statistics"]}, *_agree("rows", upstream)],
            )
        )
        middle.append("analyse")
    if "validation" in wanted:
        tasks.append(
            _task(
                "validate",
                "Validate the data",
                "validation",
                upstream,
                {},
                [
                    {"kind": "has_keys", "keys": ["issues", "checked_rows"]},
                    *_agree("checked_rows", upstream),
                ],
            )
        )
        middle.append("validate")
    if "reporting" in wanted:
        tasks.append(
            _task(
                "report",
                "Write the report",
                "reporting",
                middle or upstream,
                {},
                [
                    {"kind": "contains", "field": "markdown", "text": "# "},
                    {"kind": "references_upstream", "field": "markdown"},
                    {
                        "kind": "sections",
                        "field": "markdown",
                        "keys": [f"{t}: summary" for t in middle or upstream],
                    },
                ],
            )
        )
    for skill in wanted:
        if skill not in _SKILL_WORDS:
            tasks.append(_task(skill, f"{skill.replace('_', ' ').title()}", skill, [], {}, []))
    return {"goal": f"{TAG} {request.strip()[:200]}", "tasks": tasks}


def _agree(field: str, upstream: list[str]) -> list[dict[str, Any]]:
    """The row count must equal the cleaned table's, when there is one upstream."""
    if upstream != ["process"]:
        return []
    return [
        {
            "kind": "matches_upstream",
            "field": field,
            "task": "process",
            "upstream_field": "rows#len",
        }
    ]


def _task(
    tid: str,
    title: str,
    skill: str,
    deps: list[str],
    inputs: dict[str, Any],
    acceptance: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "description": title,
        "skills": [skill],
        "depends_on": list(deps),
        "inputs": inputs,
        "acceptance": acceptance,
    }


# --- reviewer, synthesizer, notes ------------------------------------------------------------


def _review(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    checks = tagged(prompt, "checks")
    failed = [line for line in checks.splitlines() if "FAIL" in line]
    score = 0.4 if failed else 0.8
    reason = "deterministic checks failed" if failed else "deterministic checks passed"
    return {
        "score": score,
        "verdict": "reject" if failed else "approve",
        "reasons": [f"{TAG} no judgement of content; {reason}"],
    }


def _deliverable(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    request = tagged(prompt, "request")
    sections = []
    for block in re.findall(r"<result task=\"([^\"]+)\">\s*(.*?)\s*</result>", prompt, re.S):
        sections.append({"heading": block[0], "body": block[1][:2000]})
    return {
        "title": f"{TAG} {request.strip()[:80]}",
        "summary": f"{TAG} {len(sections)} approved task results combined verbatim.",
        "sections": sections,
    }


def _note(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    """The facts verbatim, cut at a word (never inside a number: the grounding check reads it)."""
    words, size = [], len(TAG)
    for word in tagged(prompt, "facts").split():
        size += len(word) + 1
        if size > 400:
            break
        words.append(word)
    return {"summary": f"{TAG} {' '.join(words)}"}


def _most_qualified(prompt: str) -> dict[str, Any]:
    """The candidate with the highest weight (the earliest attempt on a tie): a rule, not a
    judgement of the answers."""
    text = tagged(prompt, "candidates")
    return max(json.loads(text) if text else [], key=lambda c: (c["weight"], -c["attempt"]))


def _judge(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    best = _most_qualified(prompt)
    return {
        "attempt": best["attempt"],
        "reason": f"{TAG} cannot judge content; chose the most qualified worker's answer "
        f"({best['worker']}, weight {best['weight']})",
    }


def _merge(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    best = _most_qualified(prompt)
    return {
        "output": best["output"],
        "reason": f"{TAG} cannot merge content; kept the most qualified worker's answer "
        f"({best['worker']})",
    }


def _mediation(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    return {"action": "skip", "reason": f"{TAG} cannot judge; the safe choice is to skip"}


def _replan(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    """The same tasks again under new ids (``id~rN``): a rule cannot find another approach, so
    the run's loop guard stops the second identical re-plan."""
    remaining = json.loads(tagged(prompt, "remaining") or "[]")
    round_ = tagged(prompt, "round") or "1"
    rename = {t["id"]: re.sub(r"~r\d+$", "", t["id"]) + f"~r{round_}" for t in remaining}
    tasks = [
        {
            **t,
            "id": rename[t["id"]],
            "depends_on": [rename.get(d, d) for d in t.get("depends_on", [])],
        }
        for t in remaining
    ]
    return {
        "tasks": tasks,
        "reason": f"{TAG} the same tasks under new ids: a rule cannot find another approach",
    }


DEFAULT_RESPONDERS: dict[str, Responder] = {
    "ReplanDraft": _replan,
    "PlanDraft": _plan,
    "RubricReview": _review,
    "DeliverableDraft": _deliverable,
    "WorkerNote": _note,
    "MediationAdvice": _mediation,
    "JudgeChoice": _judge,
    "MergedAnswer": _merge,
}


def _from_schema(schema: dict[str, Any]) -> Any:
    """The smallest value a JSON schema accepts: used for schemas no responder knows."""
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _from_schema(v) for k, v in props.items() if k in schema.get("required", props)}
    return {"string": TAG, "integer": 0, "number": 0.0, "boolean": False, "array": []}.get(kind)


def _response_format_reply(prompt: str, fmt: dict[str, Any], responders: dict) -> str:
    """The answer as JSON text, for ``response_format`` ``json_schema`` (the schema's name) or
    ``json_object`` (the schema named in the prompt, as ``llm`` writes it for JSON mode)."""
    if fmt.get("type") == "json_schema":
        name, schema = fmt["json_schema"]["name"], fmt["json_schema"].get("schema", {})
    else:
        found = re.findall(r'<schema name="([^"]+)">\s*(.*?)\s*</schema>', prompt, re.S)
        if not found:
            return json.dumps({"answer": f"{TAG} no schema given"})
        name, text = found[-1]
        schema = fmt.get("schema") or json.loads(text)
    responder = responders.get(name)
    return json.dumps(responder(prompt, schema) if responder else _from_schema(schema))


class OfflineChatModel(BaseChatModel):
    """Deterministic offline chat model: rules and templates, no intelligence, no network."""

    model_name: str = "offline-deterministic"
    responders: dict[str, Responder] = Field(default_factory=lambda: dict(DEFAULT_RESPONDERS))

    @property
    def _llm_type(self) -> str:
        return "offline-deterministic"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ):  # type: ignore[override]
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        tools: list[dict[str, Any]] = kwargs.get("tools") or []
        if tools:
            choice = kwargs.get("tool_choice")
            tool = next((t for t in tools if t["function"]["name"] == choice), tools[0])
            name = tool["function"]["name"]
            params = tool["function"].get("parameters", {})
            responder = self.responders.get(name)
            args = responder(prompt, params) if responder else _from_schema(params)
            call_id = "offline-" + hashlib.sha256((name + prompt).encode()).hexdigest()[:12]
            message = AIMessage(
                content="", tool_calls=[{"name": name, "args": args, "id": call_id}]
            )
        elif (kwargs.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            text = _response_format_reply(prompt, kwargs["response_format"], self.responders)
            message = AIMessage(content=text)
        else:
            digest = " ".join(prompt.split())[-300:]
            message = AIMessage(content=f"{TAG} no model is configured; last input: {digest}")
        words_in = len(prompt.split())
        words_out = len(str(message.content).split()) + len(str(message.tool_calls).split())
        message.response_metadata = {"model_name": self.model_name, "finish_reason": "stop"}
        message.usage_metadata = {
            "input_tokens": words_in,
            "output_tokens": words_out,
            "total_tokens": words_in + words_out,
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

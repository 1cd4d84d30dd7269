"""``OfflineChatModel``: a deterministic, rule-based stand-in for a chat model.

It is a genuine ``BaseChatModel`` (tool binding and ``with_structured_output`` included), so the
whole orchestrator runs through exactly the code paths a real model uses — with no key, no server
and no network. Its answers are keyword rules and templates over the prompt's tagged blocks
(``<request>``, ``<skills>``, ``<facts>``, ``<checks>``, ``<results>``): predictable plumbing for
demos and tests, not intelligence. Every answer it writes starts with ``[offline]``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
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
    "data_collection": ("collect", "load", "read", "gather", "ingest", "fetch", "import"),
    "processing": ("clean", "transform", "process", "filter", "derive", "normali", "tidy"),
    "analysis": ("analy", "statistic", "summari", "aggregate", "compare", "trend", "breakdown"),
    "validation": ("validat", "check", "verify", "quality", "audit", "sanity"),
    "reporting": ("report", "write", "document", "present", "markdown"),
}
_PATH = re.compile(r"[\w./-]+\.(?:csv|json)\b")
_GROUP_BY = re.compile(r"\b(?:by|per) ([a-z_]+)\b", re.I)
_SAMPLE_WORDS = ("sample", "bundled", "example data", "demo data")
_SUBJECT = re.compile(r"\b([a-z]+) (?:data|figures|records|numbers|table)\b", re.I)
_NOT_SUBJECTS = {"the", "sample", "bundled", "this", "that", "our", "my", "some", "example", "demo"}
_TABLE_WORK = ("processing", "validation", "analysis")


def _plan(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    """Collect -> clean -> validate -> analyse -> report, as far as the request asks and the
    team has the skills: analysing collected data always cleans and validates it first, and
    the analysis uses only the rows validation passed."""
    request = tagged(prompt, "request") or prompt
    skills = [s.strip() for s in tagged(prompt, "skills").split(",") if s.strip()]
    lowered = request.lower()
    wanted = {s for s in skills if any(w in lowered for w in _SKILL_WORDS.get(s, (s,)))}
    paths = list(dict.fromkeys(_PATH.findall(request)))  # each file once, however often named
    if not paths and any(w in lowered for w in _SAMPLE_WORDS):
        paths = _bundled_samples()
    if paths:
        wanted.add("data_collection")
    if wanted & {"analysis", "validation"} and "data_collection" in wanted:
        wanted.add("processing")  # raw cells are text: clean before checking or counting
    if "analysis" in wanted and "data_collection" in wanted:
        wanted.add("validation")  # analyse only the rows validation passes
    wanted &= set(skills)
    if not wanted:
        wanted = set(skills[:1])
    group = _GROUP_BY.search(request)
    tasks = _pipeline(wanted, paths, group.group(1).lower() if group else None, lowered)
    for skill in sorted(wanted - set(_SKILL_WORDS)):
        tasks.append(_task(skill, f"{skill.replace('_', ' ').title()}", skill, [], {}, []))
    return {"goal": f"{TAG} {request.strip()[:200]}", "tasks": tasks}


def _bundled_samples() -> list[str]:
    from orchestrator_graph.tools import SAMPLES

    return sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".csv", ".json"))


def _pipeline(
    wanted: set[str], paths: list[str], group: str | None, lowered: str
) -> list[dict[str, Any]]:
    """The tasks, each depending on the one before it in the pipeline."""
    tasks: list[dict[str, Any]] = []
    upstream: list[str] = []
    rows = [{"kind": "min_items", "field": "rows", "value": 1}]
    if "data_collection" in wanted:
        for i, path in enumerate(paths or [""], start=1):
            title = f"Collect {Path(path).name}" if path else "Collect the data"
            inputs = {"path": path} if path else {}
            tasks.append(_task(f"collect_{i}", title, "data_collection", [], inputs, rows))
        upstream = [t["id"] for t in tasks]
    if "processing" in wanted:
        title = "Clean and combine the tables" if len(upstream) > 1 else "Clean the table"
        tasks.append(_task("process", title, "processing", upstream, {}, rows))
        upstream = ["process"]
    finished: list[str] = []
    if "validation" in wanted:
        checks: list[dict[str, Any]] = [{"kind": "has_keys", "keys": ["issues", "checked_rows"]}]
        checks += _agree("checked_rows", upstream, "process")
        tasks.append(_task("validate", "Validate the rows", "validation", upstream, {}, checks))
        upstream, finished = ["validate"], ["validate"]
    if "analysis" in wanted:
        measure = "revenue" if "revenue" in lowered else "the measures"
        title = f"Analyse {measure}" + (f" by {group}" if group else "")
        checks = [
            {"kind": "has_keys", "keys": ["statistics"]},
            {"kind": "min_items", "field": "statistics", "value": 1},
            *_agree("rows", upstream, upstream[0] if len(upstream) == 1 else ""),
        ]
        inputs = {"group_by": group} if group else {}
        tasks.append(_task("analyse", title, "analysis", upstream, inputs, checks))
        finished = ["analyse", *finished]
    if "reporting" in wanted:
        sources = finished or upstream
        headings = ["Summary"] + (["Statistics"] if "analyse" in finished else [])
        headings += ["Validation findings"] if "validate" in finished else []
        checks = [
            {"kind": "contains", "field": "markdown", "text": "# "},
            {"kind": "references_upstream", "field": "markdown"},
            {"kind": "sections", "field": "markdown", "keys": headings},
        ]
        inputs = {"title": _report_title(lowered, group)}
        tasks.append(_task("report", "Write the report", "reporting", sources, inputs, checks))
    return tasks


def _report_title(lowered: str, group: str | None) -> str:
    subjects = [m for m in _SUBJECT.findall(lowered) if m not in _NOT_SUBJECTS]
    title = f"{subjects[0].capitalize() if subjects else 'Data'} report"
    if group:
        title += f": {'revenue' if 'revenue' in lowered else 'measures'} by {group}"
    return title


def _agree(field: str, upstream: list[str], table_task: str) -> list[dict[str, Any]]:
    """The row count must equal the upstream table's, when the table comes from one task."""
    if not table_task or upstream != [table_task] or table_task.startswith("collect"):
        return []
    return [
        {
            "kind": "matches_upstream",
            "field": field,
            "task": table_task,
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
    """The results as sections, a report first and whole (its Markdown), the others as their
    workers' notes; titled after the report, if there is one."""
    request = tagged(prompt, "request")
    reports, others = [], []
    for quoted, block in re.findall(
        r"<result task=\"([^\"]+)\">\s*(.*?)\s*</result>", prompt, re.S
    ):
        tid = html.unescape(quoted)
        markdown = tagged(block, "markdown")
        if markdown:
            reports.append({"heading": tid, "body": markdown})  # its title becomes the title
        else:
            others.append({"heading": tid, "body": block.split("\n", 1)[0][:600]})
    heading = re.search(r"^# (.+)\n*", reports[0]["body"], re.M) if reports else None
    title = heading.group(1) if heading else request.strip()[:80]
    if heading:
        reports[0]["body"] = reports[0]["body"].replace(heading.group(0), "", 1).strip()
    sections = reports + others
    return {
        "title": f"{TAG} {title}",
        "summary": f"{TAG} {len(sections)} approved task results, combined as written"
        + (": the report first, then each task's note." if reports else "."),
        "sections": sections,
    }


def _note(prompt: str, _schema: dict[str, Any]) -> dict[str, Any]:
    """The facts the worker passed, as short ``name: value`` phrases, cut at a word (never
    inside a number: the grounding check reads it)."""
    facts = tagged(prompt, "facts")
    try:
        data = json.loads(facts)
    except ValueError:
        return {"summary": _cut(f"{TAG} {facts}")}
    if not isinstance(data, dict):
        return {"summary": _cut(f"{TAG} {json.dumps(data, default=str)}")}
    phrases = [f"{k.replace('_', ' ')}: {_phrase(v)}" for k, v in data.items()]
    return {"summary": _cut(f"{TAG} {'; '.join(phrases)}")}


def _cut(text: str, size: int = 400) -> str:
    words, used = [], 0
    for word in text.split():
        used += len(word) + 1
        if used > size:
            break
        words.append(word)
    return " ".join(words)


def _phrase(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(map(str, value))
    if isinstance(value, (dict, list)):
        return f"{len(value)} items"
    return str(value)


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
    empty = {"string": TAG, "integer": 0, "number": 0.0, "boolean": False, "array": []}
    return empty.get(str(kind))


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
    ):
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

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """``_generate`` on the event loop: it only computes (well under a millisecond), and
        langchain's default sends it to a thread and back, which cost more than the answer."""
        return self._generate(messages, stop, None, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop, None, **kwargs):
            yield chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The same answer as ``_generate``, a few characters at a time (text, or a tool call's
        arguments), so ``stream_mode="messages"`` shows it arrive; usage on the last chunk."""
        message = self._generate(messages, stop, None, **kwargs).generations[0].message
        assert isinstance(message, AIMessage)
        call = message.tool_calls[0] if message.tool_calls else None
        text = json.dumps(call["args"]) if call else str(message.content)
        pieces = [text[i : i + STREAM_CHARS] for i in range(0, len(text), STREAM_CHARS)] or [""]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            chunk = AIMessageChunk(
                content="" if call else piece,
                tool_call_chunks=[
                    {
                        "name": call["name"] if n == 0 else None,
                        "args": piece,
                        "id": call["id"] if n == 0 else None,
                        "index": 0,
                    }
                ]
                if call
                else [],
                usage_metadata=message.usage_metadata if last else None,
                response_metadata=message.response_metadata if last else {},
            )
            yield ChatGenerationChunk(message=chunk)  # the caller reports each new token


STREAM_CHARS = 16
"""Characters per streamed chunk: about a few tokens."""

"""Every model call goes through here: models resolved from strings, answers as pydantic.

``ask_structured`` asks for a schema from ``schemas`` by the method the provider supports
(``json_schema`` strict, ``function_calling``, or ``json_mode`` with the schema in the prompt),
bounded by the role's time-out, retries and the run's budget; it retries only what retrying can
fix (429, 5xx, connection, time-out) with backoff, falls back once when a server refuses the
method (noted in the usage), re-asks once for a shorter answer after a length cut-off, and
re-asks with the error and the model's own answer when the answer cannot be used."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from orchestrator_graph.errors import BudgetSpent, ProviderError, StructuredOutputError
from orchestrator_graph.langsmith_runs import run_config
from orchestrator_graph.prompts import overriding, render
from orchestrator_graph.providers import (
    FALLBACK,
    METHODS,
    base_url,
    classify,
    default_method,
    describe,
    model_name,
    openai_like,
    provider_of,
    retry_after,
)
from orchestrator_graph.usage import CHARS_PER_TOKEN, current_tally

M = TypeVar("M", bound=BaseModel)
ModelSpec = str | BaseChatModel

OFFLINE = "offline"


@dataclass(frozen=True)
class Limits:
    """Bounds of one role's model calls."""

    timeout: float = 120.0
    max_tokens: int = 2048
    retries: int = 2
    backoff: float = 1.0


def who(role: str, model: str) -> str:
    return f"{role} model {model}" if role else f"model {model}"


@dataclass(frozen=True)
class CallProfile:
    """Who is calling (the role), how (method, limits) and within what budget."""

    role: str = ""
    method: str | None = None
    limits: Limits = field(default_factory=Limits)
    deadline: float | None = None
    token_limit: int | None = None
    tokens_before: int = 0
    prompts: Mapping[str, Any] | None = None
    run_id: str = ""
    """The orchestrator run the calls are made for (named in their LangSmith metadata)."""
    """Role -> the user's prompt for it (``prompt_overrides``)."""


_profile: ContextVar[CallProfile | None] = ContextVar("orchestrator_graph_call", default=None)


_deadline: ContextVar[float | None] = ContextVar("orchestrator_graph_deadline", default=None)


@contextmanager
def run_deadline(deadline: float | None) -> Iterator[None]:
    """Model calls inside the block (in the tasks it starts too) end by ``deadline`` (the run's
    seconds budget), whatever profile they are made with."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def ambient_deadline() -> float | None:
    return _deadline.get()


@contextmanager
def calling(profile: CallProfile) -> Iterator[CallProfile]:
    """Model calls inside the block are made for ``profile``'s role, method, limits, budget."""
    token = _profile.set(profile)
    try:
        with overriding(profile.prompts):
            yield profile
    finally:
        _profile.reset(token)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"openai:gpt-4.1#function_calling"`` -> the model string and the method it asks for."""
    name, _, method = spec.partition("#")
    if method and method not in METHODS:
        raise ValueError(
            f"model {spec!r}: unknown structured-output method {method!r}; "
            f"use one of {', '.join(METHODS)}"
        )
    return name.strip(), method or None


def resolve_model(spec: ModelSpec, **limits: Any) -> BaseChatModel:
    """A model object passes through; ``"offline"`` is the deterministic offline model; any other
    string goes to ``init_chat_model`` (``"openai:gpt-4.1"``, ``"anthropic:claude-sonnet-4-5"``;
    a ``#method`` suffix picks the structured-output method), with ``limits`` (``timeout``,
    ``max_tokens``) set and the client's own retries off (``ask_structured`` retries)."""
    if isinstance(spec, BaseChatModel):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"a model must be a chat model object or a 'provider:model' string, got {spec!r}"
        )
    name, _ = split_spec(spec)
    if name == OFFLINE or name.startswith(OFFLINE + ":"):
        from orchestrator_graph.offline import OfflineChatModel

        return OfflineChatModel()
    from langchain.chat_models import init_chat_model

    try:
        try:
            return _compatible(init_chat_model(name, **limits, max_retries=0), limits)
        except (TypeError, ValueError):
            if not limits:
                raise
            return init_chat_model(name)  # a provider that takes none of these settings
    except ImportError as err:
        raise ValueError(
            f"model {name!r}: the provider's package is not installed ({err})"
        ) from err
    except Exception as err:  # a missing key, an unknown provider: name the model and the cause
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"model {name!r} cannot be created: {first}") from err


def _compatible(model: BaseChatModel, limits: dict[str, Any]) -> BaseChatModel:
    """langchain-openai sends the output limit as ``max_completion_tokens``, which OpenAI-
    compatible servers such as llama.cpp ignore (they generate to the end of the context): send
    ``max_tokens`` as well to a server that is not OpenAI's."""
    limit = limits.get("max_tokens")
    if limit and provider_of(model) in ("openai_compatible", "openai_compatible_local"):
        extra = {**(getattr(model, "extra_body", None) or {}), "max_tokens": limit}
        return model.model_copy(update={"extra_body": extra})
    return model


# --- the request -----------------------------------------------------------------------------


@cache
def sent_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent for a structured-output model (strict-valid; see ``schemas``),
    without the titles pydantic adds (a third of the tokens, no meaning to a model)."""
    return _untitled(schema.model_json_schema())


def _untitled(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    for key in ("properties", "$defs"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _untitled(sub) for name, sub in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _untitled(out["items"])
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [_untitled(sub) for sub in out["anyOf"]]
    return out


_LEARNED: dict[tuple[str, str, str], str] = {}
"""(model class, name, base URL) -> the method that works, learned from a refusal."""


def forget_learned_methods() -> None:
    """Forget the methods learned from refusals (a server was replaced or upgraded)."""
    _LEARNED.clear()


def _model_key(model: BaseChatModel) -> tuple[str, str, str]:
    return (type(model).__name__, model_name(model), base_url(model) or "")


def method_for(model: BaseChatModel, profile: CallProfile) -> str:
    """The role's choice (context, CLI, model string), else what this process learned from a
    refusal, else the capability table."""
    return profile.method or _LEARNED.get(_model_key(model)) or default_method(model)


def _bind(model: BaseChatModel, schema: type[BaseModel], method: str) -> Runnable:
    name, sent = schema.__name__, sent_schema(schema)
    about = (schema.__doc__ or name).strip().splitlines()[0]
    if method == "function_calling":
        tool: dict[str, Any] = {"name": name, "description": about, "parameters": sent}
        if openai_like(model):
            tool["strict"] = True
        return model.bind_tools([{"type": "function", "function": tool}], tool_choice=name)
    if not openai_like(model):
        if method == "json_schema":  # the provider's own way; the raw message is parsed here
            structured = model.with_structured_output(
                {"title": name, "description": about, **sent},
                method="json_schema",
                include_raw=True,
            )
            return structured | (lambda out: out["raw"])
        return model  # JSON mode: the schema is in the prompt
    if method == "json_schema":
        spec = {"name": name, "description": about, "schema": sent, "strict": True}
        return model.bind(response_format={"type": "json_schema", "json_schema": spec})
    fmt: dict[str, Any] = {"type": "json_object"}
    if provider_of(model) not in ("openai", "azure_openai"):
        fmt["schema"] = sent  # llama.cpp and others constrain the output with it
    return model.bind(response_format=fmt)


def _prompted(messages: Sequence[BaseMessage], schema: type[BaseModel], method: str) -> list:
    if method != "json_mode":
        return list(messages)
    text = render("json_mode", title=schema.__name__, schema=json.dumps(sent_schema(schema)))
    return [*messages, HumanMessage(text)]


async def _request(
    model: BaseChatModel,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    method: str,
    profile: CallProfile,
) -> tuple[AIMessage, str]:
    """One answer, with retries for what retrying fixes and one fallback for a refused method;
    else a ``ProviderError`` naming role, model and the (redacted) error."""
    name, tries, fell_back = model_name(model), 0, False
    while True:
        _check_budget(profile)
        timeout = _time_left(profile)
        started = time.monotonic()
        try:
            runnable = _bind(model, schema, method)
            raw = await asyncio.wait_for(
                runnable.ainvoke(
                    _prompted(messages, schema, method),
                    run_config(profile.role or "model", profile.run_id),
                ),
                timeout,
            )
        except Exception as err:
            _note(name, seconds=time.monotonic() - started)
            cut = _cut_answer(err)
            if cut is not None:
                return cut, method
            kind = classify(err, method)
            if kind == "other":
                raise
            _count_error(name, err, messages, profile)
            if isinstance(err, TimeoutError) and timeout < profile.limits.timeout:
                raise BudgetSpent(_spent_reason(profile)) from None
            if kind == "refused" and not fell_back:
                new = FALLBACK[method]
                why = f"{method} -> {new}: {describe(err, timeout)}"
                _note(name, fallbacks=[why])
                _LEARNED[_model_key(model)] = new
                method, fell_back = new, True
                continue
            if kind == "retry" and tries < profile.limits.retries:
                tries += 1
                await asyncio.sleep(_delay(err, tries, profile))
                continue
            reason = describe(err, timeout)
            if tries:
                reason += f" (after {tries + 1} tries)"
            raise ProviderError(profile.role, name, reason, retryable=kind == "retry") from err
        _note(name, seconds=time.monotonic() - started, methods=[method])
        if not isinstance(raw, AIMessage):
            raw = AIMessage(content=json.dumps(raw, default=str))
        return raw, method


def _cut_answer(err: BaseException) -> AIMessage | None:
    """The answer inside the OpenAI SDK's ``LengthFinishReasonError``: cut off, not failed."""
    completion = getattr(err, "completion", None)
    choices = getattr(completion, "choices", None)
    if not choices:
        return None
    message = choices[0].message
    calls = [
        {"name": c.function.name, "args": c.function.arguments, "id": c.id, "error": "cut off"}
        for c in (message.tool_calls or [])
    ]
    return AIMessage(
        content=message.content or "",
        invalid_tool_calls=calls,
        response_metadata={"finish_reason": choices[0].finish_reason},
    )


def _count_error(
    name: str, err: BaseException, messages: Sequence[BaseMessage], profile: CallProfile
) -> None:
    """A time-out never reaches the callbacks' error hook; a provider error does. The server
    may still have read the prompt and written up to the output limit, and may bill it: the
    abandoned call is counted at that bound, marked as estimated, so budgets see it."""
    if isinstance(err, TimeoutError):
        prompt = sum(len(str(m.content)) for m in messages) // CHARS_PER_TOKEN
        bound = prompt + profile.limits.max_tokens
        _note(name, errors=1, tokens=bound, estimated_tokens=bound)


def _delay(err: BaseException, tries: int, profile: CallProfile) -> float:
    asked = retry_after(err)
    wait = asked if asked is not None else profile.limits.backoff * 2 ** (tries - 1)
    wait *= 1 + (0 if asked is not None else random.uniform(0, 0.25))
    left = profile.deadline - time.time() if profile.deadline else None
    cap = min(30.0, profile.limits.timeout, *([left] if left is not None else []))
    return max(0.0, min(wait, cap))


def _time_left(profile: CallProfile) -> float:
    if profile.deadline is None:
        return profile.limits.timeout
    return max(0.001, min(profile.limits.timeout, profile.deadline - time.time()))


def _spent_reason(profile: CallProfile) -> str:
    tally = current_tally()
    used = profile.tokens_before + (tally.total_tokens if tally else 0)
    if profile.deadline is not None and time.time() >= profile.deadline:
        return f"seconds budget spent during the {profile.role}'s model calls"
    limit = profile.token_limit
    return f"tokens budget spent during the {profile.role}'s model calls: {used} > {limit}"


def _check_budget(profile: CallProfile) -> None:
    """Between calls: no new call once a budget is spent."""
    tally = current_tally()
    used = profile.tokens_before + (tally.total_tokens if tally else 0)
    late = profile.deadline is not None and time.time() >= profile.deadline
    if late or (profile.token_limit is not None and used > profile.token_limit):
        raise BudgetSpent(_spent_reason(profile))


def _note(model: str, **counts: Any) -> None:
    tally = current_tally()
    if tally is not None:
        tally.note(model, **counts)


# --- the answer ------------------------------------------------------------------------------


def answer_text(raw: AIMessage) -> str:
    """What the model wrote, whatever the method: tool arguments (also unparsable ones) or the
    text of the message."""
    if raw.tool_calls:
        return json.dumps(raw.tool_calls[0].get("args"), default=str)
    if raw.invalid_tool_calls:
        return str(raw.invalid_tool_calls[0].get("args") or "")
    if isinstance(raw.content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in raw.content)
    return str(raw.content or "")


def cut_off(raw: AIMessage) -> bool:
    meta = raw.response_metadata or {}
    reason = str(meta.get("finish_reason") or meta.get("stop_reason") or "").lower()
    return reason in ("length", "max_tokens")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:600]


def _parse(schema: type[M], raw: AIMessage) -> M:
    refusal = (raw.additional_kwargs or {}).get("refusal")
    if refusal:
        raise ValueError(f"the model refused: {refusal}")
    if raw.tool_calls:
        return schema.model_validate(raw.tool_calls[0].get("args"))
    text = answer_text(raw).strip()
    if not text:
        raise ValueError("the answer was empty")
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON: {err}") from None
    return schema.model_validate(value)


async def ask_structured(
    model: BaseChatModel,
    schema: type[M],
    messages: Sequence[BaseMessage],
    *,
    check: Callable[[M], None] | None = None,
    reasks: int = 2,
) -> M:
    """Ask for ``schema``; on an answer that is cut off, malformed, or that ``check`` rejects with
    a ``ValueError``, re-ask (at most ``reasks`` times, plus once for a cut-off), showing the
    model what it wrote and what was wrong; then raise precisely, on one line."""
    profile = _profile.get() or CallProfile()
    name, method = model_name(model), method_for(model, profile)
    history, problem, shortened, tries = list(messages), "", False, 0
    while tries <= reasks:
        try:
            raw, method = await _request(model, schema, history, method, profile)
        except (OutputParserException, json.JSONDecodeError) as err:  # parsed inside a client
            raw = AIMessage(content=getattr(err, "llm_output", None) or "")
            problem = _one_line(err)
        if cut_off(raw) and not shortened:
            shortened = True
            _note(name, failures=1, length_reasks=1)
            history = [*messages, HumanMessage(render("shorter", schema=schema.__name__))]
            continue
        try:
            parsed = _parse(schema, raw)
            if check is not None:
                check(parsed)
            return parsed
        except (ValueError, OutputParserException) as err:
            problem = "the answer was cut off at the output limit; " if cut_off(raw) else ""
            problem += _one_line(err)
        tries += 1
        _note(name, failures=1, repairs=int(tries <= reasks))
        answer = answer_text(raw)[:3000] or "(an empty answer)"
        repair = render("repair", schema=schema.__name__, error=problem, answer=answer)
        history = [*messages, HumanMessage(repair)]
    raise StructuredOutputError(
        f"{who(profile.role, name)}: no valid {schema.__name__} after {reasks + 1} tries; "
        f"last problem: {problem}"
    )

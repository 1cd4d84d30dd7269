"""Every model call goes through here: models resolved from strings, answers as pydantic."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ValidationError

from orchestrator_graph.prompts import render

M = TypeVar("M", bound=BaseModel)
ModelSpec = str | BaseChatModel

OFFLINE = "offline"


class StructuredOutputError(RuntimeError):
    """The model did not produce a valid answer within the allowed re-asks."""


def resolve_model(spec: ModelSpec) -> BaseChatModel:
    """A model object passes through; ``"offline"`` is the deterministic offline model; any other
    string goes to ``init_chat_model`` (``"openai:gpt-4.1"``, ``"anthropic:claude-sonnet-4-5"``)."""
    if isinstance(spec, BaseChatModel):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"a model must be a chat model object or a 'provider:model' string, got {spec!r}"
        )
    if spec == OFFLINE or spec.startswith(OFFLINE + ":"):
        from orchestrator_graph.offline import OfflineChatModel

        return OfflineChatModel()
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(spec)
    except ImportError as err:
        raise ValueError(
            f"model {spec!r}: the provider's package is not installed ({err})"
        ) from err
    except Exception as err:  # a missing key, an unknown provider: name the model and the cause
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"model {spec!r} cannot be created: {first}") from err


_STRUCTURED: OrderedDict[tuple[int, type], tuple[BaseChatModel, Runnable]] = OrderedDict()


def _structured(model: BaseChatModel, schema: type[BaseModel]) -> Runnable:
    """``with_structured_output`` converts the schema every time; keep the last few (an LRU,
    so models are not held forever; the identity check guards against a reused ``id``)."""
    key = (id(model), schema)
    hit = _STRUCTURED.get(key)
    if hit is None or hit[0] is not model:
        hit = (model, model.with_structured_output(schema, include_raw=True))
        _STRUCTURED[key] = hit
        while len(_STRUCTURED) > 64:
            _STRUCTURED.popitem(last=False)
    _STRUCTURED.move_to_end(key)
    return hit[1]


def _describe_raw(raw: object) -> str:
    if raw is None:
        return "(not available: the client rejected it while parsing)"
    if isinstance(raw, AIMessage):
        if raw.tool_calls:
            return json.dumps(raw.tool_calls[0].get("args"), default=str)[:2000]
        return str(raw.content)[:2000]
    return str(raw)[:2000]


async def ask_structured(
    model: BaseChatModel,
    schema: type[M],
    messages: Sequence[BaseMessage],
    *,
    check: Callable[[M], None] | None = None,
    reasks: int = 2,
) -> M:
    """Ask for ``schema``; on malformed output, or output that ``check`` rejects with a
    ``ValueError``, re-ask with the error (at most ``reasks`` times), then raise precisely."""
    runnable = _structured(model, schema)
    history = list(messages)
    problem = ""
    for _ in range(reasks + 1):
        try:
            out = await runnable.ainvoke(history)
        except (ValidationError, OutputParserException, json.JSONDecodeError) as err:
            # Some clients (langchain-openai's json_schema mode) parse inside the call and raise.
            out = {"parsed": None, "parsing_error": err, "raw": None}
        parsed, error = out.get("parsed"), out.get("parsing_error")
        if error is None and isinstance(parsed, dict):
            parsed = schema.model_validate(parsed)
        if error is None and parsed is not None:
            try:
                if check is not None:
                    check(parsed)
                return parsed
            except ValueError as err:
                problem = str(err)
        else:
            problem = str(error or "the model returned no structured answer")
        history = [
            *messages,
            HumanMessage(
                render(
                    "repair",
                    schema=schema.__name__,
                    error=problem,
                    answer=_describe_raw(out.get("raw")),
                )
            ),
        ]
    raise StructuredOutputError(
        f"{schema.__name__}: no valid answer after {reasks + 1} tries; last problem: {problem}"
    )

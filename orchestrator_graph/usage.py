"""Model calls, tokens and structured-output outcomes of the model calls made inside a block.

langchain_core's ``get_usage_metadata_callback()`` registers a new configure hook on every call
and never removes it: called per attempt, every later model call in the process walks one more
hook (5,000 attempts: 10,000 hooks). Here one context variable is registered once, the first
time usage is tracked, and each block sets its own tally in it. A block inside another (a
sub-orchestrator inside a worker) also adds what it counts to the enclosing tally.

Every call is counted: answered (tokens from the provider's usage data, else estimated from the
characters and marked as estimated), failed at the provider (``errors``; a request abandoned on a
time-out also counts its prompt plus its output limit as estimated tokens, since the provider may
bill it), or answered with something that could not be used (``failures``, noted by
``llm.ask_structured``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook
from pydantic import BaseModel, Field

_current: ContextVar[Tally | None] = ContextVar("orchestrator_graph_usage", default=None)
_registered = threading.Lock()
_hooked = False
CHARS_PER_TOKEN = 4


class ModelUsage(BaseModel):
    """What one model did for one role."""

    calls: int = Field(0, description="requests answered (re-asks and failed parses included)")
    tokens: int = Field(
        0, description="tokens of those answers, and of requests abandoned on a time-out (bound)"
    )
    estimated_tokens: int = Field(
        0, description="part of tokens estimated (no usage data, or abandoned on a time-out)"
    )
    errors: int = Field(0, description="requests the provider failed (HTTP error, time-out)")
    failures: int = Field(0, description="answers that were not a valid structured output")
    repairs: int = Field(0, description="re-asks with the error and the answer shown")
    length_reasks: int = Field(0, description="answers cut off at the token limit, re-asked")
    methods: list[str] = Field(default_factory=list, description="structured-output methods")
    fallbacks: list[str] = Field(default_factory=list, description="methods a server refused")
    seconds: float = Field(0.0, description="time spent in calls")

    def add(self, other: ModelUsage) -> ModelUsage:
        data = self.model_dump()
        for key, value in other.model_dump().items():
            if isinstance(value, list):
                data[key] = [*data[key], *(v for v in value if v not in data[key])]
            else:
                data[key] = (
                    round(data[key] + value, 4) if isinstance(value, float) else (data[key] + value)
                )
        return ModelUsage.model_validate(data)


def merge_usage(
    left: Mapping[str, Mapping[str, Any]] | None, right: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """role -> model -> ``ModelUsage`` (as dicts), summed: the state reducer."""
    out = {role: dict(models) for role, models in (left or {}).items()}
    for role, models in (right or {}).items():
        mine = out.setdefault(role, {})
        for model, usage in models.items():
            old = ModelUsage.model_validate(mine.get(model) or {})
            mine[model] = old.add(ModelUsage.model_validate(usage)).model_dump(mode="json")
    return out


def _name(source: Mapping[str, Any] | None) -> str | None:
    source = source or {}
    name = source.get("model_name") or source.get("model") or source.get("model_id")
    return str(name) if name else None


class Tally(BaseCallbackHandler):
    """Per model name (the requested one; ``"unknown"`` when neither request nor answer names
    one): calls, tokens and the rest of ``ModelUsage``."""

    run_inline = True
    """Called on the event loop: it only adds numbers, and langchain otherwise sends each of a
    sync handler's callbacks to a thread and back (two round trips per model call)."""

    def __init__(self, parent: Tally | None = None) -> None:
        super().__init__()
        self.parent = parent
        self.models: dict[str, ModelUsage] = {}
        self._started: dict[UUID, tuple[str | None, int]] = {}
        self._lock = threading.Lock()

    @property
    def calls(self) -> dict[str, int]:
        return {m: u.calls for m, u in self.models.items()}

    @property
    def tokens(self) -> dict[str, int]:
        return {m: u.tokens for m, u in self.models.items()}

    @property
    def total_tokens(self) -> int:
        return sum(u.tokens for u in self.models.values())

    @property
    def total_calls(self) -> int:
        return sum(u.calls for u in self.models.values())

    def dump(self) -> dict[str, Any]:
        return {m: u.model_dump(mode="json") for m, u in self.models.items()}

    def note(self, model: str, **counts: Any) -> None:
        """Add counts (``calls=1``, ``failures=1``, ``fallbacks=["..."]``...) for a model."""
        with self._lock:
            old = self.models.get(model, ModelUsage())
            self.models[model] = old.add(ModelUsage(**counts))
        if self.parent is not None:
            self.parent.note(model, **counts)

    def count(self, model: str, tokens: int) -> None:
        self.note(model, calls=1, tokens=tokens)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        chars = sum(len(str(m.content)) for batch in messages for m in batch)
        self._started[run_id] = (_name(kwargs.get("invocation_params")), chars)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        asked, chars = self._started.pop(run_id, (None, 0))
        generation = response.generations[0][0] if response.generations[:1] else None
        message = generation.message if isinstance(generation, ChatGeneration) else None
        answered = _name(message.response_metadata) if isinstance(message, AIMessage) else None
        model = asked or answered or "unknown"
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        if usage:
            self.note(model, calls=1, tokens=int(usage.get("total_tokens", 0)))
            return
        calls = getattr(message, "tool_calls", "")
        out = len(str(message.content)) + len(str(calls)) if message else 0
        guess = (chars + out) // CHARS_PER_TOKEN
        self.note(model, calls=1, tokens=guess, estimated_tokens=guess)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        asked, _ = self._started.pop(run_id, (None, 0))
        completion = getattr(error, "completion", None)  # the OpenAI SDK's length cut-off
        usage = getattr(completion, "usage", None)
        if usage is not None:  # answered (and billed), only cut off: a call, not an error
            self.note(asked or "unknown", calls=1, tokens=int(usage.total_tokens or 0))
            return
        self.note(asked or "unknown", errors=1)


def current_tally() -> Tally | None:
    return _current.get()


@contextmanager
def track_usage(*, alone: bool = False) -> Iterator[Tally]:
    """``with track_usage() as usage:`` counts every model call made inside the block (also in
    tasks it starts), then ``usage.total_tokens``. ``alone=True``: counted here only, not in the
    enclosing block too (calls made for another role, counted under that role)."""
    global _hooked
    if not _hooked:
        with _registered:
            if not _hooked:
                register_configure_hook(_current, inheritable=True)
                _hooked = True
    tally = Tally(parent=None if alone else _current.get())
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def usage_update(by_role: Mapping[str, Sequence[Tally]]) -> dict[str, Any]:
    """The state update of the model calls the tallies counted, per role: ``tokens`` and
    ``model_calls`` (by role) and ``usage`` (by role and model)."""
    usage: dict[str, dict[str, Any]] = {}
    for role, tallies in by_role.items():
        for tally in tallies:
            usage = merge_usage(usage, {role: tally.dump()})
    return {
        "tokens": {r: sum(t.total_tokens for t in ts) for r, ts in by_role.items()},
        "model_calls": {r: sum(t.total_calls for t in ts) for r, ts in by_role.items()},
        "usage": usage,
    }

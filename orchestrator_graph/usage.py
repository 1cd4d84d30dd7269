"""Token usage of the model calls made inside a block of code.

langchain_core's ``get_usage_metadata_callback()`` registers a new configure hook on every call
and never removes it: called per attempt, every later model call in the process walks one more
hook (5,000 attempts: 10,000 hooks). Here one context variable is registered once, the first
time usage is tracked, and each block sets its own tally in it. A block inside another (a
sub-orchestrator inside a worker) also adds what it counts to the enclosing tally.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

_current: ContextVar[Tally | None] = ContextVar("orchestrator_graph_usage", default=None)
_registered = threading.Lock()
_hooked = False


class Tally(BaseCallbackHandler):
    """Model calls and tokens per model name (``"unknown"`` when the provider names none)."""

    def __init__(self, parent: Tally | None = None) -> None:
        super().__init__()
        self.parent = parent
        self.calls: dict[str, int] = {}
        self.tokens: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def count(self, model: str, tokens: int) -> None:
        with self._lock:
            self.calls[model] = self.calls.get(model, 0) + 1
            self.tokens[model] = self.tokens.get(model, 0) + tokens
        if self.parent is not None:
            self.parent.count(model, tokens)

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations[:1] else None
        message = generation.message if isinstance(generation, ChatGeneration) else None
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        model = (
            str(message.response_metadata.get("model_name") or "unknown")
            if isinstance(message, AIMessage)
            else "unknown"
        )
        self.count(model, int(usage.get("total_tokens", 0)) if usage else 0)


@contextmanager
def track_usage() -> Iterator[Tally]:
    """``with track_usage() as usage:`` counts every model call made inside the block (also in
    tasks it starts), then ``usage.total_tokens``."""
    global _hooked
    if not _hooked:
        with _registered:
            if not _hooked:
                register_configure_hook(_current, inheritable=True)
                _hooked = True
    tally = Tally(parent=_current.get())
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)

"""What a node or an attempt step needs from the run, read once from LangGraph's runtime: the
run's settings (``Context``, coerced from a parent's context or a dict), the store, the events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.config import get_config
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from orchestrator_graph.context import Context
from orchestrator_graph.events import Emit, stream_emitter
from orchestrator_graph.ledger import store_of


@dataclass(frozen=True)
class Env:
    context: Context
    store: BaseStore
    emit: Emit
    thread_id: str = ""
    checkpointer: Any = None
    """The run's thread and checkpointer: a team lead starts its child orchestrator on them."""

    @classmethod
    def of(cls, runtime: Runtime[Any]) -> Env:
        try:
            configurable = get_config().get("configurable", {})
        except RuntimeError:  # a step called directly, outside a graph
            configurable = {}
        return cls(
            Context.coerce(runtime.context),
            store_of(runtime),
            stream_emitter(runtime.stream_writer),
            str(configurable.get("thread_id") or ""),
            configurable.get(CONFIG_KEY_CHECKPOINTER),
        )

"""What a node or an attempt step needs from the run, read once from LangGraph's runtime: the
run's settings (``Context``, coerced from a parent's context or a dict), the store, the events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    @classmethod
    def of(cls, runtime: Runtime[Any]) -> Env:
        return cls(
            Context.coerce(runtime.context),
            store_of(runtime),
            stream_emitter(runtime.stream_writer),
        )

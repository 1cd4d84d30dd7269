"""What a node or an attempt step needs from the run, read once from LangGraph's runtime: the
run's settings (``Context``, coerced from a parent's context or a dict), the store, the events."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from langgraph.config import get_config
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from orchestrator_graph.audit_tap import AssignmentTap
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
    tenant: str | None = None  # the server's authenticated tenant; None for local runs
    audit: AssignmentTap = field(default_factory=AssignmentTap)
    """Assignments the dispatcher announced, chained before the attempts they start."""

    @classmethod
    def of(cls, runtime: Runtime[Any]) -> Env:
        from orchestrator_graph.identity import server_identity

        try:
            configurable = get_config().get("configurable", {})
        except RuntimeError:  # a step called directly, outside a graph
            configurable = {}
        context = Context.coerce(runtime.context)
        user = server_identity(runtime)
        if user is not None:  # on the server, who acts is who signed in, not what the client says
            context = replace(context, identity=user.model_dump())
        tap = AssignmentTap()
        return cls(
            context,
            store_of(runtime),
            tap.wrap(stream_emitter(runtime.stream_writer)),
            str(configurable.get("thread_id") or ""),
            configurable.get(CONFIG_KEY_CHECKPOINTER),
            user.tenant if user is not None else None,
            tap,
        )

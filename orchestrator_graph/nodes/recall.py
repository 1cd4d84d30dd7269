"""The first node: checks the request, starts the run, and recalls similar past runs and the
failure patterns they show from the plan memory."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from langgraph.types import Overwrite

from orchestrator_graph.conversation import asked, request_from
from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.limits import check_request
from orchestrator_graph.memory import (
    FailurePattern,
    MemoryUnavailable,
    Recalled,
    examples,
    failure_patterns,
    reusable,
)
from orchestrator_graph.protection.intake import admit
from orchestrator_graph.state import OrchestratorState

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

FRESH_RUN: dict[str, dict[str, Any] | list[Any]] = {
    "tasks": {},
    "decisions": [],
    "conflicts": [],
    "model_calls": {},
    "tokens": {},
    "usage": {},
    "bottlenecks": [],
    "replans": [],
}
"""Channels a new run on the same thread starts empty (not appended to the last run's)."""


async def step(services: Services, state: OrchestratorState, env: Env) -> dict[str, Any]:
    context = env.context
    request = check_request(request_from(state))
    await admit(request, context.output_dir)
    run_id = uuid.uuid4().hex[:12]
    env.emit(
        Event(kind="run_started", node="recall", message=request[:200], data={"run_id": run_id})
    )
    found: list[Recalled] = []
    patterns: list[FailurePattern] = []
    note = "memory off for this run" if not context.use_memory else ""
    if context.use_memory:
        try:
            found = await services.memory.call(
                "recall", request, k=context.recall_k, tenant=env.tenant
            )
            recent = await services.memory.call("records", limit=50, tenant=env.tenant)
            patterns = failure_patterns([*recent, *(r.record for r in found)])
        except MemoryUnavailable as err:
            note = f"{err}; this run goes on without memory"
    env.emit(
        Event(
            kind="recalled",
            node="recall",
            message=note or f"{len(found)} similar past runs, {len(patterns)} failure patterns",
            data={
                "similar": [[r.record.run_id, r.similarity] for r in found],
                "patterns": [p.model_dump() for p in patterns],
                "memory": note or services.memory.location,
            },
        )
    )
    plan = reusable(found, context.reuse_threshold, request)
    return {
        "request": request,
        "asked": asked(state),
        "run_id": run_id,
        "started_at": time.time(),
        # The state keeps summaries and what planning needs, not the records themselves.
        "recalled": [r.summary() for r in found],
        "reuse": plan.model_dump(mode="json", exclude_defaults=True) if plan else None,
        "examples": examples(found),
        "patterns": [p.model_dump() for p in patterns],
        "memory_note": note,
        **{channel: Overwrite(type(empty)()) for channel, empty in FRESH_RUN.items()},
        "escalations": [],
        "stopped": None,
    }

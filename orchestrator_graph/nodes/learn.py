"""The last node: the run's report (with the accounting of every model call, the actual
schedule and the cost), remembered in the plan memory for later runs to recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator_graph.auditlog import chain_state
from orchestrator_graph.conversation import answer
from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.hierarchy import report_links
from orchestrator_graph.ledger import Ledger, load_schedule, load_spent
from orchestrator_graph.memory import MemoryUnavailable
from orchestrator_graph.models import Review, TaskResult
from orchestrator_graph.protection.compliance import compliance_report
from orchestrator_graph.protection.redact import default_redactor
from orchestrator_graph.reporting import attempts_cost, build_report, run_record
from orchestrator_graph.schedule import actual_slots
from orchestrator_graph.state import OrchestratorState, records_of
from orchestrator_graph.usage import merge_usage

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services


async def step(services: Services, state: OrchestratorState, env: Env) -> dict[str, Any]:
    context, store, run_id = env.context, env.store, state["run_id"]
    registry = services.registry
    attempts = await Ledger(store, run_id).attempts(outputs=False)
    since = state.get("executing_since") or state.get("started_at") or 0.0
    schedule = await load_schedule(store, run_id)
    report = build_report(state, records_of(state), registry, schedule).model_copy(
        update={
            **accounting(state, attempts, await load_spent(store, run_id)),
            "actual": actual_slots(attempts, since),
            "models": services.roles.labels(context),
            "cost": attempts_cost(attempts, registry),
            **await report_links(store, run_id, env.thread_id),
        }
    )
    note = state.get("memory_note") or ""
    if context.use_memory and not note:
        try:
            await services.memory.call(
                "remember", run_record(state, report, attempts, registry), tenant=env.tenant
            )
            note = f"remembered in {services.memory.location}"
        except MemoryUnavailable as err:
            note = f"{err}; this run was not remembered"
    del attempts  # a model per attempt: not kept beside the report's copies (peak memory)
    checked = await compliance_report(store, run_id, state.get("plan"))
    report = report.model_copy(update={"memory": note, "compliance": checked.model_dump()})
    # printed, streamed and served as it is: redacted (as plain data, the walker's fast path)
    out = default_redactor().value(report.model_dump(mode="json"))
    status = report.status
    del report  # the data above is what is kept
    await chain_state(store, {**state, "report": out})
    env.emit(
        Event(
            kind="learned",
            node="learn",
            message=f"run {status}; {note}",
            data={"run_id": run_id},
        )
    )
    return {"report": out, "messages": [answer(out)]}


def accounting(
    state: OrchestratorState,
    attempts: Sequence[tuple[TaskResult, Review]],
    spent: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Tokens, calls and usage by role: the nodes' own (state), the attempts' (ledger) and those
    of nodes that failed after calling models (``spent``, from the store)."""
    tokens = dict(state.get("tokens") or {})
    tokens["workers"] = sum(r.tokens for r, _ in attempts)
    tokens["reviewer"] = tokens.get("reviewer", 0) + sum(v.tokens for _, v in attempts)
    usage = merge_usage(state.get("usage"), spent)
    for result, review in attempts:
        usage = merge_usage(usage, {"worker": result.usage, "reviewer": review.usage})
    calls = dict(state.get("model_calls") or {})
    for role, models in (spent or {}).items():
        tokens[role] = tokens.get(role, 0) + sum(u.get("tokens", 0) for u in models.values())
    for role in ("worker", "reviewer", *(spent or {})):
        own = sum(u.get("calls", 0) for u in usage.get(role, {}).values())
        if own:
            calls[role] = own
    return {"tokens": tokens, "model_calls": calls, "usage": usage}

"""The synthesizer node: the approved results (briefed, never raw rows) and the facts they
claim, settled by expertise-weighted consensus, written up by the synthesizer model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator_graph.consensus import FactClaim, expertise_weight, settle_facts
from orchestrator_graph.env import Env
from orchestrator_graph.events import Event
from orchestrator_graph.ledger import Ledger, spent_kept, to_store
from orchestrator_graph.llm import ask_structured, calling
from orchestrator_graph.models import Deliverable, Plan, TaskRecord
from orchestrator_graph.prompts import messages
from orchestrator_graph.schemas import DeliverableDraft
from orchestrator_graph.state import OrchestratorState, plan_of, records_of
from orchestrator_graph.textsafe import Block, block, fence, join
from orchestrator_graph.usage import track_usage, usage_update

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

MAX_MARKDOWN = 20_000


async def step(services: Services, state: OrchestratorState, env: Env) -> dict[str, Any]:
    context = env.context
    plan = plan_of(state)
    records = records_of(state)
    approved = [
        (t.id, records[t.id])
        for t in plan.tasks
        if records[t.id].status == "approved" and records[t.id].result_key
    ]
    outputs = await Ledger(env.store, state["run_id"]).outputs(
        [rec.result_key or "" for _, rec in approved]
    )
    found = {tid: outputs[rec.result_key or ""] for tid, rec in approved}
    claims = _claims(services, plan, approved, found)
    facts, disputed, conflicts = settle_facts(claims, context.mechanism("contradicting_facts"))
    blocks = [block("result", _brief(found[tid], rec.summary), task=tid) for tid, rec in approved]
    with track_usage() as usage, calling(services.roles.profile("synthesizer", context, state)):
        async with spent_kept(env.store, state["run_id"], {"synthesizer": [usage]}):
            draft = await ask_structured(
                services.roles.model("synthesizer", context),
                DeliverableDraft,
                messages(
                    "synthesizer",
                    request=state["request"],
                    results=join(blocks) or "none",
                    facts=json.dumps(facts, default=str),
                    disputed=", ".join(disputed) or "none",
                ),
            )
    deliverable = Deliverable(
        title=draft.title,
        summary=draft.summary,
        sections=draft.section_models(),
        facts=facts,
        disputed=disputed,
    )
    for conflict in conflicts:
        env.emit(
            Event(
                kind="conflict",
                node="synthesizer",
                message=conflict.detail,
                data=conflict.model_dump(mode="json"),
            )
        )
    env.emit(
        Event(
            kind="synthesized",
            node="synthesizer",
            role="synthesizer",
            message=deliverable.title,
            data={"sections": len(deliverable.sections)},
        )
    )
    return {
        "deliverable": deliverable.model_dump(mode="json"),
        "conflicts": [c.model_dump(mode="json") for c in conflicts],
        **usage_update({"synthesizer": [usage]}),
    }


def _claims(
    services: Services,
    plan: Plan,
    approved: list[tuple[str, TaskRecord]],
    outputs: dict[str, Any],
) -> list[FactClaim]:
    """The facts each approved result states, weighted by its worker's expertise and score."""
    tasks = {t.id: t for t in plan.tasks}
    return [
        FactClaim(
            task_id=tid,
            worker=rec.worker or "",
            name=name,
            value=value,
            weight=expertise_weight(
                services.registry.level(rec.worker or "", tasks[tid].skills), rec.score or 0.0
            ),
        )
        for tid, rec in approved
        for name, value in _facts(outputs[tid]).items()
    ]


def _facts(output: Any) -> dict[str, Any]:
    """A result's facts, in the form the checkpoint can keep (integers beyond 64 bits and
    non-finite floats tagged, losslessly: ``ledger.to_store``)."""
    facts = output.get("facts") if isinstance(output, dict) else None
    return to_store(facts) if isinstance(facts, dict) else {}


def _brief(output: Any, summary: str) -> Block:
    """What the synthesizer sees of a result: its summary, its small fields (never raw rows),
    and a Markdown document it wrote (a report), whole up to ``MAX_MARKDOWN`` characters."""
    if not isinstance(output, dict):
        return Block(fence(json.dumps(output, default=str)[:1500]))
    small = {k: v for k, v in output.items() if k not in ("rows", "markdown", "summary")}
    brief = fence(f"{summary}\n{json.dumps(small, default=str)[:1500]}")
    markdown = output.get("markdown")
    if isinstance(markdown, str) and markdown.strip():
        brief += "\n" + block("markdown", markdown[:MAX_MARKDOWN])
    return Block(brief)

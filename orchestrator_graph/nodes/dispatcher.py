"""The dispatcher node: runs the plan's tasks on the team (``dispatch``), each attempt through
``Services.attempts``; then to the mediator (escalations), the budget gate (budget spent) or
the synthesizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from langgraph.types import Command

from orchestrator_graph.dispatch.board import Launch, TaskBoard, replay
from orchestrator_graph.dispatch.runner import DispatchRunner, DispatchSettings
from orchestrator_graph.env import Env
from orchestrator_graph.errors import BudgetExceeded
from orchestrator_graph.history_log import HistoryWriter
from orchestrator_graph.ledger import Ledger, load_schedule, publish_status
from orchestrator_graph.llm import run_deadline
from orchestrator_graph.matching import TeamMatcher
from orchestrator_graph.models import PlanAnalysis, Review, TaskResult
from orchestrator_graph.registry import load_history
from orchestrator_graph.reporting import build_report
from orchestrator_graph.state import OrchestratorState, dump_records, plan_of, records_of
from orchestrator_graph.worker_leases import leased, leases_for

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

GOES_TO = ("mediator", "synthesizer", "budget_gate")


async def step(
    services: Services, state: OrchestratorState, env: Env
) -> Command[Literal["mediator", "synthesizer", "budget_gate"]]:
    context, store, registry = env.context, env.store, services.registry
    run_id = state["run_id"]

    async def run_attempt(launch: Launch) -> tuple[TaskResult, Review]:
        return await services.attempts.run(run_id, launch, env)

    history = await load_history(store, [w.name for w in registry.workers()])
    schedule = await load_schedule(store, run_id)
    plan = plan_of(state)
    settings = DispatchSettings.from_context(
        context,
        started_at=state.get("started_at") or 0.0,
        tokens_before=sum((state.get("tokens") or {}).values()),
    )
    board = TaskBoard(
        plan.tasks,
        PlanAnalysis.model_validate(state["analysis"]),
        records_of(state),
        registry,
        settings.rules,
        history,
    )
    replay(board, await Ledger(store, run_id).attempts())
    runner = DispatchRunner(
        board,
        settings,
        run_attempt=leased(run_attempt, leases_for(store), registry.get),
        emit=env.emit,
        matcher=TeamMatcher((s for t in plan.tasks for s in t.skills), context.objective),
        schedule=schedule,
        deadline=plan.deadline,
        t0=state.get("executing_since"),
        run_id=run_id,
        clocks=services.attempts.clocks,
        publish=lambda snapshot: publish_status(store, snapshot),
        save_history=HistoryWriter(store, history).save,
    )
    started = state.get("started_at")
    deadline = started + context.budget_seconds if started and context.budget_seconds else None
    try:
        with run_deadline(deadline):  # a worker's model call ends with the seconds budget
            outcome = await runner.run()
    except BudgetExceeded as spent:
        # Stopped with the reason in the report; the budget gate pauses for more budget.
        stopped = {**state, "tasks": dump_records(board.records), "stopped": str(spent)}
        report = build_report(stopped, board.records, registry, schedule)  # type: ignore[arg-type]
        return Command(
            goto="budget_gate",
            update={
                "stopped": str(spent),
                "tasks": dump_records(board.records),
                "report": report.model_dump(mode="json"),
            },
        )
    update = {
        "conflicts": [c.model_dump(mode="json") for c in outcome.conflicts],
        "tasks": dump_records(outcome.records),
        "escalations": [e.model_dump(mode="json") for e in outcome.escalations],
        "bottlenecks": [b.model_dump(mode="json") for b in outcome.bottlenecks],
        # Per-task statuses are the records themselves: the state keeps the rest.
        "status": outcome.snapshot.model_dump(mode="json", exclude={"tasks"})
        if outcome.snapshot
        else None,
    }
    return Command(goto="mediator" if outcome.escalations else "synthesizer", update=update)

"""Builds the orchestrator graph.

START -> recall -> planner -> dispatcher <-> mediator
                              dispatcher -> synthesizer -> qa_reviewer -> learn -> END

The dispatcher runs every task attempt through the compiled ``worker`` subgraph (execute, review,
record) with no superstep barrier; see ``dispatch``."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, interrupt

from orchestrator_graph.consensus import (
    FactClaim,
    expertise_weight,
    settle_facts,
    settle_priority,
)
from orchestrator_graph.context import Context
from orchestrator_graph.contracts import check_contracts, team_sheet
from orchestrator_graph.conversation import answer, request_from
from orchestrator_graph.dag import (
    PlanRejectedError,
    analyse_plan,
    check_data_flow,
    validate_plan,
    with_implied_dependencies,
)
from orchestrator_graph.dispatch.board import Launch, TaskBoard, with_redundancy
from orchestrator_graph.dispatch.runner import BudgetExceeded, DispatchRunner, DispatchSettings
from orchestrator_graph.events import Event, stream_emitter
from orchestrator_graph.ledger import Ledger, to_store
from orchestrator_graph.limits import check_request
from orchestrator_graph.llm import ModelSpec, ask_structured, calling, run_deadline
from orchestrator_graph.matching import TeamMatcher
from orchestrator_graph.mediation import Mediation
from orchestrator_graph.memory import (
    FailurePattern,
    MemoryHandle,
    MemoryUnavailable,
    PlanMemory,
    Recalled,
    examples,
    failure_patterns,
    mitigations,
    reusable,
)
from orchestrator_graph.models import (
    Check,
    Conflict,
    Deliverable,
    Plan,
    PlanAnalysis,
    Review,
    Schedule,
    Slot,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.monitor import publish_status
from orchestrator_graph.prompt_overrides import PromptOverride, check_overrides
from orchestrator_graph.prompts import messages
from orchestrator_graph.prompts import preload as preload_prompts
from orchestrator_graph.qa import review_plan
from orchestrator_graph.registry import (
    Registry,
    expected_durations,
    load_history,
    save_history,
)
from orchestrator_graph.reporting import attempts_cost, build_report, run_record
from orchestrator_graph.roles import Roles
from orchestrator_graph.schedule import (
    actual_slots,
    load_schedule,
    plan_schedule,
    save_schedule,
)
from orchestrator_graph.schemas import DeliverableDraft, PlanDraft
from orchestrator_graph.state import (
    InputState,
    OrchestratorState,
    OutputState,
    dump_records,
    records_of,
)
from orchestrator_graph.team import default_team
from orchestrator_graph.usage import (
    Tally,
    load_spent,
    merge_usage,
    save_spent,
    track_usage,
    usage_update,
)
from orchestrator_graph.worker_graph import AttemptState, AttemptSteps, Env, store_of
from orchestrator_graph.workers import Worker

if TYPE_CHECKING:  # chromadb loads with the memory, not with the package
    from chromadb.api.types import Documents, EmbeddingFunction


def create_orchestrator(
    *,
    workers: Sequence[Worker] | Registry | None = None,
    model: ModelSpec = "offline",
    models: Mapping[str, ModelSpec] | None = None,
    memory: PlanMemory | str | None = None,
    embeddings: Embeddings | EmbeddingFunction[Documents] | None = None,
    prompts: Mapping[str, PromptOverride] | None = None,
) -> StateGraph:
    """The orchestrator as an uncompiled ``StateGraph``: compile it with your saver and store.

    Args:
        workers: the team: a list of ``Worker``s, or a ``Registry`` you keep changing while runs
            go (register, update, heartbeat, drain, remove); default: one worker per mission
            specialisation (``team.default_team``).
        model: the chat model for every role: a model object or a ``"provider:model"`` string for
            ``init_chat_model``; ``"offline"`` (default) is the deterministic offline model.
        models: per-role overrides: ``planner``, ``worker``, ``reviewer``, ``mediator``,
            ``synthesizer``. Each run may override again through the context.
        memory: the plan memory: a ``PlanMemory``, a folder (embedded Chroma) or a Chroma
            server URL; default ``$ORCHESTRATOR_GRAPH_CHROMA``, else ``<data dir>/chroma``.
        embeddings: how requests are embedded for recall: a LangChain ``Embeddings`` (a
            provider's) or a Chroma embedding function; default the offline MiniLM model.
        prompts: per-role prompt overrides (``planner``, ``reviewer``, ``synthesizer``, ...): a
            string or a file with ``$variables`` (replaces the role's user message) or a
            ``ChatPromptTemplate`` (replaces all of it); see ``prompt_overrides``.
    """
    preload_prompts()
    registry = _registry(workers)
    roles = Roles(model, models, check_overrides(prompts))
    steps = AttemptSteps(registry, roles)
    worker_graph = steps.graph()
    worker_drawing = steps.drawing()
    memories = MemoryHandle(memory, embeddings)

    async def recall_node(state: OrchestratorState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)
        request = check_request(request_from(state))
        run_id = uuid.uuid4().hex[:12]
        emit = stream_emitter(runtime.stream_writer)
        emit(
            Event(kind="run_started", node="recall", message=request[:200], data={"run_id": run_id})
        )
        found: list[Recalled] = []
        patterns: list[FailurePattern] = []
        note = "memory off for this run" if not context.use_memory else ""
        if context.use_memory:
            try:
                found = await memories.call("recall", request, k=context.recall_k)
                recent = await memories.call("records", limit=50)
                patterns = failure_patterns([*recent, *(r.record for r in found)])
            except MemoryUnavailable as err:
                note = f"{err}; this run goes on without memory"
        emit(
            Event(
                kind="recalled",
                node="recall",
                message=note or f"{len(found)} similar past runs, {len(patterns)} failure patterns",
                data={
                    "similar": [[r.record.run_id, r.similarity] for r in found],
                    "patterns": [p.model_dump() for p in patterns],
                    "memory": note or memories.location,
                },
            )
        )
        return {
            "request": request,
            "run_id": run_id,
            "started_at": time.time(),
            # The state keeps summaries and what planning needs, not the records themselves.
            "recalled": [r.summary() for r in found],
            "reuse": plan.model_dump(mode="json", exclude_defaults=True)
            if (plan := reusable(found, context.reuse_threshold, request))
            else None,
            "examples": examples(found),
            "patterns": [p.model_dump() for p in patterns],
            "memory_note": note,
            "tasks": Overwrite({}),
            "decisions": Overwrite([]),
            "conflicts": Overwrite([]),
            "escalations": [],
            "model_calls": Overwrite({}),
            "tokens": Overwrite({}),
            "usage": Overwrite({}),
            "bottlenecks": Overwrite([]),
            "replans": Overwrite([]),
            "stopped": None,
        }

    async def planner(state: OrchestratorState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)

        async def make_plan(feedback: str) -> Plan:
            """A declared plan, a recalled one, or one from the planner model."""
            if state.get("plan"):
                plan = Plan.model_validate(state["plan"]).model_copy(update={"source": "declared"})
                validate_for_team(plan, registry)
                return plan
            reused = (
                None if feedback or not state.get("reuse") else Plan.model_validate(state["reuse"])
            )
            if reused and _valid(reused, registry):
                return reused
            draft = await ask_structured(
                roles.model("planner", context),
                PlanDraft,
                messages(
                    "planner",
                    request=state["request"],
                    skills=", ".join(sorted(registry.skills())),
                    workers=team_sheet(registry.workers()),
                    examples=state.get("examples") or "none",
                    feedback=feedback or "none",
                ),
                check=lambda d: validate_for_team(d.to_plan(), registry),
            )
            return draft.to_plan()

        reviewer = roles.model("reviewer", context) if context.plan_review else None

        async def gate(plan: Plan) -> Review:
            policy = plan.qa_policy or context.qa_policy
            return await review_plan(
                plan,
                analyse_plan(plan).duration if plan.deadline is not None else 0.0,
                state["request"],
                reviewer=reviewer,
                threshold=context.threshold(policy),
            )

        tallies: dict[str, list[Tally]] = {"planner": [], "reviewer": []}

        async def as_role(role: str, call: Awaitable[Any]) -> Any:
            """A call counted for ``role`` and bounded by its limits and the run's budget."""
            with track_usage() as usage, calling(roles.profile(role, context, state)):
                tallies[role].append(usage)
                try:
                    return await call
                except Exception:
                    await save_spent(store_of(runtime), state["run_id"], tallies)
                    raise

        plan = await as_role("planner", make_plan(""))
        verdict = await as_role("reviewer", gate(plan))
        if verdict.verdict == "reject" and plan.source != "declared":  # re-plan, with feedback
            plan = await as_role("planner", make_plan(verdict.feedback))
            verdict = await as_role("reviewer", gate(plan))
        stream_emitter(runtime.stream_writer)(
            Event(
                kind="qa_verdict",
                node="qa_reviewer",
                task_id="plan",
                message=f"{verdict.verdict} ({verdict.score:.2f})",
                data={"feedback": verdict.feedback},
            )
        )
        if verdict.verdict == "reject":
            raise PlanRejectedError(
                f"the plan gate rejected the {plan.source} plan: {verdict.feedback}"
            )
        plan, disputes = _settle_plan(plan, context)
        able = {t.id: [w.name for w in registry.workers() if w.can_do(t)] for t in plan.tasks}
        patterns = [FailurePattern.model_validate(p) for p in state.get("patterns", [])]
        fixes = mitigations(plan.tasks, patterns, able)
        plan = plan.model_copy(
            update={
                "tasks": [
                    t.model_copy(update={"qa_policy": fixes[t.id]["qa_policy"] or t.qa_policy})
                    if t.id in fixes
                    else t
                    for t in plan.tasks
                ]
            }
        )
        pad = {tid: fix["pad"] for tid, fix in fixes.items()}
        analysis, schedule = await _analyse(plan, runtime, pad=pad)
        plan = plan.model_copy(
            update={
                "tasks": with_redundancy(
                    plan.tasks, analysis, registry.workers(), context.cross_validate
                )
            }
        )
        await save_schedule(store_of(runtime), state["run_id"], schedule)
        stream_emitter(runtime.stream_writer)(
            Event(
                kind="planned",
                node="planner",
                message=f"{len(plan.tasks)} tasks ({plan.source}), planned makespan "
                f"{schedule.makespan:.2f}s"
                + ("" if schedule.meets_deadline else f", misses the {plan.deadline:g}s deadline"),
                data={
                    "tasks": len(plan.tasks),
                    "critical_path": analysis.critical_path,
                    "duration": analysis.duration,
                    "planned_makespan": schedule.makespan,
                    "meets_deadline": schedule.meets_deadline,
                    "would_cut": schedule.would_cut,
                    "backups": {t: r.backup for t, r in schedule.risks.items() if r.backup},
                },
            )
        )
        return {
            "planned_makespan": schedule.makespan,
            "executing_since": time.time(),
            "reuse": None,  # used: later checkpoints need not carry it
            "examples": "",
            # Defaults left out: the plan is in every checkpoint, and readers validate it.
            "plan": plan.model_dump(mode="json", exclude_defaults=True),
            "analysis": analysis.model_dump(mode="json"),
            "tasks": {
                t.id: TaskRecord(avoid=fixes.get(t.id, {}).get("avoid", [])).model_dump(mode="json")
                for t in plan.tasks
            },
            "mitigations": fixes,
            "conflicts": [c.model_dump(mode="json") for c in disputes],
            "plan_review": verdict.model_dump(mode="json"),
            **usage_update(
                {
                    r: ts
                    for r, ts in tallies.items()
                    if ts and any(t.models for t in ts) or r == "planner"
                }
            ),
        }

    async def _analyse(
        plan: Plan,
        runtime: Runtime[Context],
        now: float = 0.0,
        finished: Sequence[Slot] = (),
        pad: Mapping[str, float] | None = None,
    ) -> tuple[PlanAnalysis, Schedule]:
        """Critical path on the team's expected durations (padded where past failures call for
        it), then the planned schedule."""
        history = await load_history(store_of(runtime), [w.name for w in registry.workers()])
        durations = expected_durations(plan.tasks, registry.workers(), history)
        for tid, factor in (pad or {}).items():
            durations[tid] = durations.get(tid, 0.0) * factor
        analysis = analyse_plan(plan, durations)
        schedule = plan_schedule(
            plan, analysis, registry.workers(), history, now=now, finished=finished
        )
        return analysis, schedule

    async def dispatcher(
        state: OrchestratorState, runtime: Runtime[Context]
    ) -> Command[Literal["mediator", "synthesizer", "budget_gate"]]:
        context = Context.coerce(runtime.context)
        run_id = state["run_id"]
        ledger = Ledger(store_of(runtime), run_id)
        env = Env.of(runtime)
        # Read here so that langgraph finds the attempt graph among this node's names (it
        # draws it with xray and lists it in get_subgraphs); worker_graph is what runs.
        _ = worker_drawing

        async def run_attempt(launch: Launch) -> tuple[TaskResult, Review]:
            task = launch.task
            if not context.worker_subgraph:
                return await steps.run_inline(run_id, launch, env)
            attempt_state: AttemptState = {
                "run_id": run_id,
                "task": task.model_dump(mode="json", exclude_defaults=True),
                "worker": launch.worker,
                "attempt": launch.attempt,
                "feedback": launch.feedback,
                "upstream_keys": launch.upstream,
            }
            out = await worker_graph.ainvoke(
                attempt_state,
                {
                    "run_name": f"worker[{task.id}#{launch.attempt}]",
                    "metadata": {
                        "task_id": task.id,
                        "attempt": launch.attempt,
                        "worker": launch.worker,
                    },
                },
                # The ledger makes the attempt durable; the subgraph has no checkpointer, and
                # inheriting the parent's "sync" durability fails in langgraph 1.2.22
                # (AttributeError: no _put_checkpoint_fut on a checkpointer-less loop).
                durability="exit",
            )
            return TaskResult.model_validate(out["result"]), Review.model_validate(out["review"])

        store = store_of(runtime)
        history = await load_history(store, [w.name for w in registry.workers()])
        schedule = await load_schedule(store, run_id)
        plan = Plan.model_validate(state["plan"])
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
        board.replay(await ledger.attempts())
        runner = DispatchRunner(
            board,
            settings,
            run_attempt=run_attempt,
            emit=env.emit,
            matcher=TeamMatcher((s for t in plan.tasks for s in t.skills), context.objective),
            schedule=schedule,
            deadline=plan.deadline,
            t0=state.get("executing_since"),
            run_id=run_id,
            began=steps.began,
            publish=lambda snapshot: publish_status(store, snapshot),
            save_history=lambda history, names: save_history(store, history, names),
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

    async def budget_gate(
        state: OrchestratorState, runtime: Runtime[Context]
    ) -> Command[Literal["dispatcher"]]:
        """A spent budget pauses here; resuming (with a raised budget in the context) goes on
        where the dispatcher stopped. Nothing finished runs again: the ledger has it."""
        stream_emitter(runtime.stream_writer)(
            Event(kind="budget", node="budget_gate", message=state.get("stopped") or "")
        )
        interrupt(
            {
                "type": "budget",
                "reason": state.get("stopped") or "",
                "resume": "raise the budget in the context, then resume",
            }
        )
        return Command(goto="dispatcher", update={"stopped": None, "report": None})

    mediation = Mediation(registry, roles, _analyse)

    async def synthesizer(state: OrchestratorState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)
        ledger = Ledger(store_of(runtime), state["run_id"])
        plan = Plan.model_validate(state["plan"])
        records = records_of(state)
        approved = [
            (t.id, records[t.id])
            for t in plan.tasks
            if records[t.id].status == "approved" and records[t.id].result_key
        ]
        outputs = await ledger.outputs([rec.result_key or "" for _, rec in approved])
        blocks = [
            f'<result task="{tid}">\n{_brief(outputs[rec.result_key or ""], rec.summary)}'
            "\n</result>"
            for tid, rec in approved
        ]
        tasks = {t.id: t for t in plan.tasks}
        claims = [
            FactClaim(
                task_id=tid,
                worker=rec.worker or "",
                name=name,
                value=value,
                weight=expertise_weight(
                    registry.level(rec.worker or "", tasks[tid].skills), rec.score or 0.0
                ),
            )
            for tid, rec in approved
            for name, value in _facts(outputs[rec.result_key or ""]).items()
        ]
        facts, disputed, conflicts = settle_facts(claims, context.mechanism("contradicting_facts"))
        profile = roles.profile("synthesizer", context, state)
        with track_usage() as usage, calling(profile):
            try:
                draft = await ask_structured(
                    roles.model("synthesizer", context),
                    DeliverableDraft,
                    messages(
                        "synthesizer",
                        request=state["request"],
                        results="\n".join(blocks) or "none",
                        facts=json.dumps(facts, default=str),
                        disputed=", ".join(disputed) or "none",
                    ),
                )
            except Exception:
                await save_spent(store_of(runtime), state["run_id"], {"synthesizer": [usage]})
                raise
        deliverable = Deliverable(
            title=draft.title,
            summary=draft.summary,
            sections=draft.section_models(),
            facts=facts,
            disputed=disputed,
        )
        emit = stream_emitter(runtime.stream_writer)
        for conflict in conflicts:
            emit(
                Event(
                    kind="conflict",
                    node="synthesizer",
                    message=conflict.detail,
                    data=conflict.model_dump(mode="json"),
                )
            )
        emit(
            Event(
                kind="synthesized",
                node="synthesizer",
                message=deliverable.title,
                data={"sections": len(deliverable.sections)},
            )
        )
        return {
            "deliverable": deliverable.model_dump(mode="json"),
            "conflicts": [c.model_dump(mode="json") for c in conflicts],
            **usage_update({"synthesizer": [usage]}),
        }

    async def qa_reviewer(state: OrchestratorState, runtime: Runtime[Context]) -> dict[str, Any]:
        """The final gate: the deliverable exists, covers every approved task and nothing else."""
        context = Context.coerce(runtime.context)
        deliverable = Deliverable.model_validate(state["deliverable"])
        records = records_of(state)
        approved = {t for t, r in records.items() if r.status == "approved"}
        # As written (not \u-escaped), so that a task id like "données" is found in the text.
        text = json.dumps(deliverable.model_dump(), default=str, ensure_ascii=False)
        missing = sorted(set(approved) - _mentioned(approved, text))
        unapproved = sorted(
            t
            for t, r in records.items()
            if r.status != "approved" and any(s.heading == t for s in deliverable.sections)
        )
        checks = [
            Check(
                name="has_approved_results",
                passed=bool(approved),
                detail="no task was approved: there is nothing to deliver",
            ),
            Check(name="has_summary", passed=bool(deliverable.summary.strip())),
            Check(name="covers_approved_tasks", passed=not missing, detail=f"missing: {missing}"),
            Check(
                name="only_approved_results",
                passed=not unapproved,
                detail=f"unapproved: {unapproved}",
            ),
            Check(
                name="no_disputed_facts",
                passed=not deliverable.disputed,
                detail=f"disputed: {deliverable.disputed}",
            ),
            Check(
                name="all_tasks_approved",
                passed=approved >= {t for t, r in records.items() if r.counts},
                detail=f"{len(approved)}/{len(records)} approved",
            ),
        ]
        policy = Plan.model_validate(state["plan"]).qa_policy or context.qa_policy
        score = sum(c.passed for c in checks) / len(checks)
        hard_ok = all(c.passed for c in checks[:4])
        review = Review(
            task_id="final",
            attempt=1,
            score=round(score, 4),
            verdict="approve" if hard_ok and score >= context.threshold(policy) else "reject",
            checks=checks,
            feedback="; ".join(f"{c.name}: {c.detail}" for c in checks if not c.passed),
        )
        stream_emitter(runtime.stream_writer)(
            Event(
                kind="final_review",
                node="qa_reviewer",
                message=f"{review.verdict} ({review.score:.2f})",
            )
        )
        return {"final_review": review.model_dump(mode="json")}

    async def learn(state: OrchestratorState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)
        records = records_of(state)
        attempts = await Ledger(store_of(runtime), state["run_id"]).attempts()
        since = state.get("executing_since") or state.get("started_at") or 0.0
        schedule = await load_schedule(store_of(runtime), state["run_id"])
        report = build_report(state, records, registry, schedule).model_copy(
            update={
                **accounting(state, attempts, await load_spent(store_of(runtime), state["run_id"])),
                "actual": actual_slots(attempts, since),
                "models": roles.labels(context),
                "cost": attempts_cost(attempts, registry),
            }
        )
        note = state.get("memory_note") or ""
        if context.use_memory and not note:
            try:
                await memories.call("remember", run_record(state, report, attempts, registry))
                note = f"remembered in {memories.location}"
            except MemoryUnavailable as err:
                note = f"{err}; this run was not remembered"
        report = report.model_copy(update={"memory": note})
        stream_emitter(runtime.stream_writer)(
            Event(
                kind="learned",
                node="learn",
                message=f"run {report.status}; {note}",
                data={"run_id": report.run_id},
            )
        )
        out = report.model_dump(mode="json")
        return {"report": out, "messages": [answer(out)]}

    builder = StateGraph(
        OrchestratorState,
        context_schema=Context,
        input_schema=InputState,
        output_schema=OutputState,
    )
    builder.add_node("recall", recall_node)
    builder.add_node("planner", planner)
    builder.add_node("dispatcher", dispatcher)
    builder.add_node("mediator", mediation.node)
    builder.add_node("budget_gate", budget_gate)
    builder.add_node("synthesizer", synthesizer)
    builder.add_node("qa_reviewer", qa_reviewer)
    builder.add_node("learn", learn)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "planner")
    builder.add_edge("planner", "dispatcher")
    builder.add_edge("synthesizer", "qa_reviewer")
    builder.add_edge("qa_reviewer", "learn")
    builder.add_edge("learn", END)
    return builder


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


def _registry(workers: Sequence[Worker] | Registry | None) -> Registry:
    if isinstance(workers, Registry):
        return workers
    registry = Registry(default_team() if workers is None else workers)
    if not registry.workers():
        raise ValueError(
            "the team is empty: pass at least one Worker in workers=[...], or a "
            "Registry that workers join later"
        )
    return registry


def _settle_plan(plan: Plan, context: Context) -> tuple[Plan, list[Conflict]]:
    """Each task gets the dependencies its inputs imply, the plan's QA policy unless it has its
    own, and the priority its stakeholders agree on or vote for."""
    tasks, disputes = [], []
    plan = with_implied_dependencies(plan)
    for task in plan.tasks:
        priority, dispute = settle_priority(
            task.id, task.priority_votes, plan.stakeholders, context.mechanism("priority_dispute")
        )
        tasks.append(
            task.model_copy(
                update={
                    "qa_policy": task.qa_policy or plan.qa_policy,
                    "priority": priority or task.priority,
                }
            )
        )
        disputes += [dispute] if dispute else []
    return plan.model_copy(update={"tasks": tasks}), disputes


def validate_for_team(plan: Plan, registry: Registry) -> None:
    """The plan's shape and skills, then its data flow on this team (``dag.check_data_flow``)."""
    validate_plan(plan, registry.skills())
    check_data_flow(plan, registry.workers())
    check_contracts(plan, registry.workers())


def _valid(plan: Plan, registry: Registry) -> bool:
    try:
        validate_for_team(plan, registry)
    except ValueError:
        return False
    return True


_WORD = re.compile(r"[\w\-#~]+")


def _mentioned(ids: Iterable[str], text: str) -> set[str]:
    """The ids that occur in ``text``: word-like ids by one scan of its words (a substring
    search per id was O(tasks x text), quadratic on large plans), others by substring."""
    words = set(_WORD.findall(text))
    return {i for i in ids if (i in words if _WORD.fullmatch(i) else i in text)}


def _facts(output: Any) -> dict[str, Any]:
    """A result's facts, in the form the checkpoint can keep (integers beyond 64 bits and
    non-finite floats tagged, losslessly: ``ledger.to_store``)."""
    facts = output.get("facts") if isinstance(output, dict) else None
    return to_store(facts) if isinstance(facts, dict) else {}


def _brief(output: Any, summary: str) -> str:
    """What the synthesizer sees of a result: its summary, its small fields (never raw rows),
    and a Markdown document it wrote (a report), whole up to ``MAX_MARKDOWN`` characters."""
    if not isinstance(output, dict):
        return json.dumps(output, default=str)[:1500]
    small = {k: v for k, v in output.items() if k not in ("rows", "markdown", "summary")}
    brief = f"{summary}\n{json.dumps(small, default=str)[:1500]}"
    markdown = output.get("markdown")
    if isinstance(markdown, str) and markdown.strip():
        brief += f"\n<markdown>\n{markdown[:MAX_MARKDOWN]}\n</markdown>"
    return brief


MAX_MARKDOWN = 20_000


graph = create_orchestrator().compile(name="orchestrator")

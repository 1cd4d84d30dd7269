"""The mediator node: settles what the dispatcher escalated. A task that failed every attempt
goes to a human (``interrupt()``), the mediator model, or the run's fallback policy (retry
elsewhere, re-plan the failed sub-graph, finish partial); disagreeing redundant answers go to a
judge model, a merging model or a human."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from langgraph.store.base import BaseStore
from langgraph.types import Command, interrupt

from orchestrator_graph.auditlog import AuditLog, chain_state, decision_event, run_key
from orchestrator_graph.context import Context
from orchestrator_graph.env import Env
from orchestrator_graph.errors import StructuredOutputError
from orchestrator_graph.events import Event
from orchestrator_graph.identity import Identity, acting, actor_name
from orchestrator_graph.ledger import Ledger, attempt_key, load_schedule, save_schedule, spent_kept
from orchestrator_graph.llm import ask_structured, calling
from orchestrator_graph.models import Decision, Escalation, Plan, Replan, TaskRecord, TaskResult
from orchestrator_graph.prompts import messages
from orchestrator_graph.qa import gate_result
from orchestrator_graph.replan import replan
from orchestrator_graph.schemas import JudgeChoice, MediationAdvice, MergedAnswer
from orchestrator_graph.state import OrchestratorState, dump_records, plan_of, records_of
from orchestrator_graph.usage import Tally, track_usage, usage_update

if TYPE_CHECKING:
    from orchestrator_graph.nodes.services import Services

GOES_TO = ("dispatcher",)


async def step(
    services: Services, state: OrchestratorState, env: Env
) -> Command[Literal["dispatcher"]]:
    mediation = Mediation(services)
    context, records = env.context, records_of(state)
    decisions: list[Decision] = []
    plan = plan_of(state)
    replans = [Replan.model_validate(r) for r in state.get("replans", [])]
    new_replans: list[Replan] = []
    await chain_state(env.store, state)  # assignments and earlier decisions, before any pause
    chain = AuditLog(env.store, state["run_id"], await run_key())
    for entry in state.get("escalations", []):
        esc = Escalation.model_validate(entry)
        if esc.task_id not in records or records[esc.task_id].replaced_by:
            continue  # gone with a sub-graph an earlier re-plan replaced
        rec = records[esc.task_id]
        async with mediation.counted("mediator", context, state, env.store):
            decision = await mediation.decide(esc, context, env.store, state, plan, replans, rec)
        if decision.action == "replan":
            async with mediation.counted("planner", context, state, env.store):
                decision, plan, found = await mediation.replace_subgraph(
                    esc, decision, context, plan, records, replans
                )
            replans.append(found)
            new_replans.append(found)
            if decision.action == "replan":
                env.emit(replanned_event(esc, found))
        _apply(decision, esc, rec)
        index = len(state.get("decisions", [])) + len(decisions)
        await chain.append([decision_event(index, decision.model_dump(mode="json"))])
        decisions.append(decision)
        env.emit(
            Event(
                kind="decision",
                node="mediator",
                role="mediator" if decision.by in ("model", "judge", "mediator") else None,
                task_id=esc.task_id,
                message=f"{decision.action} by {decision.by}: {decision.reason}",
            )
        )
    update: dict[str, Any] = {}
    if any(r.applied for r in new_replans):
        update = await _rescheduled(services, state, env.store, plan, records)
    return Command(
        goto="dispatcher",
        update={
            **update,
            **usage_update({r: ts for r, ts in mediation.tallies.items() if ts}),
            "tasks": dump_records(records),
            "escalations": [],
            "decisions": [d.model_dump(mode="json") for d in decisions],
            "replans": [r.model_dump(mode="json") for r in new_replans],
        },
    )


def _apply(decision: Decision, esc: Escalation, rec: TaskRecord) -> None:
    """The decision, on the escalated task's record."""
    chosen = decision.attempt if decision.attempt is not None else esc.best_attempt
    if decision.action == "replan":
        return
    if decision.action == "accept" and chosen is not None:
        rec.status, rec.result_key = "approved", attempt_key(esc.task_id, chosen)
        rec.score = esc.best_score if decision.attempt is None else rec.score
        decision.attempt = chosen
    elif decision.action == "retry":
        rec.status, rec.extra_attempts = "pending", rec.extra_attempts + 1
        rec.retry_from = rec.attempts
        if decision.by == "policy":  # retry elsewhere: not on a worker that failed it
            rec.avoid = esc.tried  # past patterns' avoidance gives way to what failed
    else:
        rec.status = "failed"


def replanned_event(esc: Escalation, found: Replan) -> Event:
    return Event(
        kind="replanned",
        node="mediator",
        role="planner",
        task_id=esc.task_id,
        message=f"replaced {', '.join(found.removed)} with {', '.join(found.added)}: "
        f"{found.reason}",
        data=found.model_dump(mode="json"),
    )


async def _rescheduled(
    services: Services,
    state: OrchestratorState,
    store: BaseStore,
    plan: Plan,
    records: dict[str, TaskRecord],
) -> dict[str, Any]:
    """The re-planned plan, analysed and scheduled from now on, beside what already finished."""
    done = {t for t, r in records.items() if r.status == "approved"}
    previous = await load_schedule(store, state["run_id"])
    since = state.get("executing_since") or time.time()
    analysis, schedule = await services.analyse(
        plan,
        store,
        now=time.time() - since,
        finished=[s for s in (previous.planned if previous else []) if s.task_id in done],
    )
    await save_schedule(store, state["run_id"], schedule)
    return {
        "plan": plan.model_dump(mode="json", exclude_defaults=True),
        "analysis": analysis.model_dump(mode="json"),
        "planned_makespan": schedule.makespan,
    }


class Mediation:
    """The decisions behind the mediator node."""

    def __init__(self, services: Services) -> None:
        self.registry, self.roles = services.registry, services.roles
        self.tallies: dict[str, list[Tally]] = {"mediator": [], "planner": [], "reviewer": []}

    @asynccontextmanager
    async def counted(
        self,
        role: str,
        context: Context,
        state: OrchestratorState,
        store: BaseStore,
        alone: bool = False,
    ) -> AsyncIterator[None]:
        """Calls made for ``role``, bounded by its limits and the run's budget, counted under
        it, and kept if the node fails before it writes its state."""
        with track_usage(alone=alone) as usage, calling(self.roles.profile(role, context, state)):
            self.tallies[role].append(usage)
            async with spent_kept(store, state["run_id"], self.tallies):
                yield

    async def replace_subgraph(
        self,
        esc: Escalation,
        decision: Decision,
        context: Context,
        plan: Plan,
        records: dict[str, TaskRecord],
        replans: list[Replan],
    ) -> tuple[Decision, Plan, Replan]:
        """Replace the failed sub-graph, unless the planner cannot or would only repeat an
        earlier re-plan (the loop guard): then the run finishes without it, marked partial."""
        try:
            new_plan, found = await replan(
                plan,
                records,
                esc.task_id,
                esc.reason,
                self.roles.model("planner", context),
                self.registry.skills(),
                round_=1 + sum(r.applied for r in replans),
            )
        except (StructuredOutputError, ValueError) as err:
            found = Replan(
                failed=esc.task_id,
                removed=[],
                added=[],
                reason=str(err),
                signature="",
                applied=False,
            )
            return _partial(esc, f"the re-plan failed: {err}"), plan, found
        if any(r.signature == found.signature for r in replans):
            found.applied = False
            why = "loop guard: the re-plan repeats an earlier one for the same failure"
            return _partial(esc, why), plan, found
        for tid in found.removed:
            rec = records[tid]
            rec.status, rec.replaced_by = "skipped", found.added
            rec.feedback = f"replaced by a re-plan after {esc.task_id} failed: {esc.reason}"
        for tid in found.added:
            records[tid] = TaskRecord()
        return decision, new_plan, found

    async def decide(
        self,
        esc: Escalation,
        context: Context,
        store: BaseStore,
        state: OrchestratorState,
        plan: Plan,
        replans: list[Replan],
        rec: TaskRecord,
    ) -> Decision:
        if esc.candidates and esc.mechanism in ("judge", "mediate"):
            return await self._settle_answers(esc, context, store, state)
        if context.escalation == "human" or esc.mechanism == "human":
            question: dict[str, Any] = {
                "type": "escalation",
                "task_id": esc.task_id,
                "reason": esc.reason,
                "best_score": esc.best_score,
                "attempts": esc.attempts,
                "options": ["accept", "retry", "skip"],
            }
            if esc.candidates:  # disagreeing answers: the human may pick one by its attempt
                question["candidates"] = esc.candidates
            while True:  # an unusable answer is asked again, naming what was wrong
                try:
                    answer = interrupt(question)
                    who = acting(context)
                    return _human_decision(esc, answer, actor_name(context), who)
                except ValueError as err:
                    question = {**question, "error": str(err)}
        if self.roles.configured("mediator", context):  # a string or an object: the model's
            advice = await ask_structured(
                self.roles.model("mediator", context),
                MediationAdvice,
                messages(
                    "mediator",
                    task=esc.task_id,
                    reason=esc.reason,
                    score=esc.best_score,
                    attempts=esc.attempts,
                ),
            )
            refused = await self._refusal(esc, advice, context, store, state, rec)
            if refused:
                policy = self._fallback(esc, context, plan, replans, rec)
                return policy.model_copy(update={"reason": f"{refused}; {policy.reason}"})
            return Decision(
                task_id=esc.task_id, action=advice.action, by="model", reason=advice.reason
            )
        return self._fallback(esc, context, plan, replans, rec)

    async def _refusal(
        self,
        esc: Escalation,
        advice: MediationAdvice,
        context: Context,
        store: BaseStore,
        state: OrchestratorState,
        rec: TaskRecord,
    ) -> str:
        """Why the model's advice may not stand (empty when it may): an accept of a result
        that failed a deterministic gate, or a retry beyond the cap."""
        if advice.action == "retry" and rec.extra_attempts >= context.mediator_retries:
            return (
                f"the mediator model asked for a retry, but the cap of "
                f"{context.mediator_retries} model retries is reached"
            )
        if advice.action != "accept":
            return ""
        if esc.best_attempt is None:
            return "the mediator model chose accept, but no attempt produced a result"
        attempts = await Ledger(store, state["run_id"]).attempts()
        failed = [
            c.name
            for result, review in attempts
            if result.task_id == esc.task_id and result.attempt == esc.best_attempt
            for c in review.checks
            if not c.passed
        ]
        if failed:
            return (
                f"the mediator model chose accept, refused: attempt {esc.best_attempt} failed "
                f"deterministic checks ({', '.join(failed)})"
            )
        return ""

    def _fallback(
        self,
        esc: Escalation,
        context: Context,
        plan: Plan,
        replans: list[Replan],
        rec: TaskRecord,
    ) -> Decision:
        """The run's fallback policy for a task that failed for good: the first option in
        ``context.fallback`` that applies. A retry that never got to run (no attempt since it
        was granted) is not granted again: the run would go round in circles."""
        task = next(t for t in plan.tasks if t.id == esc.task_id)
        stuck = rec.extra_attempts > 0 and rec.retry_from == rec.attempts
        notes = []
        for option in context.fallback:
            if option == "retry_elsewhere":
                fresh = sorted(
                    w.name
                    for w in self.registry.assignable()
                    if w.can_do(task) and w.name not in esc.tried
                )
                if fresh and esc.tried and not esc.candidates and not stuck:
                    return Decision(
                        task_id=esc.task_id,
                        action="retry",
                        by="policy",
                        reason=f"fallback retry_elsewhere: {', '.join(fresh)} "
                        f"{'has' if len(fresh) == 1 else 'have'} not tried it "
                        f"({esc.reason})",
                    )
                notes.append(
                    "the last retry found no worker to run it"
                    if stuck
                    else "no able worker left that has not failed it"
                    if esc.tried
                    else "retrying elsewhere does not settle this"
                )
            elif option == "replan":
                if sum(r.applied for r in replans) < context.max_replans:
                    return Decision(
                        task_id=esc.task_id,
                        action="replan",
                        by="policy",
                        reason=f"fallback replan: the planner replaces {esc.task_id} and what "
                        f"depends on it ({esc.reason})",
                    )
                notes.append(f"re-plan budget spent ({context.max_replans})")
            else:
                return _partial(esc, "; ".join(notes))
        return _partial(esc, "; ".join([*notes, "no fallback left"]))

    async def _settle_answers(
        self,
        esc: Escalation,
        context: Context,
        store: BaseStore,
        state: OrchestratorState,
    ) -> Decision:
        """Disagreeing answers, settled by the mediator model: as a judge picking one, or as a
        mediator proposing a merged answer that must pass the task's QA gates like any other."""
        ledger = Ledger(store, state["run_id"])
        outputs = await ledger.outputs(
            [attempt_key(esc.task_id, c["attempt"]) for c in esc.candidates]
        )
        listing = json.dumps(
            [
                {**c, "output": outputs[attempt_key(esc.task_id, c["attempt"])]}
                for c in esc.candidates
            ],
            default=str,
        )[:12000]
        model = self.roles.model("mediator", context)
        if esc.mechanism == "judge":
            known = {c["attempt"] for c in esc.candidates}

            def real(choice: JudgeChoice) -> None:
                if choice.attempt not in known:
                    raise ValueError(
                        f"attempt {choice.attempt} is not a candidate; "
                        f"choose one of {sorted(known)}"
                    )

            choice = await ask_structured(
                model,
                JudgeChoice,
                messages("judge", task=esc.task_id, reason=esc.reason, candidates=listing),
                check=real,
            )
            return Decision(
                task_id=esc.task_id,
                action="accept",
                by="judge",
                attempt=choice.attempt,
                reason=choice.reason,
            )
        merged = await ask_structured(
            model,
            MergedAnswer,
            messages("merge", task=esc.task_id, reason=esc.reason, candidates=listing),
            check=_is_object,
        )
        task = next(t for t in plan_of(state).tasks if t.id == esc.task_id)
        attempt = max(esc.attempts, *(c["attempt"] for c in esc.candidates)) + 1
        result = TaskResult(
            task_id=task.id,
            attempt=attempt,
            worker="mediator",
            output=merged.merged(),
            summary=str(merged.merged().get("summary", "")),
            started_at=time.time(),
            finished_at=time.time(),
        )
        async with self.counted("reviewer", context, state, store, alone=True):
            review = await gate_result(task, result, context, self.roles.model("reviewer", context))
        await ledger.record(result, review)
        if review.verdict != "approve":
            return Decision(
                task_id=esc.task_id,
                action="skip",
                by="mediator",
                reason=f"the merged answer failed QA: {review.feedback}",
            )
        return Decision(
            task_id=esc.task_id,
            action="accept",
            by="mediator",
            attempt=attempt,
            reason=merged.reason,
        )


def _partial(esc: Escalation, why: str) -> Decision:
    return Decision(
        task_id=esc.task_id,
        action="skip",
        by="policy",
        reason=f"fallback partial{': ' + why if why else ''}: {esc.reason}; a rejected result is "
        "never passed on, so the task and its dependents are dropped and the output is partial",
    )


def _human_decision(
    esc: Escalation, answer: Any, actor: str = "human", identity: Identity | None = None
) -> Decision:
    if identity is not None and not identity.may("answer"):
        raise ValueError(
            f"escalation of task {esc.task_id!r}: {identity.name} (roles "
            f"{', '.join(identity.roles)}) may not answer escalations; an approver or admin must"
        )
    if isinstance(answer, str):
        answer = {"action": answer}
    if not isinstance(answer, dict) or answer.get("action") not in ("accept", "retry", "skip"):
        raise ValueError(
            f"escalation of task {esc.task_id!r}: resume with 'accept', 'retry' or 'skip' "
            f"(or {{'action': ..., 'reason': ..., 'attempt': ...}}), got {answer!r}"
        )
    attempt = answer.get("attempt")
    known = {c["attempt"] for c in esc.candidates}
    if attempt is not None and attempt not in known:
        raise ValueError(
            f"escalation of task {esc.task_id!r}: attempt {attempt!r} is not one of "
            f"the candidates {sorted(known)}"
        )
    return Decision(
        task_id=esc.task_id,
        action=answer["action"],
        by="human",
        actor=actor,
        attempt=attempt,
        reason=str(answer.get("reason") or "decided by a human"),
    )


def _is_object(answer: MergedAnswer) -> None:
    answer.merged()  # raises ValueError (re-asked) unless the output is a JSON object

"""Hierarchies of orchestrators: a team lead is a worker whose work is a whole orchestrator.

``team_lead(name, skills=..., team=[...])`` returns a ``Worker``. When the parent dispatches a
phase to it, the lead starts (or resumes) a child orchestrator with its own team, planner, QA and
memory on the parent's own checkpointer and store, under the thread
``<parent thread>/<task>#<attempt>`` — derived, so a resumed parent finds the child again, and a
finished child is read back instead of being run twice. The phase goes down with its acceptance
criteria, budget and deadline; a summary and references to the child's ledger come back up (never
the child's outputs), and the parent's QA gates them like any result. A child that cannot settle
its own escalations (or stops on its budget) fails the attempt, so the parent's retry policy and
mediator take over. Cancelling the parent's attempt cancels the child; the child's budget is the
phase's, capped by what the parent has left. Any depth works: a child's team may hold leads.

Every link is kept in the store (``ROOT/hierarchy/<parent run>``, key ``<task>#<attempt>``) with
both threads, both run ids, the child's status and cost and the bytes that crossed each way;
``tree`` reads it back for ``orchestrator-graph status`` and the audit trail, and
``report_links`` for the reports: a parent's lists its child runs, a child's names its parent
(kept under ``ROOT/hierarchy_parents``, key the child's thread)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field

from orchestrator_graph.context import Context
from orchestrator_graph.events import Event, StreamEmit
from orchestrator_graph.ledger import ROOT
from orchestrator_graph.llm import ambient_deadline
from orchestrator_graph.models import Plan, Task
from orchestrator_graph.registry import Registry
from orchestrator_graph.run_links import ChildRun, ParentRun
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

HIERARCHY = (ROOT, "hierarchy")
PARENTS = (ROOT, "hierarchy_parents")  # child thread -> models.ParentRun
STREAM = {"stream_mode": "custom", "durability": "sync"}
_END = object()
QUIET = frozenset({"status"})  # frequent, large snapshots stay in the child's own stream


class Delegation(BaseModel):
    """What goes down to a child: the phase (with its acceptance criteria), where it sits in
    the parent, its budget and deadline, and the reviewer's feedback on a retry."""

    phase: Task
    parent_thread: str
    parent_run_id: str
    attempt: int
    feedback: str = ""
    upstream: dict[str, str] = Field(
        default_factory=dict, description="upstream task -> its summary (the outputs stay put)"
    )
    budget_seconds: float | None = None
    budget_cost: float | None = None
    budget_tokens: int | None = None
    deadline: float | None = Field(None, description="seconds for the child's plan")

    def request(self) -> str:
        lines = [self.phase.title, self.phase.description]
        lines += [f"Acceptance: {c.description or c.kind}" for c in self.phase.acceptance]
        lines += [f"Input from {k}: {v}" for k, v in self.upstream.items()]
        if self.feedback:
            lines.append(f"Reviewer's feedback on the last attempt: {self.feedback}")
        return "\n".join(line for line in lines if line)


class ChildLink(BaseModel):
    """One parent task's child run, as kept in the store."""

    lead: str
    task_id: str
    attempt: int
    parent_thread: str
    parent_run_id: str
    child_thread: str
    child_run_id: str = ""
    status: str = "running"
    cost: float = 0.0
    bytes_down: int = 0
    bytes_up: int = 0
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None


class ChildFailed(RuntimeError):
    """The child ended without a deliverable the parent can gate (failed, paused, stopped)."""


def child_thread(parent_thread: str, task_id: str, attempt: int) -> str:
    return f"{parent_thread}/{task_id}#{attempt}"


def ledger_ref(run_id: str, result_key: str) -> str:
    return "/".join((ROOT, "runs", run_id, "attempts", result_key))


async def resolve(store: BaseStore, ref: str) -> Any:
    """The output a reference returned by a child points at."""
    *namespace, key = ref.split("/")
    item = await store.aget(tuple(namespace), key)
    if item is None:
        raise KeyError(f"no ledger item at {ref!r}")
    return item.value["result"]["output"]


PlanFor = Callable[[Delegation], Plan | Mapping[str, Any] | None]


class TeamLead:
    """The body of a team-lead worker (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        team: Sequence[Worker] | Registry,
        *,
        plan: PlanFor | None,
        model: str | BaseChatModel,
        models: Mapping[str, str | BaseChatModel] | None,
        memory: Any,
        forward_events: bool,
    ) -> None:
        from orchestrator_graph.graph import create_orchestrator  # the graph imports workers

        self.name, self.plan_for, self.forward = name, plan, forward_events
        self.builder = create_orchestrator(workers=team, model=model, models=models, memory=memory)
        self._compiled: dict[tuple[int, int], Any] = {}

    def _graph(self, saver: Any, store: Any) -> Any:
        if saver is None:  # a parent without a checkpointer: the child is as durable as it is
            from langgraph.checkpoint.memory import InMemorySaver

            saver = self.__dict__.setdefault("_own_saver", InMemorySaver())
        key = (id(saver), id(store))
        if key not in self._compiled:
            self._compiled[key] = self.builder.compile(
                checkpointer=saver, store=store, name=f"lead[{self.name}]"
            )
        return self._compiled[key]

    async def __call__(self, payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
        handle = ctx.run
        if handle is None:
            raise ChildFailed(f"team lead {self.name!r} runs only inside an orchestrator run")
        store, parent_context = handle.store, Context.coerce(handle.context)
        delegation = self._delegation(payload, handle.thread_id or payload.run_id)
        thread = child_thread(delegation.parent_thread, payload.task.id, payload.attempt)
        graph = self._graph(handle.checkpointer, store)
        link = ChildLink(
            lead=self.name,
            task_id=payload.task.id,
            attempt=payload.attempt,
            parent_thread=delegation.parent_thread,
            parent_run_id=payload.run_id,
            child_thread=thread,
        )
        return await self._run(graph, delegation, link, parent_context, store, ctx)

    def _delegation(self, payload: WorkerInput, parent_thread: str) -> Delegation:
        task, budget = payload.task, dict(payload.task.inputs.get("budget") or {})
        seconds = [s for s in (budget.get("seconds"), task.timeout) if s]
        if (deadline := ambient_deadline()) is not None:
            seconds.append(max(deadline - time.time(), 0.001))
        return Delegation(
            phase=task,
            parent_thread=parent_thread,
            parent_run_id=payload.run_id,
            attempt=payload.attempt,
            feedback=payload.feedback,
            upstream={k: _summary(v) for k, v in payload.upstream.items()},
            budget_seconds=min(seconds) if seconds else None,
            budget_cost=budget.get("cost"),
            budget_tokens=budget.get("tokens"),
            deadline=task.inputs.get("deadline"),
        )

    async def _run(
        self,
        graph: Any,
        delegation: Delegation,
        link: ChildLink,
        parent_context: Context,
        store: BaseStore,
        ctx: WorkerContext,
    ) -> dict[str, Any]:
        config = {"configurable": {"thread_id": link.child_thread}}
        context = dataclasses.replace(
            parent_context,
            budget_seconds=delegation.budget_seconds,
            budget_cost=delegation.budget_cost,
            budget_tokens=delegation.budget_tokens,
        )
        state = await graph.aget_state(config)
        finished = bool(state.values.get("report")) and not state.next
        if not (finished or _waiting(state)):  # read a finished child back; never run it again
            # A child killed at any point (even before its first step) goes on from its last
            # checkpoint; only a thread with no state at all starts afresh.
            payload = self._payload(delegation) if not state.values else None
            link.bytes_down = len(json.dumps(payload or {}, default=str))
            await self._save(store, link)
            parent = ParentRun(
                thread_id=link.parent_thread,
                run_id=link.parent_run_id,
                task_id=link.task_id,
                attempt=link.attempt,
                lead=link.lead,
            )
            await store.aput(PARENTS, link.child_thread, parent.model_dump(), index=False)
            await self._drive(graph.astream(payload, config, context=context, **STREAM), link, ctx)
            state = await graph.aget_state(config)
        return await self._answer(state, link, store)

    def _payload(self, delegation: Delegation) -> dict[str, Any]:
        payload: dict[str, Any] = {"request": delegation.request()}
        if self.plan_for and (plan := self.plan_for(delegation)) is not None:
            plan = Plan.model_validate(plan)
            if delegation.deadline:
                plan = plan.model_copy(update={"deadline": delegation.deadline})
            payload["plan"] = plan.model_dump(mode="json", exclude_defaults=True)
        return payload

    async def _drive(self, stream: AsyncIterator[Any], link: ChildLink, ctx: WorkerContext) -> None:
        """Run the child in a clean context (a top-level run on its own thread, not a subgraph of
        the parent's node; its model calls not counted twice in the parent's usage) and relay
        its events here, in the parent's context, where the parent's stream writer works."""
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in stream:
                    queue.put_nowait(event)
            finally:
                queue.put_nowait(_END)

        child = asyncio.create_task(pump(), context=contextvars.Context())
        try:
            while (event := await queue.get()) is not _END:
                self._relay(event, link, ctx)
            await child
        finally:
            child.cancel()  # a cancelled parent attempt cancels the child (no-op once done)

    def _relay(self, event: Any, link: ChildLink, ctx: WorkerContext) -> None:
        if not isinstance(event, dict) or event.get("event") != "orchestrator":
            return
        if event.get("kind") == "run_started":
            link.child_run_id = event.get("data", {}).get("run_id", "")
        if not self.forward or event.get("kind") in QUIET:
            return
        data = {**event.get("data", {})}
        data.setdefault("thread", link.child_thread)  # the deepest run the event came from
        data.setdefault("depth", link.child_thread.count("/"))
        relayed = {**event, "node": f"{self.name}.{event['node']}", "data": data}
        if isinstance(ctx.emit, StreamEmit):  # the child's emitter redacted it already
            ctx.emit.relay(relayed)
        else:
            ctx.emit(Event(**{k: v for k, v in relayed.items() if k in Event.model_fields}))

    async def _answer(self, state: Any, link: ChildLink, store: BaseStore) -> dict[str, Any]:
        values = state.values
        link.child_run_id = values.get("run_id", link.child_run_id)
        report = values.get("report") or {}
        waiting = _waiting(state)
        link.status = report.get("status") or ("waiting" if waiting else "interrupted")
        link.cost = float(report.get("cost") or 0.0)
        link.finished_at = time.time()
        if link.status != "done":
            await self._save(store, link)
            reason = report.get("reason") or json.dumps(waiting, default=str)[:300]
            raise ChildFailed(f"child thread {link.child_thread!r} {link.status}: {reason}")
        tasks = report.get("tasks", {})
        deliverable = report.get("deliverable") or {}
        answer = {
            "summary": str(deliverable.get("summary") or deliverable.get("answer") or "")[:2000],
            "child": {"thread_id": link.child_thread, "run_id": link.child_run_id},
            "refs": {
                tid: ledger_ref(link.child_run_id, rec["result_key"])
                for tid, rec in tasks.items()
                if rec.get("status") == "approved" and rec.get("result_key")
            },
            "tasks": len(tasks),
        }
        link.bytes_up = len(json.dumps(answer))
        await self._save(store, link)
        return answer

    @staticmethod
    async def _save(store: BaseStore, link: ChildLink) -> None:
        key = f"{link.task_id}#{link.attempt}"
        await store.aput((*HIERARCHY, link.parent_run_id), key, link.model_dump(), index=False)


def delegated_to(output: Any) -> str:
    """For the audit trail: the child run a team lead's output came from, if it is one."""
    child = output.get("child") if isinstance(output, Mapping) else None
    if not isinstance(child, Mapping):
        return ""
    return f", delegated to thread {child.get('thread_id')} (run {child.get('run_id')})"


def _waiting(state: Any) -> list[Any]:
    return [i.value for t in state.tasks for i in t.interrupts]


def _summary(output: Any) -> str:
    if isinstance(output, Mapping) and output.get("summary"):
        return str(output["summary"])[:500]
    return json.dumps(output, default=str)[:500]


def team_lead(
    name: str,
    *,
    skills: Any,
    team: Sequence[Worker] | Registry,
    plan: PlanFor | None = None,
    model: str | BaseChatModel = "offline",
    models: Mapping[str, str | BaseChatModel] | None = None,
    memory: Any = None,
    forward_events: bool = True,
    **worker: Any,
) -> Worker:
    """A worker whose work is a whole orchestrator with ``team`` (its own planner, QA and memory).

    Args:
        plan: ``(Delegation) -> Plan`` to declare the child's plan; default: the child's planner
            model plans the phase from its title, description, criteria and upstream summaries.
        forward_events: relay the child's progress events into the parent's stream (each with
            ``data.thread`` naming the run it came from).
        worker: the rest of the ``Worker``'s fields (capacity, cost, region, description, ...).
    """
    body = TeamLead(
        name,
        team,
        plan=plan,
        model=model,
        models=models,
        memory=memory,
        forward_events=forward_events,
    )
    return Worker(name=name, skills=skills, run=body, **worker)


async def tree(store: BaseStore, run_id: str, *, depth: int = 8) -> list[dict[str, Any]]:
    """The child runs under ``run_id``, each with its own children, as stored."""
    if depth <= 0 or not run_id:
        return []
    items = await store.asearch((*HIERARCHY, run_id), limit=10_000)
    out = []
    for item in sorted(items, key=lambda i: (i.value["started_at"], i.key)):
        link = dict(item.value)
        link["children"] = await tree(store, link.get("child_run_id", ""), depth=depth - 1)
        out.append(link)
    return out


async def report_links(store: BaseStore, run_id: str, thread: str) -> dict[str, Any]:
    """The ``parent`` and ``children`` fields of a run's report (see the module)."""
    links = await store.asearch((*HIERARCHY, run_id), limit=10_000) if run_id else []
    children = [
        ChildRun(
            task_id=v["task_id"],
            attempt=v["attempt"],
            lead=v["lead"],
            thread_id=v["child_thread"],
            run_id=v.get("child_run_id", ""),
            status=v.get("status", "running"),
            cost=v.get("cost", 0.0),
        )
        for v in sorted((i.value for i in links), key=lambda v: (v["task_id"], v["attempt"]))
    ]
    parent = await store.aget(PARENTS, thread) if thread else None
    return {
        "parent": ParentRun.model_validate(parent.value) if parent else None,
        "children": children,
    }


def tree_lines(links: list[dict[str, Any]], indent: str = "") -> list[str]:
    """The tree as text, one child run per line, for ``orchestrator-graph status``."""
    lines = [] if indent or not links else ["child runs:"]
    for link in links:
        lines.append(
            f"{indent}  {link['task_id']}#{link['attempt']} -> {link['lead']}: thread "
            f"{link['child_thread']} (run {link['child_run_id'] or '?'}) {link['status']}"
        )
        lines += tree_lines(link["children"], indent + "  ")
    return lines

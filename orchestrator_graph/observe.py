"""What operations see of the runs: one ``RunView`` per thread, gathered from what the package
already keeps — the thread's state (its run report, task records, pending questions), the live
status snapshot, the planned schedule and the ledger in the store. Metrics, alerts and the
dashboard are all computed from these views, never from the dispatcher's internals.

Two sources give the same views: ``LocalSource`` reads a checkpointer and store (the CLI's
SQLite files or Postgres), ``ServerSource`` reads a LangGraph server through ``langgraph_sdk``
(inside the server, ``get_client()`` with no URL talks to it in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from orchestrator_graph.ledger import SCHEDULES, STATUS, attempts_namespace
from orchestrator_graph.limits import RECENT_RUNS
from orchestrator_graph.models import RunReport, Schedule, StatusSnapshot, TaskRecord

RunState = Literal["running", "waiting", "done", "partial", "failed", "stopped", "error"]
FINISHED = ("done", "partial", "failed", "stopped")
RECENT = RECENT_RUNS


class AttemptView(BaseModel):
    """One finished attempt, without its output."""

    task_id: str
    attempt: int
    worker: str
    skills: list[str] = Field(default_factory=list)
    started_at: float
    finished_at: float
    error: str | None = None
    verdict: str
    score: float
    reviewer: str
    tokens: int = 0
    review_tokens: int = 0

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def failed(self) -> bool:
        return self.error is not None or self.verdict != "approve"


class Question(BaseModel):
    """A run paused for someone: a human decision on a task, or a spent budget."""

    kind: Literal["human", "budget"]
    task_id: str | None = None
    reason: str = ""
    since: float


class RunView(BaseModel):
    thread_id: str
    run_id: str
    request: str = ""
    state: RunState
    started_at: float | None = None
    executing_since: float | None = None
    updated_at: float
    report: RunReport | None = None
    snapshot: StatusSnapshot | None = None
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    attempts: list[AttemptView] = Field(default_factory=list)
    schedule: Schedule | None = None
    waiting: list[Question] = Field(default_factory=list)
    recalled: int = Field(0, description="similar past runs the memory returned")
    plan_source: str | None = None
    memory_note: str = ""
    cost: float = Field(0.0, description="the report's, or the ledger's attempts at team prices")
    planned_makespan: float | None = None
    critical_path: list[str] = Field(default_factory=list, description="of the plan analysis")
    tenant: str | None = Field(None, description="the thread's tenant, on a server with auth")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def memory_ok(self) -> bool | None:
        """False when the memory could not be used, None when the run did not ask for it."""
        note = (self.report.memory if self.report else "") or self.memory_note
        if "without memory" in note or "was not remembered" in note:
            return False
        if note == "memory off for this run" or not self.report:
            return None
        return True

    def last_progress(self) -> float:
        """When the run last moved: its newest finished attempt, else when it started."""
        times = [a.finished_at for a in self.attempts]
        times += [t for t in (self.executing_since, self.started_at) if t]
        return max(times, default=self.updated_at)


class Store(Protocol):
    """The two store calls the views need, over a ``BaseStore`` or the SDK's store client."""

    async def get(self, namespace: tuple[str, ...], key: str) -> dict[str, Any] | None: ...

    async def search(self, namespace: tuple[str, ...]) -> list[dict[str, Any]]: ...


def attempt_views(items: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> list[AttemptView]:
    skills = {t["id"]: list(t.get("skills", [])) for t in (plan or {}).get("tasks", [])}
    out = []
    for value in items:
        result, review = value["result"], value["review"]
        out.append(
            AttemptView(
                task_id=result["task_id"],
                attempt=result["attempt"],
                worker=result["worker"],
                skills=skills.get(result["task_id"], []),
                started_at=result.get("started_at", 0.0),
                finished_at=result.get("finished_at", 0.0),
                error=result.get("error"),
                verdict=review["verdict"],
                score=review["score"],
                reviewer=review.get("reviewer", "gates"),
                tokens=result.get("tokens", 0),
                review_tokens=review.get("tokens", 0),
            )
        )
    return sorted(out, key=lambda a: (a.finished_at, a.task_id, a.attempt))


def questions(interrupts: Sequence[Mapping[str, Any]], since: float) -> list[Question]:
    out = []
    for value in interrupts:
        if not isinstance(value, Mapping):
            continue
        kind: Literal["human", "budget"] = "budget" if value.get("type") == "budget" else "human"
        out.append(
            Question(
                kind=kind, task_id=value.get("task_id"), reason=value.get("reason", ""), since=since
            )
        )
    return out


async def build_view(
    store: Store,
    thread_id: str,
    values: Mapping[str, Any],
    *,
    updated_at: float,
    interrupts: Sequence[Mapping[str, Any]] = (),
    errored: bool = False,
    prices: Mapping[str, float] | None = None,
) -> RunView | None:
    """The view of one thread's newest run; None for a thread that never started one."""
    run_id = values.get("run_id")
    if not run_id:
        return None
    snap, sched, items = await asyncio.gather(
        store.get(STATUS, run_id),
        store.get(SCHEDULES, run_id),
        store.search(attempts_namespace(run_id)),
    )
    report = RunReport.model_validate(values["report"]) if values.get("report") else None
    waiting = questions(interrupts, updated_at)
    kept = StatusSnapshot.model_validate(values["status"]) if values.get("status") else None
    live = StatusSnapshot.model_validate(snap) if snap else None
    attempts = attempt_views(items, values.get("plan") or {})
    prices = prices or {}
    state: RunState = (
        "waiting" if waiting else report.status if report else "error" if errored else "running"
    )
    return RunView(
        thread_id=thread_id,
        run_id=run_id,
        request=values.get("request", ""),
        state=state,
        started_at=values.get("started_at"),
        executing_since=values.get("executing_since"),
        updated_at=updated_at,
        report=report,
        snapshot=max((s for s in (live, kept) if s), key=lambda s: s.at, default=None),
        tasks={k: TaskRecord.model_validate(v) for k, v in (values.get("tasks") or {}).items()},
        attempts=attempts,
        schedule=Schedule.model_validate(sched) if sched else report.schedule if report else None,
        waiting=waiting,
        recalled=len(values.get("recalled") or []),
        plan_source=(values.get("plan") or {}).get("source"),
        memory_note=values.get("memory_note") or "",
        cost=report.cost if report else round(sum(prices.get(a.worker, 0.0) for a in attempts), 6),
        planned_makespan=values.get("planned_makespan"),
        critical_path=list((values.get("analysis") or {}).get("critical_path") or []),
    )


class BaseStoreReader:
    """``Store`` over a LangGraph ``BaseStore`` (SQLite, Postgres, in memory)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def get(self, namespace: tuple[str, ...], key: str) -> dict[str, Any] | None:
        item = await self.store.aget(namespace, key)
        return item.value if item else None

    async def search(self, namespace: tuple[str, ...]) -> list[dict[str, Any]]:
        out, offset = [], 0
        while True:
            page = await self.store.asearch(namespace, limit=500, offset=offset)
            out += [i.value for i in page]
            if len(page) < 500:
                return out
            offset += 500


class SdkStoreReader:
    """``Store`` over ``langgraph_sdk``'s store client (a server, or the server itself)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def get(self, namespace: tuple[str, ...], key: str) -> dict[str, Any] | None:
        from langgraph_sdk.errors import NotFoundError

        try:
            item = await self.client.store.get_item(list(namespace), key)
        except NotFoundError:
            return None
        return item["value"] if item else None

    async def search(self, namespace: tuple[str, ...]) -> list[dict[str, Any]]:
        out, offset = [], 0
        while True:
            page = await self.client.store.search_items(list(namespace), limit=500, offset=offset)
            items = page["items"]
            out += [i["value"] for i in items]
            if len(items) < 500:
                return out
            offset += 500


class LocalSource:
    """Runs in a checkpointer and store (the CLI's data folder, or Postgres)."""

    def __init__(self, saver: Any, store: Any, prices: Mapping[str, float] | None = None) -> None:
        self.saver, self.reader, self.prices = saver, BaseStoreReader(store), prices
        self.store = store

    async def threads(self, limit: int) -> list[tuple[str, float]]:
        """Thread ids, newest first, with when each last changed."""
        seen: dict[str, float] = {}
        async for tup in self.saver.alist(None):
            thread = tup.config["configurable"]["thread_id"]
            if tup.config["configurable"].get("checkpoint_ns"):
                continue
            ts = datetime.fromisoformat(tup.checkpoint["ts"]).timestamp()
            seen[thread] = max(seen.get(thread, 0.0), ts)
        return sorted(seen.items(), key=lambda kv: -kv[1])[:limit]

    async def runs(self, limit: int = RECENT) -> list[RunView]:
        from orchestrator_graph.graph import create_orchestrator

        graph = create_orchestrator().compile(checkpointer=self.saver, store=self.store)
        views = []
        for thread, ts in await self.threads(limit):
            snap = await graph.aget_state({"configurable": {"thread_id": thread}})
            interrupts = [i.value for t in snap.tasks for i in t.interrupts]
            errored = any(t.error for t in snap.tasks)
            view = await build_view(
                self.reader,
                thread,
                snap.values,
                updated_at=ts,
                interrupts=interrupts,
                errored=errored,
                prices=self.prices,
            )
            views += [view] if view else []
        return views


class ServerSource:
    """Runs on a LangGraph server, read with ``langgraph_sdk`` (``url=None``: in-process)."""

    def __init__(
        self, url: str | None = None, prices: Mapping[str, float] | None = None, client: Any = None
    ) -> None:
        if client is None:
            from langgraph_sdk import get_client

            client = get_client(url=url)
        self.client, self.reader, self.prices = client, SdkStoreReader(client), prices

    async def runs(self, limit: int = RECENT) -> list[RunView]:
        threads = await self.client.threads.search(
            limit=limit, sort_by="updated_at", sort_order="desc"
        )
        views = await asyncio.gather(*(self._view(t) for t in threads))
        return [v for v in views if v]

    async def _view(self, thread: Mapping[str, Any]) -> RunView | None:
        values = thread.get("values") or {}
        interrupts = [
            i["value"] for items in (thread.get("interrupts") or {}).values() for i in items
        ]
        if thread.get("status") == "busy" or not values:
            # a busy thread's cached values are its previous run's: read the checkpoint
            state = await self.client.threads.get_state(thread["thread_id"])
            values = state.get("values") or {}
            interrupts = [
                i["value"] for t in state.get("tasks", []) for i in t.get("interrupts", [])
            ]
        if not isinstance(values, Mapping):
            return None
        view = await build_view(
            self.reader,
            thread["thread_id"],
            values,
            updated_at=_timestamp(thread.get("updated_at")),
            interrupts=interrupts,
            errored=thread.get("status") == "error",
            prices=self.prices,
        )
        if view is not None:
            view.tenant = (thread.get("metadata") or {}).get("tenant")
        return view


def _timestamp(value: Any) -> float:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value) if isinstance(value, int | float) else time.time()


def team_prices(workers: Sequence[Any] | None = None) -> dict[str, float]:
    """Worker -> cost per attempt, for runs still going (a finished run's report has its cost)."""
    from orchestrator_graph.team import default_team

    return {w.name: w.cost for w in (workers if workers is not None else default_team())}

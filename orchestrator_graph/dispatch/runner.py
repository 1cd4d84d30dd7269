"""The dispatch loop: event-driven, dependency-aware, with no superstep barrier.

LangGraph runs nodes in supersteps, and a superstep waits for its slowest node; a Send-per-wave
loop therefore waits for the slowest task of each wave (langgraph #6320, #4673). Here one
dispatcher superstep keeps every worker slot busy: the moment an attempt finishes and passes QA,
the tasks waiting on it start. Durability comes from the ledger, not the superstep: every finished
attempt is recorded under (run, task, attempt) before the loop reacts to it, and the board begins
by replaying the ledger, so a resumed run never repeats finished work.

This module is the only place with concurrency: it owns the attempts' futures, the clock, the
event stream and the store writes. What to do is decided by the board (``board``) and the
policies (``policies``), which return events and decisions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator_graph.availability import next_window
from orchestrator_graph.context import Context
from orchestrator_graph.dispatch.board import BoardRules, Launch, Running, TaskBoard, WorkerClocks
from orchestrator_graph.dispatch.deadline import DeadlineKeeper
from orchestrator_graph.dispatch.notices import announce_queued, escalations, progress
from orchestrator_graph.dispatch.policies import (
    Budgets,
    Paces,
    backups,
    better_soon,
    budget_breach,
    excluded,
    quarantine,
)
from orchestrator_graph.dispatch.watch import StallWatch
from orchestrator_graph.errors import BudgetExceeded
from orchestrator_graph.events import Emit
from orchestrator_graph.matching import Assignment, TeamMatcher
from orchestrator_graph.models import (
    Bottleneck,
    Conflict,
    Escalation,
    Review,
    Schedule,
    StatusSnapshot,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.monitor import Monitor
from orchestrator_graph.protection.classification import barred, check_assignment
from orchestrator_graph.registry import History, SkillStats

RunAttempt = Callable[[Launch], Awaitable[tuple[TaskResult, Review]]]
SaveHistory = Callable[[History, set[str]], Awaitable[None]]
Publish = Callable[[StatusSnapshot], Awaitable[None]]

POLL_SECONDS = 0.2  # how often heartbeats are checked while tasks run
HISTORY_EVERY = 1.0  # seconds between writes of the performance history
SNAPSHOT_EVERY = 0.5  # seconds between status snapshots
DROP_GRACE = 2.0  # seconds a dropped attempt gets to clean up before the dispatch returns
SNAPSHOT_SHARE = 0.05  # snapshots of a large run come less often, to take at most this share


@dataclass(frozen=True)
class DispatchSettings:
    """Everything the dispatch reads from the run's settings, built once (``from_context``):
    the board's rules, adaptation, stall factor, snapshot interval and budgets."""

    rules: BoardRules = field(default_factory=BoardRules)
    adapt: bool = True
    stall_after: float = 2.0
    status_every: float = SNAPSHOT_EVERY
    budgets: Budgets = field(default_factory=Budgets)

    @classmethod
    def from_context(
        cls, context: Context, *, started_at: float = 0.0, tokens_before: int = 0
    ) -> DispatchSettings:
        return cls(
            rules=BoardRules(
                max_attempts=context.max_attempts,
                loop_guard=context.loop_guard,
                resolution_for=context.mechanism,
            ),
            adapt=context.adapt,
            stall_after=context.stall_after,
            status_every=context.status_every,
            budgets=Budgets(
                seconds=context.budget_seconds,
                cost=context.budget_cost,
                attempts=context.budget_attempts,
                tokens=context.budget_tokens,
                started_at=started_at,
                tokens_before=tokens_before,
            ),
        )


@dataclass
class Outcome:
    records: dict[str, TaskRecord]
    escalations: list[Escalation] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    bottlenecks: list[Bottleneck] = field(default_factory=list)
    snapshot: StatusSnapshot | None = None


def reasons(objective: str, choice: Assignment | None) -> dict[str, Any]:
    """Why the attempt went to its worker: the score parts and the runner-up, or the backup
    the planned schedule chose."""
    if choice is None:
        return {
            "objective": objective,
            "score": 1.0,
            "parts": {"backup": 1.0},
            "runner_up": None,
            "runner_up_score": None,
        }
    return {
        "objective": objective,
        "score": choice.score,
        "parts": choice.parts,
        "runner_up": choice.runner_up,
        "runner_up_score": choice.runner_up_score,
    }


class DispatchRunner:
    def __init__(
        self,
        board: TaskBoard,
        settings: DispatchSettings,
        *,
        run_attempt: RunAttempt,
        emit: Emit,
        matcher: TeamMatcher,
        schedule: Schedule | None = None,
        deadline: float | None = None,
        t0: float | None = None,
        run_id: str = "",
        clocks: WorkerClocks | None = None,
        publish: Publish | None = None,
        save_history: SaveHistory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.board, self.settings, self.matcher = board, settings, matcher
        self.run_attempt, self.emit, self.publish = run_attempt, emit, publish
        self.save_history, self.clock = save_history, clock
        self.schedule = schedule
        self.t0 = t0 if t0 is not None else clock()
        self.run_id = run_id
        self.clocks = clocks if clocks is not None else WorkerClocks()
        self.paces = Paces(board.history, board.registry.get)
        self.jobs: dict[asyncio.Future[Any], Running] = {}
        self.futures: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self.dropped: set[asyncio.Future[Any]] = set()  # cancelled while the run went on
        self.monitor = Monitor(emit, run_id, schedule, deadline)
        self.time = DeadlineKeeper(
            board,
            self.monitor,
            emit,
            adapt=settings.adapt,
            schedule=schedule,
            deadline=deadline,
            t0=self.t0,
            clock=clock,
        )
        self.watch = StallWatch(self.clocks, run_id, settings.stall_after)
        self.finished: list[asyncio.Future[Any]] = []  # done since the last round, in order
        self._wake: asyncio.Future[bool] | None = None  # True: woken by the clock
        self._gone_checked = -1  # registry version last checked for gone workers
        self.snapshot_at = self.saved_at = 0.0
        self.snapshot_gap = settings.status_every  # longer when snapshots are costly
        self.lag = 0.0  # how late the loop wakes (CPU contention): added to stall bounds
        self.shown: dict[str, int] = {}
        self._changed: asyncio.Future[None] | None = None

    # --- the loop ------------------------------------------------------------------------
    async def run(self) -> Outcome:
        board = self.board
        try:
            while True:
                now = self.clock()
                self._take_back()
                if reason := budget_breach(board, self.settings.budgets, now):
                    raise BudgetExceeded(reason)
                self.time.check(now)
                for found in self.watch.check(board, now, self.lag, adapt=self.settings.adapt):
                    self.monitor.bottleneck(found)  # stalls, hedged when worth it
                self._launch()
                announce_queued(board, self.clock())
                self._flush()
                if not self.jobs:
                    opens = next_window(board, now)  # work waits for a worker's hours
                    if opens is None:
                        break
                    await asyncio.sleep(max(0.0, opens - self.clock()))
                    continue
                for job in sorted(await self._wait(), key=lambda j: self.jobs[j].key):
                    self._finish(self.jobs.pop(job), *job.result())
                if self.clock() - self.saved_at >= HISTORY_EVERY:
                    await self._save_history()
                self._flush()
                if self.clock() - self.snapshot_at >= self.snapshot_gap:
                    await self._publish()
        finally:
            for job, run in self.jobs.items():
                job.cancel()
                self.clocks.forget(self.run_id, run)
            if self._changed is not None:
                self._changed.cancel()
            self.jobs.clear()
            board.abandon()  # a stop or an error: free the workers (shared by other runs)
        if self.dropped:  # their clean-up (a Dask task cancelled on the cluster) ends first
            await asyncio.wait(self.dropped, timeout=DROP_GRACE)
        await self._save_history()
        settle = escalations(board)
        self._flush()
        return Outcome(
            records=board.records,
            escalations=settle,
            conflicts=board.conflicts,
            bottlenecks=self.monitor.bottlenecks,
            snapshot=await self._publish(),
        )

    def _flush(self) -> None:
        """Emit what the board said, then progress when the counts moved."""
        outbox, self.board.outbox = self.board.outbox, []
        for event in outbox:
            self.emit(event)
        counts = {k: v for k, v in self.board.counts.items() if v}
        if outbox and counts != self.shown:
            self.shown = counts
            self.emit(progress(self.board))

    async def _wait(self) -> list[asyncio.Future[Any]]:
        """Until an attempt finishes, the registry changes, or the next check is due. Measures
        how late the loop woke, which the stall bounds allow for. Attempts report their end
        through a callback (``_done``), so a round costs nothing per attempt still running."""
        registry = self.board.registry
        changed = self._changed is not None and self._changed.done()  # during the last round
        if self._changed is None or changed:
            self._changed = asyncio.ensure_future(registry.wait_changed())
            self._changed.add_done_callback(lambda _: self._rouse(False))
        self.watch.poll()
        if not self.finished and not changed:
            due = [self.snapshot_at + self.snapshot_gap]
            if registry.watches_heartbeats() or self.watch.waiting_to_begin():
                due.append(self.clock() + POLL_SECONDS)
            if (deadline_due := self.time.next_check()) is not None:
                due.append(deadline_due)
            if (stall_due := self.watch.next_stall(self.lag)) is not None:
                due.append(stall_due)
            wake = max(min(due), self.clock() + 0.001)
            loop = asyncio.get_running_loop()
            self._wake = loop.create_future()
            timer = loop.call_later(wake - self.clock(), self._rouse, True)
            try:
                if await self._wake:  # woke on time, or late because the machine is busy
                    self.lag = max(self.clock() - wake, 0.5 * self.lag)
            finally:
                timer.cancel()
        done, self.finished = self.finished, []
        return [job for job in done if job in self.jobs]

    def _done(self, job: asyncio.Future[Any]) -> None:
        if job in self.jobs:  # not one cancelled on purpose (dropped or taken back)
            self.finished.append(job)
            self._rouse(False)

    def _rouse(self, due: bool) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(due)

    # --- starting work -------------------------------------------------------------------
    def _launch(self) -> None:
        """Rounds of joint assignment while slots and ready work remain; one replica of a task
        per round, so its replicas land on different workers."""
        board, registry = self.board, self.board.registry
        if not board.heap:
            return  # nothing is ready: the team need not be looked at
        while True:
            workers = registry.assignable()
            free = [w for w in workers if registry.load(w.name) < w.capacity]
            batch = board.ready(free)
            if not batch:
                return
            started, backed = 0, set()
            if self.settings.adapt:
                for tid, worker in backups(board, batch, self.schedule):
                    if not board.can_start(tid, worker):  # an earlier backup took the slot
                        continue
                    self._start(tid, worker, reasons(self.matcher.objective, None))
                    started += 1
                    backed.add(tid)
            rest = [t for t in batch if t not in backed]
            chosen = {a.task: a for a in self._match(rest, workers)} if rest else {}
            now = self.clock()
            # Soonest finish first, so the later ones can see whom they would wait for.
            rest.sort(
                key=lambda t: (
                    self.paces.finish_at(board.tasks[t], chosen[t].worker, now)
                    if t in chosen
                    else float("inf")
                )
            )
            for tid in rest:
                choice = chosen.get(tid)
                wait = choice is not None and better_soon(
                    board, self.paces, tid, choice.worker, now
                )
                if choice is not None and not wait:
                    self._start(tid, choice.worker, reasons(self.matcher.objective, choice))
                    started += 1
                else:
                    board.push(tid)
            if not started:
                return

    def _match(self, tids: list[str], workers: list[Any]) -> list[Assignment]:
        board = self.board
        history = board.history

        def merit(name: str, skill: str) -> float:
            stats = history.get(name, {}).get(skill)
            return (stats or SkillStats()).merit

        force = self.matcher.team(
            workers,
            board.registry.version,
            board.registry.load,
            board.given,
            merit,
            lambda name, skill: self.paces.of(name, [skill])[0],
        )
        return self.matcher.match(
            force,
            [board.tasks[t] for t in tids],
            [board.failed_on[t] for t in tids],
            [excluded(board, t) | barred(board.tasks[t], workers) for t in tids],
            [t in board.urgent for t in tids],
        )

    def _start(self, tid: str, worker: str, why: dict[str, Any]) -> None:
        task = self.board.tasks[tid]
        check_assignment(task, self.board.registry.get(worker))
        expected = self.paces.duration(task, worker)
        launch, run = self.board.start(tid, worker, self.clock(), expected, why)
        job = asyncio.ensure_future(self.run_attempt(launch))
        job.add_done_callback(self._done)
        self.jobs[job] = run
        self.futures[run.key] = job
        self.watch.add(run)

    # --- finishing work ------------------------------------------------------------------
    def _finish(self, run: Running, result: TaskResult, review: Review) -> None:
        self.futures.pop(run.key, None)
        self.watch.discard(run.key)
        self.clocks.forget(self.run_id, run)
        member = self.board.registry.get(run.worker)
        done = self.board.finish(result, review, member.cost if member else 0.0)
        if not done.applied:
            return
        self.monitor.load.add(run.worker, self.clock() - run.dispatched)
        self.paces.forget(run.worker)
        self.matcher.forget(run.worker)
        if self.settings.adapt and (found := quarantine(self.board, run.worker)):
            self.board.quarantined.add(run.worker)
            self.monitor.bottleneck(found)
        if not done.approved:
            return
        self.time.approved(run.task_id, result.finished_at or self.clock())
        for hedge in done.hedges:  # the task is approved: its other attempts are dropped
            job = self.futures.pop(hedge.key, None)
            if job is not None and not job.done():
                job.cancel()
                self.dropped.add(job)
                self.jobs.pop(job, None)
                self.watch.discard(hedge.key)
                self.clocks.note(self.run_id, hedge)
                self.clocks.forget(self.run_id, hedge)
                self.board.cancel(hedge, self.clock())
                self.monitor.load.add(hedge.worker, self.clock() - hedge.dispatched)
                self.paces.forget(hedge.worker)
                self.matcher.forget(hedge.worker)

    def _take_back(self) -> None:
        """Attempts on workers that went offline are cancelled and queued again. Workers go
        offline by a registry change or by missing a heartbeat, so only then is it checked."""
        registry = self.board.registry
        if registry.version == self._gone_checked and not registry.watches_heartbeats():
            return
        self._gone_checked = registry.version
        gone = registry.gone({r.worker for r in self.jobs.values()})
        if not gone:
            return
        for job, run in list(self.jobs.items()):
            if run.worker in gone and not job.done():  # a finished job's result is kept
                job.cancel()
                self.dropped.add(job)
                del self.jobs[job]
                self.futures.pop(run.key, None)
                self.watch.discard(run.key)
                self.clocks.forget(self.run_id, run)
                self.board.take_back(run)

    async def _save_history(self) -> None:
        """Statistics, not results: written at most every ``HISTORY_EVERY`` seconds and at the
        end, so a crash may lose that much of them but never a result."""
        if self.board.touched and self.save_history is not None:
            await self.save_history(self.board.history, self.board.touched)
        self.board.touched, self.saved_at = set(), self.clock()

    # --- monitoring ----------------------------------------------------------------------
    async def _publish(self) -> StatusSnapshot:
        """A snapshot of every task and worker: O(tasks + workers), so with thousands of them
        it comes as often as keeps it to ``SNAPSHOT_SHARE`` of the time."""
        began = time.perf_counter()
        self.snapshot_at = self.clock()
        snapshot = self.monitor.snapshot(self.board, self.snapshot_at, self.clock() - self.t0)
        if self.publish is not None:
            await self.publish(snapshot)
        took = time.perf_counter() - began
        self.snapshot_gap = max(self.settings.status_every, took / SNAPSHOT_SHARE)
        return snapshot

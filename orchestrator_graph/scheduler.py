"""The dispatch loop: event-driven, dependency-aware, with no superstep barrier.

LangGraph runs nodes in supersteps, and a superstep waits for its slowest node; a Send-per-wave
loop therefore waits for the slowest task of each wave (langgraph #6320, #4673). Here one
dispatcher superstep keeps every worker slot busy: the moment an attempt finishes and passes QA,
the tasks waiting on it start. Durability comes from the ledger, not the superstep: every finished
attempt is recorded under (run, task, attempt) before the loop reacts to it, and ``Dispatch.run``
begins by replaying the ledger, so a resumed run never repeats finished work. Decisions depend
only on the ledger and the plan, never on call order, so replay is exact."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from orchestrator_graph.events import Emit, Event
from orchestrator_graph.ledger import attempt_key
from orchestrator_graph.models import (
    Escalation,
    Plan,
    PlanAnalysis,
    Review,
    Task,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.workers import Worker

RunAttempt = Callable[[Task, str, int, str, dict[str, str]], Awaitable[tuple[TaskResult, Review]]]
"""(task, worker, attempt, feedback, upstream result keys) -> the recorded result and review."""

FINAL = {"approved", "failed", "skipped"}


@dataclass
class Outcome:
    records: dict[str, TaskRecord]
    escalations: list[Escalation] = field(default_factory=list)


class Dispatch:
    def __init__(
        self,
        plan: Plan,
        analysis: PlanAnalysis,
        roster: Mapping[str, Worker],
        records: Mapping[str, TaskRecord],
        *,
        max_attempts: int,
        run_attempt: RunAttempt,
        emit: Emit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tasks = {t.id: t for t in plan.tasks}
        self.analysis = analysis
        self.roster = roster
        self.records = {tid: records.get(tid, TaskRecord()).model_copy() for tid in self.tasks}
        self.max_attempts = max_attempts
        self.run_attempt = run_attempt
        self.emit = emit
        self.clock = clock
        self.load: Counter[str] = Counter()
        self.failed_on: dict[str, set[str]] = {tid: set() for tid in self.tasks}
        self.reviews: dict[str, list[Review]] = {tid: [] for tid in self.tasks}

    # --- replay --------------------------------------------------------------------------
    def replay(self, finished: list[tuple[TaskResult, Review]]) -> None:
        """Fold the ledger into the records: finished attempts count, their verdicts stand."""
        for result, review in finished:
            if result.task_id in self.tasks:
                self._settle(result, review, live=False)

    def _allowed(self, tid: str) -> int:
        return self.max_attempts + self.records[tid].extra_attempts

    def _settle(self, result: TaskResult, review: Review, *, live: bool) -> None:
        tid = result.task_id
        rec = self.records[tid]
        self.reviews[tid].append(review)
        if rec.status in FINAL:  # settled by the mediator; the ledger only adds history
            return
        rec.attempts = max(rec.attempts, result.attempt)
        rec.worker, rec.score = result.worker, review.score
        rec.started_at, rec.finished_at = result.started_at, result.finished_at
        if review.verdict == "approve":
            rec.status, rec.result_key, rec.summary = (
                "approved",
                attempt_key(tid, result.attempt),
                result.summary,
            )
            rec.feedback = ""
        else:
            self.failed_on[tid].add(result.worker)
            rec.feedback = review.feedback
            rec.status = "escalated" if rec.attempts >= self._allowed(tid) else "pending"
        if live:
            kind = "task_completed" if rec.status == "approved" else "task_failed"
            self.emit(
                Event(
                    kind=kind,
                    node="dispatcher",
                    task_id=tid,
                    worker=result.worker,
                    attempt=result.attempt,
                    message=review.feedback or result.summary[:200],
                    data={"score": review.score, "status": rec.status},
                )
            )
            if rec.status == "escalated":
                self.emit(
                    Event(
                        kind="escalated",
                        node="dispatcher",
                        task_id=tid,
                        message=f"failed QA on all {rec.attempts} attempts: {rec.feedback}",
                    )
                )

    # --- scheduling -----------------------------------------------------------------------
    def _prepare(self) -> None:
        """Index the plan once per superstep: dependents, unmet dependencies, upward ranks,
        which workers can do each task, and the ready heap."""
        self.dependents: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for task in self.tasks.values():
            for dep in task.depends_on:
                self.dependents[dep].append(task.id)
        self.rank: dict[str, float] = {}
        for tid in reversed(self.analysis.order):
            tail = max((self.rank[d] for d in self.dependents[tid]), default=0.0)
            self.rank[tid] = self.tasks[tid].effort + tail
        self.able = {
            tid: [w for w in self.roster.values() if w.can_do(t)] for tid, t in self.tasks.items()
        }
        self._skip_downstream_of_failures()
        self.unmet = {
            tid: sum(self.records[d].status != "approved" for d in t.depends_on)
            for tid, t in self.tasks.items()
        }
        self.heap: list[tuple[float, int, str]] = []
        for tid, rec in self.records.items():
            if rec.status == "running":  # never checkpointed mid-flight; treat as not started
                rec.status = "pending"
            if rec.status == "pending" and not self.unmet[tid]:
                self._push(tid)

    def _push(self, tid: str) -> None:
        """Longest remaining path first (HEFT's upward rank), then the plan's priority."""
        heapq.heappush(self.heap, (-self.rank[tid], -self.tasks[tid].priority, tid))

    def _skip_downstream_of_failures(self) -> None:
        """Tasks downstream of a failed or skipped task can never run: mark them skipped."""
        for tid in self.analysis.order:
            rec = self.records[tid]
            if rec.status == "pending" and any(
                self.records[d].status in ("failed", "skipped") for d in self.tasks[tid].depends_on
            ):
                rec.status, rec.feedback = "skipped", "an upstream task failed or was skipped"

    def _choose(self, tid: str) -> str | None:
        task = self.tasks[tid]
        free = [w for w in self.able[tid] if self.load[w.name] < w.capacity]
        if not free:
            return None

        def rank(w: Worker) -> tuple[bool, float, float, str]:
            level = sum(w.skills[s] for s in task.skills) / len(task.skills)
            return (w.name in self.failed_on[tid], -level, self.load[w.name] / w.capacity, w.name)

        return min(free, key=rank).name

    def _launch(self, running: dict[asyncio.Task[tuple[TaskResult, Review]], str]) -> None:
        slots = sum(w.capacity - self.load[w.name] for w in self.roster.values())
        waiting: list[tuple[float, int, str]] = []
        while self.heap and slots > 0:
            entry = heapq.heappop(self.heap)
            tid = entry[2]
            worker = self._choose(tid)
            rec = self.records[tid]
            if worker is None:  # its workers are busy; others may still take other tasks
                waiting.append(entry)
                if rec.queued_at is None:
                    rec.queued_at = self.clock()
                    self.emit(
                        Event(
                            kind="task_queued",
                            node="dispatcher",
                            task_id=tid,
                            message="waiting for a free worker",
                        )
                    )
                continue
            slots -= 1
            attempt = rec.attempts + 1
            if rec.worker and rec.worker != worker and rec.attempts:
                self.emit(
                    Event(
                        kind="reassigned",
                        node="dispatcher",
                        task_id=tid,
                        worker=worker,
                        attempt=attempt,
                        message=f"from {rec.worker}",
                    )
                )
            rec.status, rec.worker = "running", worker
            rec.queued_at = rec.queued_at or self.clock()
            self.load[worker] += 1
            upstream = {d: self.records[d].result_key or "" for d in self.tasks[tid].depends_on}
            self.emit(
                Event(
                    kind="task_started",
                    node="dispatcher",
                    task_id=tid,
                    worker=worker,
                    attempt=attempt,
                )
            )
            job = asyncio.ensure_future(
                self.run_attempt(self.tasks[tid], worker, attempt, rec.feedback, upstream)
            )
            running[job] = tid
        for entry in waiting:
            heapq.heappush(self.heap, entry)

    async def run(self, finished: list[tuple[TaskResult, Review]]) -> Outcome:
        self.replay(finished)
        self._prepare()
        running: dict[asyncio.Task[tuple[TaskResult, Review]], str] = {}
        try:
            while True:
                self._launch(running)
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for job in sorted(done, key=lambda j: running[j]):
                    tid = running.pop(job)
                    result, review = job.result()
                    self.load[result.worker] -= 1
                    self._settle(result, review, live=True)
                    rec = self.records[tid]
                    if rec.status == "pending":
                        self._push(tid)
                    elif rec.status == "approved":
                        for dep in self.dependents[tid]:
                            self.unmet[dep] -= 1
                            if not self.unmet[dep] and self.records[dep].status == "pending":
                                self._push(dep)
                self._progress()
        finally:
            for job in running:
                job.cancel()
        escalations = [
            self._escalation(tid) for tid, r in self.records.items() if r.status == "escalated"
        ]
        return Outcome(records=self.records, escalations=escalations)

    def _escalation(self, tid: str) -> Escalation:
        reviews = self.reviews[tid]
        best = max(reviews, key=lambda r: (r.score, -r.attempt), default=None)
        return Escalation(
            task_id=tid,
            reason=self.records[tid].feedback or "failed quality review",
            attempts=self.records[tid].attempts,
            best_attempt=best.attempt if best else None,
            best_score=best.score if best else 0.0,
        )

    def _progress(self) -> None:
        counts = Counter(r.status for r in self.records.values())
        total = len(self.records)
        self.emit(
            Event(
                kind="progress",
                node="dispatcher",
                message=f"{counts['approved']}/{total} tasks approved",
                data={"total": total, **counts},
            )
        )

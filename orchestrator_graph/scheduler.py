"""The dispatch loop: event-driven, dependency-aware, with no superstep barrier.

LangGraph runs nodes in supersteps, and a superstep waits for its slowest node; a Send-per-wave
loop therefore waits for the slowest task of each wave (langgraph #6320, #4673). Here one
dispatcher superstep keeps every worker slot busy: the moment an attempt finishes and passes QA,
the tasks waiting on it start. Durability comes from the ledger, not the superstep: every finished
attempt is recorded under (run, task, attempt) before the loop reacts to it, and ``Dispatch.run``
begins by replaying the ledger, so a resumed run never repeats finished work.

Each scheduling round takes as many ready tasks as there are free worker slots (longest
remaining path first, then priority), scores them against the workers that can take work now and
assigns them jointly (``matching``). The registry may change at any time: new workers are used
from the next round, workers that go offline have their running tasks taken back and reassigned.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from orchestrator_graph.adaptation import ETA_EVERY, Adaptation, simplified
from orchestrator_graph.consensus import MECHANISMS, Ballot, expertise_weight
from orchestrator_graph.events import Emit, Event
from orchestrator_graph.ledger import attempt_key
from orchestrator_graph.matching import (
    Assignment,
    Demand,
    Objective,
    Workforce,
    assign_jointly,
    explain,
    score,
)
from orchestrator_graph.models import (
    Bottleneck,
    Conflict,
    Escalation,
    Plan,
    PlanAnalysis,
    Review,
    Schedule,
    StatusSnapshot,
    Task,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.monitor import (
    SNAPSHOT_EVERY,
    Attempt,
    Load,
    stall_bound,
)
from orchestrator_graph.qa import resolve
from orchestrator_graph.registry import (
    History,
    Registry,
    SkillStats,
    slowness,
)
from orchestrator_graph.workers import Worker

RunAttempt = Callable[[Task, str, int, str, dict[str, str]], Awaitable[tuple[TaskResult, Review]]]
"""(task, worker, attempt, feedback, upstream result keys) -> the recorded result and review."""
SaveHistory = Callable[[History, set[str]], Awaitable[None]]
Publish = Callable[[StatusSnapshot], Awaitable[None]]

FINAL = {"approved", "failed", "skipped"}
POLL_SECONDS = 0.2  # how often heartbeats are checked while tasks run
HISTORY_EVERY = 1.0  # seconds between writes of the performance history


class BudgetExceeded(Exception):
    """A run budget is spent: the dispatcher stops, the run pauses, resumable with more."""


@dataclass(frozen=True)
class Budgets:
    seconds: float | None = None
    cost: float | None = None
    attempts: int | None = None
    tokens: int | None = None
    started_at: float = 0.0
    tokens_before: int = 0  # planning's tokens: the attempts' own are in the ledger


@dataclass
class Outcome:
    records: dict[str, TaskRecord]
    escalations: list[Escalation] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    bottlenecks: list[Bottleneck] = field(default_factory=list)
    snapshot: StatusSnapshot | None = None


def answer_key(task: Task, output: Any) -> str:
    """What redundant executions must agree on, canonically: the task's ``consensus_field``,
    else the whole output but its free-text summary."""
    if task.consensus_field:
        value = resolve(output, task.consensus_field)
    elif isinstance(output, dict):
        value = {k: v for k, v in output.items() if k != "summary"}
    else:
        value = output
    return json.dumps(value, sort_keys=True, default=str)


class Dispatch(Adaptation):
    def __init__(
        self,
        plan: Plan,
        analysis: PlanAnalysis,
        registry: Registry,
        records: Mapping[str, TaskRecord],
        *,
        max_attempts: int,
        run_attempt: RunAttempt,
        emit: Emit,
        objective: Objective = "balanced",
        cross_validate: str = "off",
        resolution_for: Callable[[str], str] = lambda kind: "weighted",
        history: History | None = None,
        save_history: SaveHistory | None = None,
        budgets: Budgets | None = None,
        loop_guard: int = 3,
        schedule: Schedule | None = None,
        adapt: bool = True,
        stall_after: float = 2.0,
        status_every: float = SNAPSHOT_EVERY,
        t0: float | None = None,
        run_id: str = "",
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``schedule`` is the planned one (slip, backups); ``adapt`` turns on the responses to
        what the monitor finds (hedging stalled attempts, re-ranking on slip, backups, deadline
        cuts); ``stall_after`` is how many times its expected duration an attempt may take
        before it counts as stalled (0: never); ``t0`` is when execution started (deadline,
        slip); ``publish`` stores each status snapshot where clients can read it live."""
        self.tasks = {t.id: t for t in plan.tasks}
        for tid, rec in records.items():
            if rec.simplified and tid in self.tasks:
                self.tasks[tid] = simplified(self.tasks[tid])
        self.analysis = analysis
        self.registry = registry
        self.records = {tid: records.get(tid, TaskRecord()).model_copy() for tid in self.tasks}
        self.max_attempts = max_attempts
        self.run_attempt = run_attempt
        self.emit = emit
        self.objective = objective
        self.cross_validate = cross_validate
        self.resolution_for = resolution_for
        self.candidates: dict[str, list[dict[str, Any]]] = {}
        self.approved: dict[str, list[tuple[TaskResult, Review]]] = {t: [] for t in self.tasks}
        self.running_for: dict[str, set[str]] = {t: set() for t in self.tasks}
        self.launched: dict[str, int] = {}
        self.lost: dict[str, list[int]] = {t: [] for t in self.tasks}
        self.conflicts: list[Conflict] = []
        self.redundancy = {t.id: t.redundancy for t in plan.tasks}
        self.history: History = history if history is not None else {}
        self.save_history = save_history
        self.clock = clock
        self.budgets = budgets or Budgets()
        self.loop_guard = loop_guard
        self.deadline = plan.deadline
        self.schedule = schedule
        self.planned = {s.task_id: s for s in schedule.planned} if schedule else {}
        self.adapt = adapt
        self.stall_after = stall_after
        self.status_every = status_every
        self.t0 = t0 if t0 is not None else clock()
        self.run_id = run_id
        self.publish = publish
        self.expected = {
            tid: a.earliest_finish - a.earliest_start for tid, a in analysis.tasks.items()
        }
        self.load = Load()
        self.bottlenecks: list[Bottleneck] = []
        self.stalled: set[tuple[str, int]] = set()
        self.hedging: set[str] = set()
        self.urgent: set[str] = set()
        self.slip = 0.0
        self.slip_reported = False
        self.queues_seen: set[str] = set()
        self.snapshot_at = 0.0
        self.eta_cache: tuple[float, float] = (-1.0, 0.0)  # (computed at, eta)
        self.outcomes: dict[str, list[bool]] = {}  # worker -> verdicts in this run
        self._fit: dict[str, dict[tuple[str, ...], tuple[float, float]]] = {}  # pace, chance
        self.quarantined: set[str] = set()
        self.begun: dict[str, float] = {}
        self.deadline_warned = False
        self.given: Counter[str] = Counter(
            r.worker for r in self.records.values() if r.worker and r.status in FINAL
        )
        self.failed_on: dict[str, set[str]] = {tid: set() for tid in self.tasks}
        self.reviews: dict[str, list[Review]] = {tid: [] for tid in self.tasks}
        self.settled, self.spent_cost, self.tokens = 0, 0.0, 0  # budgets' running totals
        self.touched: set[str] = set()
        self.saved_at = clock()
        self.skills = sorted({s for t in plan.tasks for s in t.skills})
        self.column = {s: i for i, s in enumerate(self.skills)}
        self._team_key: tuple[Any, ...] | None = None
        self._stale: set[str] = set()
        self._changed: asyncio.Future[None] | None = None
        self.unannounced: set[str] = set()
        self.scarce_seen: set[str] = set()
        self.round_started: dict[str, str] = {}

    # --- replay --------------------------------------------------------------------------
    def replay(self, finished: list[tuple[TaskResult, Review]]) -> None:
        """Fold the ledger into the records: finished attempts count, their verdicts stand. A
        task a re-plan put in place of a failed one inherits the workers that failed it."""
        failed_by: dict[str, set[str]] = {}
        for result, review in finished:
            if result.task_id in self.tasks:
                self._settle(result, review, live=False)
            elif review.verdict == "reject":
                failed_by.setdefault(result.task_id, set()).add(result.worker)
        for tid, task in self.tasks.items():
            if task.replaces:
                self.failed_on[tid] |= failed_by.get(task.replaces, set())

    def _allowed(self, tid: str) -> int:
        """Reviewed attempts a task may use (each replica of a redundant task gets the budget)."""
        return self.max_attempts * self.redundancy[tid] + self.records[tid].extra_attempts

    def _settle(self, result: TaskResult, review: Review, *, live: bool) -> None:
        tid = result.task_id
        rec = self.records[tid]
        self.reviews[tid].append(review)
        self.outcomes.setdefault(result.worker, []).append(review.verdict == "approve")
        self.settled += 1
        self.spent_cost += self._cost(result.worker)
        self.tokens += result.tokens + review.tokens
        if rec.status in FINAL:  # settled by the mediator; the ledger only adds history
            return
        rec.attempts = max(rec.attempts, result.attempt)
        rec.worker, rec.score = result.worker, review.score
        rec.started_at, rec.finished_at = result.started_at, result.finished_at
        if review.verdict == "approve":
            self.approved[tid].append((result, review))
            rec.status, rec.feedback = "pending", ""
            if len(self.approved[tid]) >= self.redundancy[tid]:
                self._conclude(tid, live)
        else:
            self.failed_on[tid].add(result.worker)
            rec.feedback = review.feedback
            spent = len(self.reviews[tid]) >= self._allowed(tid)
            rec.status = "escalated" if spent else "pending"
            streak = 0  # the same failure, in a row, up to this one
            for earlier in reversed(self.reviews[tid]):
                if (
                    earlier.verdict != "reject"
                    or earlier.feedback != review.feedback
                    or earlier.attempt <= rec.retry_from
                ):
                    break
                streak += 1
            if not spent and review.feedback and streak >= self.loop_guard:
                rec.status = "escalated"  # loop guard: the same failure again will not differ
                rec.feedback = f"loop guard: failed the same way {streak} times: {review.feedback}"
            if review.reviewer == "gates+rubric" and all(c.passed for c in review.checks):
                self._conflict(
                    live,
                    Conflict(
                        kind="worker_vs_reviewer",
                        task_id=tid,
                        parties=[result.worker, "reviewer"],
                        detail=f"all code checks passed; the rubric rejected: {rec.feedback}",
                        mechanism="reviewer prevails",
                        resolution="retried with the reviewer's feedback"
                        if rec.status == "pending"
                        else "escalated",
                    ),
                )
        if rec.status == "pending" and self.running_for[tid]:
            rec.status = "running"  # other replicas are still at work
        if not live:
            return
        self._learn(result, review)
        kind = "task_completed" if review.verdict == "approve" else "task_failed"
        self._say(
            kind,
            task_id=tid,
            worker=result.worker,
            attempt=result.attempt,
            message=review.feedback or result.summary[:200],
            data={"score": review.score, "status": rec.status},
        )
        if rec.status == "escalated":
            self._say(
                "escalated",
                task_id=tid,
                message=f"after {len(self.reviews[tid])} attempts: {rec.feedback}",
            )

    def _conclude(self, tid: str, live: bool) -> None:
        """All replicas approved: one answer, or a vote among the disagreeing ones."""
        rec, task = self.records[tid], self.tasks[tid]
        replicas = sorted(self.approved[tid], key=lambda pair: pair[0].attempt)
        answers = {r.attempt: answer_key(task, r.output) for r, _ in replicas}
        winner = replicas[0][0]
        if len(set(answers.values())) > 1:
            weights = {r.attempt: self._expertise(r.worker, task, v.score) for r, v in replicas}
            parties = [r.worker for r, _ in replicas]
            detail = (
                f"{len(set(answers.values()))} different answers from {len(replicas)} executions"
            )
            mechanism = self.resolution_for("redundant_disagree")
            disagreement = partial(
                Conflict, kind="redundant_disagree", task_id=tid, parties=parties, detail=detail
            )
            if mechanism not in MECHANISMS:  # judge, mediate or human: the mediator decides
                self.candidates[tid] = [
                    {
                        "attempt": r.attempt,
                        "worker": r.worker,
                        "weight": round(weights[r.attempt], 4),
                        "answer": answers[r.attempt],
                    }
                    for r, _ in replicas
                ]
                self._conflict(
                    live,
                    disagreement(
                        mechanism=mechanism, resolution=f"handed to the mediator ({mechanism})"
                    ),
                )
                rec.status, rec.feedback = "escalated", f"redundant results disagree: {detail}"
                return
            ballots = [
                Ballot(voter=r.worker, answer=answers[r.attempt], weight=weights[r.attempt])
                for r, _ in replicas
            ]
            verdict = MECHANISMS[mechanism](ballots)
            chosen = next((r for r, _ in replicas if answers[r.attempt] == verdict.winner), None)
            self._conflict(
                live,
                disagreement(
                    mechanism=verdict.mechanism,
                    winner=chosen.worker if chosen else None,
                    votes=verdict.votes,
                    weights=verdict.weights,
                    resolution=verdict.reason,
                ),
            )
            if chosen is None:
                rec.status = "escalated"
                rec.feedback = f"redundant results disagree and the vote is tied: {verdict.reason}"
                return
            winner = chosen
        rec.status, rec.worker, rec.summary = "approved", winner.worker, winner.summary
        rec.result_key = attempt_key(tid, winner.attempt)

    def _expertise(self, worker: str, task: Task, score: float) -> float:
        """Skill level (from the registry) times the reviewer's score of this very answer: both
        are known again on replay, so a resumed run settles the vote the same way."""
        return expertise_weight(self.registry.level(worker, task.skills), score)

    def _conflict(self, live: bool, conflict: Conflict) -> None:
        """Recorded also on replay (the state only keeps what a finished superstep returns);
        announced only live."""
        self.conflicts.append(conflict)
        if live:
            self.emit(
                Event(
                    kind="conflict",
                    node="mediator",
                    task_id=conflict.task_id,
                    message=f"{conflict.kind}: {conflict.resolution}",
                    data=conflict.model_dump(mode="json"),
                )
            )

    def _learn(self, result: TaskResult, review: Review) -> None:
        """Per-skill performance history of the worker, updated after every attempt."""
        stats = self.history.setdefault(result.worker, {})
        for skill in self.tasks[result.task_id].skills:
            stats.setdefault(skill, SkillStats()).add(
                review.verdict == "approve",
                review.score,
                max(0.0, result.finished_at - result.started_at),
                self.tasks[result.task_id].effort,
            )
        self.touched.add(result.worker)
        self._stale.add(result.worker)
        self._fit.pop(result.worker, None)

    # --- preparation ---------------------------------------------------------------------
    def _prepare(self) -> None:
        """Index the plan once per superstep: dependents, unmet dependencies, upward ranks and
        the ready heap."""
        self.dependents: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for task in self.tasks.values():
            for dep in task.depends_on:
                self.dependents[dep].append(task.id)
        self.deps = {tid: list(t.depends_on) for tid, t in self.tasks.items()}
        self._rank()
        for tid, task in self.tasks.items():
            wanted = task.redundancy
            if self.cross_validate == "critical" and self.analysis.tasks[tid].critical:
                wanted = max(wanted, 2)
            able = sum(w.can_do(task) for w in self.registry.workers())
            self.redundancy[tid] = max(1, min(wanted, able))
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

    def _rank(self) -> None:
        """Upward rank from the expected durations (the plan's estimate or the team's history);
        a task the monitor marked urgent goes before every other."""
        self.rank: dict[str, float] = {}
        for tid in reversed(self.analysis.order):
            tail = max((self.rank[d] for d in self.dependents[tid]), default=0.0)
            self.rank[tid] = self.expected[tid] + tail
        top = max(self.rank.values(), default=0.0) + 1.0
        for tid in self.urgent:
            self.rank[tid] += top

    def _push(self, tid: str) -> None:
        """Longest remaining path first (HEFT's upward rank), then the plan's priority."""
        heapq.heappush(self.heap, (-self.rank[tid], -self.tasks[tid].priority, tid))
        self.unannounced.add(tid)

    def _skip_downstream_of_failures(self) -> None:
        """Tasks downstream of a failed or skipped task can never run: mark them skipped."""
        for tid in self.analysis.order:
            rec = self.records[tid]
            if rec.status == "pending" and any(
                self.records[d].status in ("failed", "skipped") for d in self.tasks[tid].depends_on
            ):
                rec.status, rec.feedback = "skipped", "an upstream task failed or was skipped"

    # --- matching ------------------------------------------------------------------------
    def _team(self, workers: list[Worker]) -> Workforce:
        """The assignable workers as arrays over the plan's skills. The static part is rebuilt
        only when the registry changes; quality rows only for workers whose history moved."""
        key = (self.registry.version, tuple(w.name for w in workers))
        if self._team_key != key:
            self._team_key, self._stale = key, {w.name for w in workers}
            self._force = Workforce(
                names=[w.name for w in workers],
                skills=self.skills,
                levels=np.array([[w.skills.get(s, 0.0) for s in self.skills] for w in workers]),
                quality=np.full((len(workers), len(self.skills)), SkillStats().merit),
                capacity=np.array([w.capacity for w in workers]),
                load=np.zeros(len(workers), dtype=int),
                cost=np.array([w.cost for w in workers], dtype=float),
                assigned=np.zeros(len(workers)),
                pace=np.ones((len(workers), len(self.skills))),
            )
        force = self._force
        for row, name in enumerate(force.names):
            if name in self._stale:
                stats = self.history.get(name, {})
                force.quality[row] = [
                    stats[s].merit if s in stats else SkillStats().merit for s in self.skills
                ]
                member = workers[row]
                force.pace[row] = [  # type: ignore[index]
                    1.0 / slowness(member, [s], self.history) for s in self.skills
                ]
            force.load[row], force.assigned[row] = self.registry.load(name), self.given[name]
        self._stale = set()
        return force

    def _busy_on(self, tid: str) -> set[str]:
        """Workers the task may not use now: those holding a replica of it (a replica needs
        another worker) and those a retry elsewhere avoids."""
        return (
            self.running_for[tid]
            | {r.worker for r, _ in self.approved[tid]}
            | set(self.records[tid].avoid)
        )

    def _needed(self, tid: str) -> int:
        hedge = 1 if tid in self.hedging else 0
        return self.redundancy[tid] + hedge - len(self.approved[tid]) - len(self.running_for[tid])

    def _match(self, tids: list[str], workers: list[Worker]) -> list[Assignment]:
        force = self._team(workers)
        required = np.full((len(tids), len(self.skills)), np.nan)
        for row, tid in enumerate(tids):
            task = self.tasks[tid]
            for skill in task.skills:
                required[row, self.column[skill]] = task.min_levels.get(skill, 0.0)
        index = {name: i for i, name in enumerate(force.names)}
        demand = Demand(
            ids=tids,
            required=required,
            failed_on=[{index[n] for n in self.failed_on[t] if n in index} for t in tids],
            excluded=[
                {index[n] for n in self._busy_on(t) | self._shunned(t) if n in index} for t in tids
            ],
            urgent=np.array([t in self.urgent for t in tids], dtype=bool),
        )
        scores = score(demand, force, self.objective)
        return explain(assign_jointly(scores, force.free), scores, demand, force, self.objective)

    def _launch(self, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """Rounds of joint assignment while slots and ready work remain; one replica of a task
        per round, so its replicas land on different workers."""
        while True:
            workers = self.registry.assignable()
            slots = sum(max(0, w.capacity - self.registry.load(w.name)) for w in workers)
            batch: list[tuple[float, int, str]] = []
            later: list[tuple[float, int, str]] = []
            while self.heap and len(batch) < slots:
                entry = heapq.heappop(self.heap)
                tid = entry[2]
                if self.records[tid].status not in ("pending", "running") or self._needed(tid) < 1:
                    continue  # stale: settled or fully staffed since it was queued
                (later if any(e[2] == tid for e in batch) else batch).append(entry)
            for entry in later:
                heapq.heappush(self.heap, entry)
            if not batch:
                return
            backups = self._start_backups([e[2] for e in batch], running)
            rest = [e for e in batch if e[2] not in backups]
            chosen = (
                {a.task: a for a in self._match([e[2] for e in rest], self.registry.assignable())}
                if rest
                else {}
            )
            started, now = 0, self.clock()
            # Soonest finish first, so the later ones can see whom they would wait for.
            rest.sort(
                key=lambda e: (
                    self._expected_finish(e[2], chosen[e[2]].worker, now)
                    if e[2] in chosen
                    else float("inf")
                )
            )
            for entry in rest:
                choice = chosen.get(entry[2])
                if choice is not None and not self._better_soon(entry[2], choice.worker, running):
                    self._start(entry[2], choice, running)
                    started += 1
                else:
                    heapq.heappush(self.heap, entry)
            if not started and not backups:
                return

    def _scarce(self, tid: str) -> None:
        """A task left waiting because the one worker that can do it went to another task in the
        same scheduling round: recorded once, with who went first and why. (In a pool of
        interchangeable workers, waiting for a slot is a queue, not a conflict.)"""
        able = {w.name for w in self.registry.workers() if w.can_do(self.tasks[tid])}
        rivals = sorted(t for t, w in self.round_started.items() if w in able and t != tid)
        if len(able) != 1 or not rivals or tid in self.scarce_seen:
            return
        self.scarce_seen.add(tid)
        held = sorted({self.round_started[r] for r in rivals})
        self._conflict(
            True,
            Conflict(
                kind="scarce_worker",
                task_id=tid,
                parties=[tid, *rivals],
                detail=f"{tid} and {', '.join(rivals)} need {', '.join(held)} at the same time",
                mechanism="critical path, then priority",
                winner=rivals[0],
                resolution=f"{', '.join(rivals)} first (longer remaining path or higher priority); "
                f"{tid} waits for the next free slot",
            ),
        )

    def _announce_queued(self) -> None:
        """Tasks that became ready but found no free worker with their skills."""
        for tid in sorted(self.unannounced):
            rec = self.records[tid]
            if rec.status == "pending" and rec.queued_at is None:
                self._scarce(tid)
                rec.queued_at = self.clock()
                self._say(
                    "task_queued", task_id=tid, message="waiting for a free worker with the skills"
                )
        self.unannounced, self.round_started = set(), {}

    def _start(
        self, tid: str, choice: Assignment, running: dict[asyncio.Future[Any], Attempt]
    ) -> None:
        rec = self.records[tid]
        self.begun[tid] = self.clock()
        if self.lost[tid]:  # the number of an attempt taken back: it never reached the ledger
            attempt = self.lost[tid].pop(0)
        else:
            attempt = self.launched[tid] = max(self.launched.get(tid, 0), rec.attempts) + 1
        hedge = tid in self.hedging
        self.hedging.discard(tid)
        moved = rec.worker and rec.worker != choice.worker and rec.attempts
        if hedge or moved:
            self._say(
                "reassigned",
                task_id=tid,
                worker=choice.worker,
                attempt=attempt,
                message=f"hedged: a second attempt while {rec.worker} is stalled"
                if hedge
                else f"from {rec.worker}",
            )
        rec.status, rec.worker = "running", choice.worker
        rec.queued_at = rec.queued_at or self.clock()
        rec.assignment = {
            "objective": self.objective,
            "score": choice.score,
            "parts": choice.parts,
            "runner_up": choice.runner_up,
            "runner_up_score": choice.runner_up_score,
        }
        self.registry.occupy(choice.worker)
        self.given[choice.worker] += 1
        self.running_for[tid].add(choice.worker)
        self.round_started[tid] = choice.worker
        if self._needed(tid) > 0:
            self._push(tid)
        upstream = {d: self.records[d].result_key or "" for d in self.tasks[tid].depends_on}
        self._say(
            "task_started",
            task_id=tid,
            worker=choice.worker,
            attempt=attempt,
            data={"assignment": rec.assignment},
        )
        job = asyncio.ensure_future(
            self.run_attempt(self.tasks[tid], choice.worker, attempt, rec.feedback, upstream)
        )
        expected = stall_bound(self.tasks[tid], choice.worker, self.registry, self.history)
        running[job] = Attempt(tid, choice.worker, attempt, self.clock(), expected)

    # --- the loop ------------------------------------------------------------------------
    async def run(self, finished: list[tuple[TaskResult, Review]]) -> Outcome:
        self.replay(finished)
        self._prepare()
        running: dict[asyncio.Future[Any], Attempt] = {}
        try:
            while True:
                self._take_back(running)
                self._check_budgets(running)
                self._meet_deadline(running)
                self._watch(running)
                self._launch(running)
                self._announce_queued()
                if not running:
                    break
                done = await self._wait(running)
                for job in sorted(done, key=lambda j: running[j].task_id):
                    self._finish(running.pop(job), *job.result(), running)
                if self.clock() - self.saved_at >= HISTORY_EVERY:
                    await self._save_history()
                self._progress()
                if self.clock() - self.snapshot_at >= self.status_every:
                    await self._publish(running)
        finally:
            for job in [*running, self._changed]:
                if job is not None:
                    job.cancel()
        await self._save_history()
        escalations = self._escalations()
        return Outcome(
            records=self.records,
            escalations=escalations,
            conflicts=self.conflicts,
            bottlenecks=self.bottlenecks,
            snapshot=await self._publish({}),
        )

    async def _save_history(self) -> None:
        """Statistics, not results: written at most every ``HISTORY_EVERY`` seconds and at the
        end, so a crash may lose that much of them but never a result."""
        if self.touched and self.save_history is not None:
            await self.save_history(self.history, self.touched)
        self.touched, self.saved_at = set(), self.clock()

    def _check_budgets(self, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """Spent so far: the ledger's attempts (replayed or live) plus those running now."""
        b = self.budgets
        if b.seconds is None and b.cost is None and b.attempts is None and b.tokens is None:
            return
        spent = {
            "seconds": self.clock() - b.started_at if b.started_at else 0.0,
            "cost": self.spent_cost + sum(self._cost(r.worker) for r in running.values()),
            "attempts": self.settled + len(running),
            "tokens": b.tokens_before + self.tokens,
        }
        for name, used in spent.items():
            limit = getattr(b, name)
            if limit is None:
                continue
            # attempts and cost are spent per launch: stop when the next launch would exceed
            if name in ("attempts", "cost") and used >= limit and self.heap:
                raise BudgetExceeded(
                    f"{name} budget spent: {used:g} of {limit:g}, "
                    f"{len(self.heap)} tasks still to run"
                )
            if name in ("seconds", "tokens") and used > limit:
                raise BudgetExceeded(f"{name} budget spent: {used:g} > {limit:g}")

    def _cost(self, worker: str) -> float:
        member = self.registry.get(worker)
        return member.cost if member else 0.0

    async def _wait(self, running: dict[asyncio.Future[Any], Attempt]) -> set[asyncio.Future[Any]]:
        """Until an attempt finishes, the registry changes, or (when heartbeats are watched) the
        next check is due."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.ensure_future(self.registry.wait_changed())
        timeout = POLL_SECONDS if self.registry.watches_heartbeats() else None
        watch = [
            self._stall_at(r)
            for r in running.values()
            if self.stall_after > 0 and (r.task_id, r.attempt) not in self.stalled
        ]
        if self.deadline is not None and not self.deadline_warned:
            watch.append(self.clock() + ETA_EVERY)
        watch.append(self.snapshot_at + self.status_every)
        if watch:
            wake = max(0.001, min(watch) - self.clock())
            timeout = wake if timeout is None else min(timeout, wake)
        done, _ = await asyncio.wait(
            {*running, self._changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        return {job for job in done if job in running}

    def _finish(
        self,
        run: Attempt,
        result: TaskResult,
        review: Review,
        running: dict[asyncio.Future[Any], Attempt],
    ) -> None:
        self.registry.release(run.worker)
        self.running_for[run.task_id].discard(run.worker)
        self.load.add(run.worker, self.clock() - run.started)
        was = self.records[run.task_id].status
        self._settle(result, review, live=True)
        self._quarantine(run.worker)
        rec = self.records[run.task_id]
        if rec.status in ("pending", "running") and self._needed(run.task_id) > 0:
            self._push(run.task_id)
        elif rec.status == "approved" and was != "approved":  # a same-tick hedge: once
            self._slipped(run.task_id, result.finished_at or self.clock())
            self._drop_hedges(run.task_id, running)
            for dep in self.dependents[run.task_id]:
                self.unmet[dep] -= 1
                if not self.unmet[dep] and self.records[dep].status == "pending":
                    self._push(dep)

    def _take_back(self, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """Attempts on workers that went offline are cancelled and queued again with the same
        attempt number: the lost attempt never reached the ledger, so nothing is applied twice."""
        gone = self.registry.gone({r.worker for r in running.values()})
        for job, run in list(running.items()):
            if run.worker not in gone or job.done():
                continue  # a finished job's result is kept: it is processed like any other
            job.cancel()
            del running[job]
            self.registry.release(run.worker)
            self.running_for[run.task_id].discard(run.worker)
            self.failed_on[run.task_id].add(run.worker)
            self.lost[run.task_id].append(run.attempt)
            if not self.running_for[run.task_id]:
                self.records[run.task_id].status = "pending"
            self._push(run.task_id)
            self._say(
                "reassigned",
                task_id=run.task_id,
                worker=run.worker,
                message=f"worker {run.worker} went offline",
            )

    def _escalations(self) -> list[Escalation]:
        out = [self._escalation(tid) for tid, r in self.records.items() if r.status == "escalated"]
        # Ready tasks left with no running work: nobody who can do them is available.
        for _, _, tid in sorted(self.heap):
            rec = self.records[tid]
            if rec.status != "pending":
                continue
            rec.status = "escalated"
            rec.feedback = self._nobody_reason(self.tasks[tid])
            self._say("escalated", task_id=tid, message=rec.feedback)
            out.append(self._escalation(tid))
        return out

    def _nobody_reason(self, task: Task) -> str:
        need = ", ".join(f"{s}>={task.min_levels.get(s, 0.0):g}" for s in task.skills)
        able = [w.name for w in self.registry.workers() if w.can_do(task)]
        if not able:
            return f"no registered worker has {need}"
        states = ", ".join(f"{n}: {self.registry.status(n)}" for n in able)
        return f"no available worker has {need} ({states})"

    def _escalation(self, tid: str) -> Escalation:
        reviews = self.reviews[tid]
        best = max(reviews, key=lambda r: (r.score, -r.attempt), default=None)
        return Escalation(
            task_id=tid,
            reason=self.records[tid].feedback or "failed quality review",
            attempts=self.records[tid].attempts,
            best_attempt=best.attempt if best else None,
            best_score=best.score if best else 0.0,
            mechanism=self.resolution_for("redundant_disagree") if tid in self.candidates else "",
            candidates=self.candidates.get(tid, []),
            tried=sorted(self.failed_on[tid]),
        )

    def _say(self, kind: str, **fields: Any) -> None:
        self.emit(Event(kind=kind, node="dispatcher", **fields))  # type: ignore[arg-type]

    def _progress(self) -> None:
        counts = Counter(r.status for r in self.records.values())
        total = len(self.records)
        self._say(
            "progress",
            message=f"{counts['approved']}/{total} tasks approved",
            data={"total": total, **counts},
        )

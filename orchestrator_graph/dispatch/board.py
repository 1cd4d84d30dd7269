"""The task board: every task's state and the transitions between states.

Pure bookkeeping: no I/O, no awaiting, no clock of its own (times are passed in). The runner
(``runner``) owns the futures and calls these transitions; the policies (``policies``) read the
board and return decisions that the runner applies here. What a transition has to say goes to
``outbox`` as events, which the runner emits.

Invariants the board keeps (tested on the board itself, ``tests/test_board.py``, and on whole
runs, ``tests/test_stress.py``):
a task starts only when every dependency is approved; a task is approved once; an attempt's
result is applied once, and only while that attempt is running; a worker never holds more
attempts than its capacity; a cancelled attempt is never applied.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator_graph.dag import able_workers, task_kind
from orchestrator_graph.dispatch.verdicts import FINAL, Approval, settle
from orchestrator_graph.events import Event
from orchestrator_graph.models import (
    Conflict,
    PlanAnalysis,
    Review,
    Task,
    TaskRecord,
    TaskResult,
)
from orchestrator_graph.registry import History, Registry, SkillStats
from orchestrator_graph.workers import Worker

OPEN = frozenset({"pending", "running"})


def simplified(task: Task) -> Task:
    """The task's cheaper version: its inputs overridden, its effort the simpler estimate."""
    if task.simplified is None:
        return task
    return task.model_copy(
        update={
            "inputs": {**task.inputs, **task.simplified.inputs},
            "effort": task.simplified.effort,
        }
    )


def with_redundancy(
    tasks: Iterable[Task], analysis: PlanAnalysis, workers: Sequence[Worker], cross_validate: str
) -> list[Task]:
    """Each task's executions, fixed once when the plan is made (and so checkpointed with it):
    its own ``redundancy``, at least 2 on the critical path with ``cross_validate="critical"``,
    at most the workers able to do it. A resumed board must count the same replicas, whatever
    joined the team since."""
    tasks = list(tasks)
    able_for = able_workers(tasks, workers)
    out = []
    for task in tasks:
        wanted = task.redundancy
        if cross_validate == "critical" and analysis.tasks[task.id].critical:
            wanted = max(wanted, 2)
        able = len(able_for[task.id])
        out.append(task.model_copy(update={"redundancy": max(1, min(wanted, able))}))
    return out


@dataclass(frozen=True)
class BoardRules:
    """What the board needs from the run's settings."""

    max_attempts: int = 3
    loop_guard: int = 3
    resolution_for: Callable[[str], str] = lambda kind: "weighted"


@dataclass
class Running:
    """One attempt at work. ``began`` is when the worker itself started (after the attempt's
    own set-up); stalls and pace are measured from there. ``returned`` is when the worker's
    call returned: from then on only review and bookkeeping remain, which cannot stall it."""

    task_id: str
    worker: str
    attempt: int
    dispatched: float
    expected: float
    began: float | None = None
    returned: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.attempt)

    @property
    def since(self) -> float:
        return self.began if self.began is not None else self.dispatched


AttemptKey = tuple[str, str, int]  # (run, task, attempt)


@dataclass
class WorkerClocks:
    """When each attempt's worker began and when its call returned: written by the attempt as
    it runs, read by the dispatcher, which measures stalls and pace from the worker itself (not
    from dispatch, and not through the review and recording that follow)."""

    began: dict[AttemptKey, float] = field(default_factory=dict)
    returned: dict[AttemptKey, float] = field(default_factory=dict)

    def note(self, run_id: str, run: Running) -> None:
        key = (run_id, run.task_id, run.attempt)
        if run.began is None:
            run.began = self.began.get(key)
        if run.returned is None:
            run.returned = self.returned.get(key)

    def forget(self, run_id: str, run: Running) -> None:
        key = (run_id, run.task_id, run.attempt)
        self.began.pop(key, None)
        self.returned.pop(key, None)


@dataclass(frozen=True)
class Launch:
    """What the runner needs to run an attempt."""

    task: Task
    worker: str
    attempt: int
    feedback: str
    upstream: dict[str, str]


@dataclass
class Finished:
    """What one applied result changed."""

    applied: bool
    approved: bool = False  # the task became approved by this result
    hedges: list[Running] = field(default_factory=list)  # still running on it: to cancel


class Abilities:
    """Which worker can do which task, cached per kind of task (its skills and levels) for one
    version of the team: a plan of thousands of tasks has a handful of kinds."""

    def __init__(self, tasks: Mapping[str, Task], registry: Registry) -> None:
        self.tasks, self.registry = tasks, registry
        self.kind = {tid: task_kind(t) for tid, t in tasks.items()}
        self._cache: dict[tuple[str, tuple[Any, ...]], bool] = {}
        self._counts: dict[tuple[Any, ...], int] = {}
        self._version = -1

    def count(self, tid: str) -> int:
        """How many of the team can do the task: once per kind of task."""
        kind = self.kind[tid]
        if self._version != self.registry.version or kind not in self._counts:
            self._counts[kind] = sum(self(tid, w) for w in self.registry.workers())
        return self._counts[kind]

    def __call__(self, tid: str, worker: Worker) -> bool:
        if self._version != self.registry.version:
            self._cache, self._counts, self._version = {}, {}, self.registry.version
        key = (worker.name, self.kind[tid])
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = worker.can_do(self.tasks[tid])
        return hit


class TaskBoard:
    def __init__(
        self,
        tasks: Iterable[Task],
        analysis: PlanAnalysis,
        records: Mapping[str, TaskRecord],
        registry: Registry,
        rules: BoardRules,
        history: History | None = None,
    ) -> None:
        self.tasks = {t.id: t for t in tasks}
        for tid, rec in records.items():
            if rec.simplified and tid in self.tasks:
                self.tasks[tid] = simplified(self.tasks[tid])
        self.analysis, self.registry, self.rules = analysis, registry, rules
        self.records = {
            tid: records[tid].model_copy() if tid in records else TaskRecord() for tid in self.tasks
        }
        self.history: History = history if history is not None else {}
        self.outbox: list[Event] = []
        self.able = Abilities(self.tasks, registry)
        self.redundancy = {
            tid: max(1, min(t.redundancy, self.able.count(tid))) if t.redundancy > 1 else 1
            for tid, t in self.tasks.items()
        }
        self.approved: dict[str, list[Approval]] = {t: [] for t in self.tasks}
        self.reviews: dict[str, list[Review]] = {t: [] for t in self.tasks}
        self.failed_on: dict[str, set[str]] = {t: set() for t in self.tasks}
        self.running: dict[tuple[str, int], Running] = {}
        self.running_for: dict[str, set[str]] = {t: set() for t in self.tasks}
        self.launched: dict[str, int] = {}
        self.lost: dict[str, list[int]] = {t: [] for t in self.tasks}
        self.candidates: dict[str, list[dict[str, Any]]] = {}
        self.conflicts: list[Conflict] = []
        self.hedging: set[str] = set()
        self.urgent: set[str] = set()
        self.quarantined: set[str] = set()
        self.outcomes: dict[str, list[bool]] = {}  # worker -> verdicts in this run
        self.given: Counter[str] = Counter(
            r.worker for r in self.records.values() if r.worker and r.status in FINAL
        )
        self.counts: Counter[str] = Counter(r.status for r in self.records.values())
        self.queued: dict[str, float] = {}  # pending tasks waiting for a worker, since when
        self.settled, self.spent_cost, self.tokens = 0, 0.0, 0
        self.touched: set[str] = set()  # workers whose history changed since the last save
        self.unannounced: set[str] = set()
        self.round_started: dict[str, str] = {}
        self.scarce_seen: set[str] = set()
        self.expected = {
            tid: a.earliest_finish - a.earliest_start for tid, a in analysis.tasks.items()
        }
        self.dependents: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for task in self.tasks.values():
            for dep in task.depends_on:
                self.dependents[dep].append(task.id)
        self.heap: list[tuple[float, int, str]] = []
        self.rank: dict[str, float] = {}
        self.unmet: dict[str, int] = {}

    # --- status -------------------------------------------------------------------------
    def set_status(self, tid: str, status: str) -> None:
        rec = self.records[tid]
        if rec.status != status:
            self.counts[rec.status] -= 1
            self.counts[status] += 1
            rec.status = status  # type: ignore[assignment]
        if status != "pending":
            self.queued.pop(tid, None)
        elif rec.queued_at is not None:  # waiting again, e.g. for a retry
            self.queued[tid] = rec.queued_at

    def say(self, kind: str, **fields: Any) -> None:
        self.outbox.append(Event(kind=kind, node="dispatcher", **fields))

    def left(self) -> list[str]:
        """Tasks not yet approved, failed or skipped."""
        return [t for t, r in self.records.items() if r.status not in FINAL]

    def rerank(self) -> None:
        """Upward rank from the expected durations; an urgent task goes before every other."""
        self.rank = {}
        for tid in reversed(self.analysis.order):
            tail = max((self.rank[d] for d in self.dependents[tid]), default=0.0)
            self.rank[tid] = self.expected[tid] + tail
        top = max(self.rank.values(), default=0.0) + 1.0
        for tid in self.urgent:
            self.rank[tid] += top
        if self.heap:
            self.heap = [(-self.rank[t], p, t) for _, p, t in self.heap]
            heapq.heapify(self.heap)

    def push(self, tid: str) -> None:
        """Ready: longest remaining path first (HEFT's upward rank), then the plan's priority."""
        heapq.heappush(self.heap, (-self.rank[tid], -self.tasks[tid].priority, tid))
        self.unannounced.add(tid)

    # --- what can run --------------------------------------------------------------------
    def needed(self, tid: str) -> int:
        """Attempts the task still wants started: its replicas, plus one while hedged."""
        hedge = 1 if tid in self.hedging else 0
        return self.redundancy[tid] + hedge - len(self.approved[tid]) - len(self.running_for[tid])

    def busy_on(self, tid: str) -> set[str]:
        """Workers the task may not use now: those holding a replica of it (a replica needs
        another worker) and those a retry elsewhere avoids."""
        return (
            self.running_for[tid]
            | {a.worker for a in self.approved[tid]}
            | set(self.records[tid].avoid)
        )

    def ready(self, free: Sequence[Worker]) -> list[str]:
        """Ready tasks that one of the ``free`` workers (with a free slot) can take, best first,
        at most one per free slot, taken off the queue. A task none of them can take stays
        queued, so it never holds back a task below it that one of them can."""
        slots = sum(w.capacity - self.registry.load(w.name) for w in free)
        batch: list[str] = []
        taken: set[str] = set()
        later: list[tuple[float, int, str]] = []
        blocked: set[tuple[Any, ...]] = set()  # kinds of task no free worker can take
        while self.heap and len(batch) < slots:
            entry = heapq.heappop(self.heap)
            tid = entry[2]
            if self.records[tid].status not in OPEN or self.needed(tid) < 1:
                continue  # stale: settled or fully staffed since it was queued
            barred = self.busy_on(tid)
            kind = self.able.kind[tid]
            if tid in taken or (not barred and kind in blocked):
                later.append(entry)  # one replica per round: replicas land on different workers
            elif not any(w.name not in barred and self.able(tid, w) for w in free):
                later.append(entry)
                if not barred:
                    blocked.add(kind)
            else:
                taken.add(tid)
                batch.append(tid)
        for entry in later:
            heapq.heappush(self.heap, entry)
        return batch

    def can_start(self, tid: str, worker: str) -> bool:
        member = self.registry.get(worker)
        return (
            member is not None
            and self.records[tid].status in OPEN
            and self.unmet.get(tid, 1) == 0
            and self.needed(tid) > 0
            and worker not in self.busy_on(tid)
            and self.registry.load(worker) < member.capacity
            and self.able(tid, member)
        )

    # --- transitions ---------------------------------------------------------------------
    def start(
        self, tid: str, worker: str, now: float, expected: float, why: dict[str, Any] | None
    ) -> tuple[Launch, Running]:
        if not self.can_start(tid, worker):
            raise RuntimeError(f"task {tid!r} cannot start on {worker!r} now")  # a runner bug
        rec = self.records[tid]
        if self.lost[tid]:  # the number of an attempt taken back: it never reached the ledger
            attempt = self.lost[tid].pop(0)
        else:
            attempt = self.launched[tid] = max(self.launched.get(tid, 0), rec.attempts) + 1
        hedge = tid in self.hedging
        self.hedging.discard(tid)
        moved = rec.worker and rec.worker != worker and rec.attempts
        if hedge or moved:
            self.say(
                "reassigned",
                task_id=tid,
                worker=worker,
                attempt=attempt,
                message=f"hedged: a second attempt while {rec.worker} is stalled"
                if hedge
                else f"from {rec.worker}",
            )
        self.set_status(tid, "running")
        rec.worker = worker
        rec.queued_at = rec.queued_at or now
        if why is not None:
            rec.assignment = why
        self.registry.occupy(worker)
        self.given[worker] += 1
        self.running_for[tid].add(worker)
        self.round_started[tid] = worker
        if self.needed(tid) > 0:
            self.push(tid)
        self.say(
            "task_started",
            task_id=tid,
            worker=worker,
            attempt=attempt,
            data={"assignment": rec.assignment},
        )
        run = Running(tid, worker, attempt, now, expected)
        self.running[run.key] = run
        upstream = {d: self.records[d].result_key or "" for d in self.tasks[tid].depends_on}
        return Launch(self.tasks[tid], worker, attempt, rec.feedback, upstream), run

    def finish(self, result: TaskResult, review: Review, cost: float) -> Finished:
        """Apply a finished attempt's result. Ignored unless that attempt is running: an
        attempt cancelled, taken back or already applied never counts twice."""
        run = self.running.pop((result.task_id, result.attempt), None)
        if run is None or run.worker != result.worker:
            if run is not None:
                self.running[run.key] = run
            return Finished(applied=False)
        tid = run.task_id
        self._release(run)
        was = self.records[tid].status
        settle(self, result, review, live=True, cost=cost)
        rec = self.records[tid]
        if rec.status in OPEN and self.needed(tid) > 0:
            self.push(tid)
        if rec.status != "approved" or was == "approved":
            return Finished(applied=True)
        self.hedging.discard(tid)
        for dep in self.dependents[tid]:
            self.unmet[dep] -= 1
            if not self.unmet[dep] and self.records[dep].status == "pending":
                self.push(dep)
        others = self.running_for[tid]  # its replicas and hedges still running, if any
        hedges = [r for r in self.running.values() if r.task_id == tid] if others else []
        return Finished(applied=True, approved=True, hedges=hedges)

    def cancel(self, run: Running, now: float) -> None:
        """An attempt still running on an approved task (a hedge's loser) is dropped. It never
        reaches the ledger; what it ran says something about its worker's pace only once it is
        past what was expected."""
        if self.running.pop(run.key, None) is None:
            return
        self._release(run)
        ran = now - (run.began if run.began is not None else run.dispatched)
        if run.began is None or ran <= run.expected:
            return
        stats = self.history.setdefault(run.worker, {})
        for skill in self.tasks[run.task_id].skills:
            stats.setdefault(skill, SkillStats()).add_timing(ran, self.tasks[run.task_id].effort)
        self.touched.add(run.worker)

    def take_back(self, run: Running) -> None:
        """The worker went offline: the attempt is queued again under the same number. The lost
        attempt never reached the ledger, so nothing is applied twice."""
        if self.running.pop(run.key, None) is None:
            return
        self._release(run)
        tid = run.task_id
        self.failed_on[tid].add(run.worker)
        self.lost[tid].append(run.attempt)
        if not self.running_for[tid] and self.records[tid].status == "running":
            self.set_status(tid, "pending")
        self.push(tid)
        self.say(
            "reassigned",
            task_id=tid,
            worker=run.worker,
            message=f"worker {run.worker} went offline",
        )

    def abandon(self) -> None:
        """The dispatch stops (a budget, an error): attempts still running are dropped and
        their workers freed. They never reached the ledger; a resume runs them again."""
        for run in list(self.running.values()):
            del self.running[run.key]
            self._release(run)

    def _release(self, run: Running) -> None:
        self.registry.release(run.worker)
        self.running_for[run.task_id].discard(run.worker)

    def hedge(self, tid: str) -> None:
        self.hedging.add(tid)
        self.push(tid)

    def make_urgent(self, tids: Iterable[str], expected: Mapping[str, float]) -> None:
        self.expected.update(expected)
        self.urgent = set(tids)
        self.rerank()

    def allowed(self, tid: str) -> int:
        """Reviewed attempts a task may use (each replica of a redundant task gets the budget)."""
        return self.rules.max_attempts * self.redundancy[tid] + self.records[tid].extra_attempts

    def cost_of(self, worker: str) -> float:
        member = self.registry.get(worker)
        return member.cost if member else 0.0


# --- ledger replay ----------------------------------------------------------------------------
def replay(board: TaskBoard, finished: Iterable[tuple[TaskResult, Review]]) -> None:
    """Fold the ledger into the records, then index the plan. Finished attempts count and
    their verdicts stand. A task a re-plan put in place of a failed one inherits the
    workers that failed it."""
    failed_by: dict[str, set[str]] = {}
    for result, review in finished:
        if result.task_id in board.tasks:
            settle(board, result, review, live=False)
        elif review.verdict == "reject":
            failed_by.setdefault(result.task_id, set()).add(result.worker)
    for tid, task in board.tasks.items():
        if task.replaces:
            board.failed_on[tid] |= failed_by.get(task.replaces, set())
    _prepare(board)


def _prepare(board: TaskBoard) -> None:
    board.rerank()
    for tid in board.analysis.order:  # downstream of a failure: can never run
        if board.records[tid].status == "pending" and any(
            board.records[d].status in ("failed", "skipped") for d in board.tasks[tid].depends_on
        ):
            board.set_status(tid, "skipped")
            board.records[tid].feedback = "an upstream task failed or was skipped"
    board.unmet = {
        tid: sum(board.records[d].status != "approved" for d in t.depends_on)
        for tid, t in board.tasks.items()
    }
    for tid, rec in board.records.items():
        if rec.status == "running":  # never checkpointed mid-flight; treat as not started
            board.set_status(tid, "pending")
        if rec.status == "pending" and not board.unmet[tid]:
            board.push(tid)

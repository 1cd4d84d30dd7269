"""What the dispatcher decides beyond the board's rules: pure functions that read the board (and
the planned schedule, the clock value they are given) and return decisions. The runner applies
them. Nothing here awaits, and nothing here changes the board.

- stalls and hedges: an attempt far past its expected duration gets a second attempt elsewhere,
  but only on a worker that would otherwise sit idle (a hedge must never take a slot from ready
  work, so it cannot slow a healthy run);
- run-time HEFT: a ready task waits for a busy worker that will clearly finish it sooner;
- quarantine of a worker that keeps failing; backups for risky tasks; slip on the critical
  path; deadline cuts; budgets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orchestrator_graph.dispatch.board import Running, TaskBoard
from orchestrator_graph.models import Bottleneck, Schedule, Task
from orchestrator_graph.registry import PRIOR_RELIABILITY, History
from orchestrator_graph.workers import Worker

STALL_FLOOR = 0.05  # seconds: below this an attempt never counts as stalled
SLIP_SHARE = 0.1  # slip worth reporting: this share of the planned makespan (or STALL_FLOOR)
QUARANTINE_AFTER = 3  # failed attempts in a run before a failing worker may be quarantined
WAIT_GAIN = 0.8  # wait for a busy worker only if it finishes in this share of the free one's time


@dataclass(frozen=True)
class Budgets:
    seconds: float | None = None
    cost: float | None = None
    attempts: int | None = None
    tokens: int | None = None
    started_at: float = 0.0
    tokens_before: int = 0  # planning's tokens: the attempts' own are in the ledger


# --- pace: what a worker is expected to take ---------------------------------------------------
class Paces:
    """Seconds per unit of effort, and the chance of passing QA, per worker and kind of task.

    Measured history first. A worker with none for these skills is given the team's median
    measured pace and the prior reliability: neither assumed perfect nor worst. With nobody
    measured yet, its declared speed. Cached until the worker's history moves (``forget``)."""

    def __init__(self, history: History, workers: Callable[[str], Worker | None]) -> None:
        self.history, self.workers = history, workers
        self._cache: dict[str, dict[tuple[str, ...], tuple[float, float]]] = {}
        # per kind of task: each measured worker's pace, and all of them sorted (for the median)
        self._team: dict[tuple[str, ...], tuple[dict[str, float], list[float]]] = {}

    def forget(self, worker: str | None = None) -> None:
        """The worker's history moved: its own figures and its place in the team's medians are
        refreshed (O(kinds x log team), not a pass over the team)."""
        if worker is None:
            self._cache.clear()
            self._team.clear()
            return
        self._cache.pop(worker, None)
        for kind, (paces, ordered) in self._team.items():
            old = paces.pop(worker, None)
            if old is not None:
                del ordered[bisect.bisect_left(ordered, old)]
            new = self.measured(worker, kind)
            if new is not None:
                paces[worker] = new
                bisect.insort(ordered, new)

    def measured(self, worker: str, skills: Iterable[str]) -> float | None:
        stats = self.history.get(worker, {})
        seen = [stats[s].slowness for s in skills if s in stats]
        known = [s for s in seen if s is not None]
        return max(known) if known else None

    def _team_median(self, kind: tuple[str, ...]) -> float | None:
        if kind not in self._team:
            paces = {w: p for w in self.history if (p := self.measured(w, kind)) is not None}
            self._team[kind] = (paces, sorted(paces.values()))
        ordered = self._team[kind][1]
        if not ordered:
            return None
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def of(self, worker: str, skills: Iterable[str]) -> tuple[float, float]:
        """(seconds per unit of effort, chance of passing QA)."""
        kind = tuple(skills)
        known = self._cache.setdefault(worker, {})
        hit = known.get(kind)
        if hit is not None:
            return hit
        member = self.workers(worker)
        pace = self.measured(worker, kind)
        if pace is None:
            pace = self._team_median(kind)
        if pace is None:
            pace = 1.0 / member.speed if member and member.speed > 0 else 1.0
        stats = self.history.get(worker, {})
        chance = min((stats[s].reliability for s in kind if s in stats), default=PRIOR_RELIABILITY)
        hit = known[kind] = (pace, max(chance, 0.05))
        return hit

    def duration(self, task: Task, worker: str) -> float:
        return task.effort * self.of(worker, task.skills)[0]

    def finish_at(self, task: Task, worker: str, start: float) -> float:
        """When the task would be done on this worker, retries included."""
        pace, chance = self.of(worker, task.skills)
        return start + task.effort * pace / chance


# --- who may take a task ----------------------------------------------------------------------
def shunned(board: TaskBoard, tid: str) -> set[str]:
    """Quarantined workers, for a task that another worker can do."""
    if not board.quarantined:
        return set()
    able = {w.name for w in board.registry.workers() if w.can_do(board.tasks[tid])}
    return board.quarantined & able if able - board.quarantined else set()


def excluded(board: TaskBoard, tid: str) -> set[str]:
    return board.busy_on(tid) | shunned(board, tid)


def better_soon(board: TaskBoard, paces: Paces, tid: str, worker: str, now: float) -> bool:
    """HEFT at run time: a busy worker that will be free soon and then finish the task clearly
    earlier (by ``WAIT_GAIN``) than the free one the matching chose is worth waiting for. Only
    measured history makes a difference; attempts past their expected end are not counted on."""
    if not any(board.history.values()):
        return False
    task = board.tasks[tid]
    here = paces.finish_at(task, worker, now) - now
    barred = excluded(board, tid)
    for run in board.running.values():
        if run.worker == worker or run.worker in barred:
            continue
        free_at = run.since + run.expected
        member = board.registry.get(run.worker)
        if free_at < now or member is None or not member.can_do(task):
            continue
        if paces.finish_at(task, run.worker, free_at) - now < WAIT_GAIN * here:
            return True
    return False


def backups(
    board: TaskBoard, tids: Iterable[str], schedule: Schedule | None
) -> list[tuple[str, str]]:
    """Contingency: a task being hedged, or retried after failing, goes to the backup worker its
    planned schedule chose, when that worker is free and has not failed it."""
    if schedule is None:
        return []
    out = []
    for tid in tids:
        risk = schedule.risks.get(tid)
        backup = risk.backup if risk else None
        if backup is None or not (tid in board.hedging or board.failed_on[tid]):
            continue
        if backup in board.failed_on[tid] | excluded(board, tid):
            continue
        if board.registry.status(backup) in ("available", "busy") and board.can_start(tid, backup):
            out.append((tid, backup))
    return out


# --- stalls and hedges --------------------------------------------------------------------------
def stall_at(run: Running, stall_after: float) -> float | None:
    """Clock time at which the attempt counts as stalled, measured from when its worker began
    (the attempt's own set-up does not count; the watch adds the event loop's lateness); None
    before the worker began and once it has returned."""
    if run.began is None or run.returned is not None:
        return None
    return run.began + max(STALL_FLOOR, stall_after * run.expected)


def hedge_worth_it(board: TaskBoard, run: Running) -> bool:
    """A hedge only runs on an able worker with a free slot that no ready task could use: it
    costs idle capacity, never a queued task's place."""
    tid = run.task_id
    if board.redundancy[tid] != 1 or board.needed(tid) != 0:
        return False
    barred = excluded(board, tid)
    idle = [
        w
        for w in board.registry.assignable()
        if w.name not in barred and board.able(tid, w) and board.registry.load(w.name) < w.capacity
    ]
    if not idle:
        return False
    waiting = [t for _, _, t in board.heap if board.records[t].status in ("pending", "running")]
    return any(not any(board.able(t, w) for t in waiting if t != tid) for w in idle)


def stall_response(adapt: bool, hedged: bool) -> str:
    if hedged:
        return "a second attempt starts on an idle worker; the first to pass QA wins"
    if not adapt:
        return "none: adaptation is off"
    return "none yet: no idle able worker (a hedge starts when one is free)"


def stall_finding(run: Running, now: float, stall_after: float, response: str) -> Bottleneck:
    ran = now - run.since
    return Bottleneck(
        kind="stall",
        task_id=run.task_id,
        worker=run.worker,
        detail=f"attempt {run.attempt} on {run.worker} has run {ran:.2f}s"
        f", {stall_after:g}x its expected {run.expected:.2f}s",
        measured=ran,
        response=response,
    )


# --- failing workers, slip -------------------------------------------------------------------
def quarantine(board: TaskBoard, worker: str) -> Bottleneck | None:
    """A worker that failed at least ``QUARANTINE_AFTER`` attempts of this run and passed at most
    a quarter gets no new task another worker can do."""
    seen = board.outcomes.get(worker, [])
    failed = seen.count(False)
    if worker in board.quarantined or failed < QUARANTINE_AFTER or failed < 0.75 * len(seen):
        return None
    return Bottleneck(
        kind="failing",
        worker=worker,
        detail=f"{worker} failed {failed} of {len(seen)} attempts in this run",
        measured=failed / len(seen),
        response="quarantined: no new task that another worker can do",
    )


def slip(board: TaskBoard, tid: str, late: float, schedule: Schedule | None) -> Bottleneck | None:
    """A critical-path task finished later than planned, by more than a share of the plan."""
    if not board.analysis.tasks[tid].critical:
        return None
    bound = max(STALL_FLOOR, SLIP_SHARE * (schedule.makespan if schedule else 0))
    if late <= bound:
        return None
    return Bottleneck(
        kind="slip",
        task_id=tid,
        detail=f"critical-path task {tid} finished {late:.2f}s later than planned",
        measured=late,
        response="",
    )


# --- budgets ---------------------------------------------------------------------------------
def budget_breach(board: TaskBoard, budgets: Budgets, now: float) -> str:
    """The reason to stop, or "": attempts and cost are spent per launch (stop when the next
    launch would exceed), seconds and tokens when passed."""
    limits = (budgets.seconds, budgets.cost, budgets.attempts, budgets.tokens)
    if all(limit is None for limit in limits):
        return ""  # no budget: nothing to add up each round
    costs = {w.name: w.cost for w in board.registry.workers()}
    running = list(board.running.values())
    waiting = len(board.heap)
    spent = {
        "seconds": now - budgets.started_at if budgets.started_at else 0.0,
        "cost": board.spent_cost + sum(costs.get(r.worker, 0.0) for r in running),
        "attempts": board.settled + len(running),
        "tokens": budgets.tokens_before + board.tokens,
    }
    for name, used in spent.items():
        limit = getattr(budgets, name)
        if limit is None:
            continue
        if name in ("attempts", "cost") and used >= limit and waiting:
            return f"{name} budget spent: {used:g} of {limit:g}, {waiting} tasks still to run"
        if name in ("seconds", "tokens") and used > limit:
            return f"{name} budget spent: {used:g} > {limit:g}"
    return ""

"""Keeping to the plan's time: slips on the critical path and a deadline the ETA passes.

``DeadlineKeeper`` is the runner's part that watches time; the transitions it applies (switch a
task to its cheaper version, drop optional work) and the choice of what to give up are functions
of the board here, so each can be tested on a board alone."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator_graph.dag import downstream
from orchestrator_graph.dispatch.board import TaskBoard, simplified
from orchestrator_graph.dispatch.policies import slip
from orchestrator_graph.events import Emit, Event
from orchestrator_graph.models import Bottleneck, Schedule
from orchestrator_graph.monitor import Monitor
from orchestrator_graph.registry import expected_durations

DEADLINE_EVERY = 0.05  # seconds between deadline checks


# --- what can be given up ---------------------------------------------------------------------
def simplifiable(board: TaskBoard) -> list[str]:
    """Pending tasks not running that have a cheaper version, lowest priority first."""
    return sorted(
        (
            t
            for t, task in board.tasks.items()
            if task.simplified is not None
            and not board.records[t].simplified
            and board.records[t].status == "pending"
            and not board.running_for[t]
        ),
        key=lambda t: (board.tasks[t].priority, -board.rank[t], t),
    )


def droppable(board: TaskBoard) -> list[str]:
    """Optional pending tasks not running whose dependents are all optional too."""
    return [
        tid
        for tid in board.analysis.order
        if board.tasks[tid].optional
        and board.records[tid].status == "pending"
        and not board.running_for[tid]
        and not board.records[tid].cut
        and all(board.tasks[d].optional for d in downstream(board.dependents, tid))
    ]


def cuttable(board: TaskBoard) -> list[str]:
    return sorted(droppable(board), key=lambda t: (board.tasks[t].priority, board.rank[t], t))


# --- giving it up -------------------------------------------------------------------------
def simplify(board: TaskBoard, tid: str, why: str) -> None:
    rec = board.records[tid]
    rec.simplified = True
    cheaper = board.tasks[tid].simplified
    note = cheaper.note if cheaper else ""
    rec.feedback = f"simplified to meet the deadline: {why}" + (f" ({note})" if note else "")
    board.tasks[tid] = simplified(board.tasks[tid])
    board.expected[tid] = min(board.expected[tid], board.tasks[tid].effort)
    board.say("simplified", task_id=tid, message=rec.feedback)


def cut(board: TaskBoard, tid: str, why: str) -> None:
    """Drop an optional task and everything after it (all optional: see ``droppable``)."""
    if board.records[tid].cut:
        return  # already cut with a task it depends on
    cut = f"dropped to meet the deadline: {why} (optional, priority {board.tasks[tid].priority})"
    for gone in [tid, *downstream(board.dependents, tid)]:
        rec = board.records[gone]
        board.set_status(gone, "skipped")
        rec.cut = True
        rec.feedback = cut if gone == tid else f"depends on {tid}, which was {cut}"
        board.say("task_failed", task_id=gone, message=rec.feedback, data={"status": "skipped"})


# --- the runner's watch on time --------------------------------------------------------------
class DeadlineKeeper:
    """Measures slips against the planned schedule and keeps the ETA within the deadline."""

    def __init__(
        self,
        board: TaskBoard,
        monitor: Monitor,
        emit: Emit,
        *,
        adapt: bool,
        schedule: Schedule | None,
        deadline: float | None,
        t0: float,
        clock: Callable[[], float],
    ) -> None:
        self.board, self.monitor, self.emit, self.adapt = board, monitor, emit, adapt
        self.schedule, self.deadline, self.t0, self.clock = schedule, deadline, t0, clock
        self.planned = {s.task_id: s for s in schedule.planned} if schedule else {}
        self.slip_reported = self.warned = False
        self.checked_at = 0.0

    def next_check(self) -> float | None:
        """When the deadline is next due to be checked, if it is still watched."""
        if not self.board.tasks or self.deadline is None or self.warned:
            return None
        return self.checked_at + DEADLINE_EVERY

    def approved(self, tid: str, finished_at: float) -> None:
        """A critical-path task later than planned: the slip is measured; with adaptation on,
        the remaining tasks are re-ranked on measured speeds and become urgent."""
        slot = self.planned.get(tid)
        if slot is None:
            return
        late = finished_at - self.t0 - slot.finish
        self.monitor.slip = max(self.monitor.slip, late)
        found = None if self.slip_reported else slip(self.board, tid, late, self.schedule)
        if found is None:
            return
        self.slip_reported = True
        board = self.board
        left = [t for t in board.left() if board.records[t].status != "escalated"]
        if self.adapt:
            workers = board.registry.assignable()
            fresh = expected_durations([board.tasks[t] for t in left], workers, board.history)
            board.make_urgent(left, fresh)
            found.response = (
                f"re-ranked {len(left)} remaining tasks on measured speeds; "
                "each now prefers the fastest free worker"
            )
        else:
            found.response = "none: adaptation is off"
        self.monitor.bottleneck(found)

    def check(self, now: float) -> None:
        """When the ETA passes the deadline: with adaptation on, tasks with a cheaper version
        switch to it, then optional tasks nothing required needs are dropped, lowest priority
        first, until the ETA fits or nothing is left to give."""
        if self.deadline is None or now - self.checked_at < DEADLINE_EVERY:
            return
        self.checked_at = now
        spare = self.deadline - (self.clock() - self.t0)
        estimate = self.monitor.eta(self.board, now)
        if estimate <= spare:
            return
        if not self.warned:  # once: the cuts and the report tell the rest
            self.warned = True
            self._warn(estimate, spare)
        if not self.adapt:
            return
        why = f"ETA {estimate:.2f}s > {spare:.2f}s left"
        for change, tids in ((simplify, simplifiable), (cut, cuttable)):
            for tid in tids(self.board):
                change(self.board, tid, why)
                if self.monitor.eta(self.board, now, fresh=True) <= spare:
                    return

    def _warn(self, estimate: float, spare: float) -> None:
        self.emit(
            Event(
                kind="deadline_risk",
                node="dispatcher",
                message=f"ETA {estimate:.2f}s, {spare:.2f}s left before the deadline",
                data={"eta": estimate, "left": spare},
            )
        )
        self.monitor.bottleneck(
            Bottleneck(
                kind="deadline",
                detail=f"ETA {estimate:.2f}s with {spare:.2f}s left before the deadline",
                measured=estimate - spare,
                response="simplify, then drop optional tasks, lowest priority first"
                if self.adapt
                else "none: adaptation is off",
            )
        )

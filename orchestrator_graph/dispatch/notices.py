"""What the board has to tell at the end of a round or of the dispatch: tasks left waiting for a
worker (and the scarce-worker conflicts behind them), progress, and the escalations the mediator
must settle. Functions of the board; what they say goes to its outbox."""

from __future__ import annotations

from orchestrator_graph.dispatch.board import TaskBoard
from orchestrator_graph.dispatch.verdicts import record_conflict
from orchestrator_graph.events import Event
from orchestrator_graph.models import Conflict, Escalation, Task


def announce_queued(board: TaskBoard, now: float) -> None:
    """Tasks that became ready but found no free worker with their skills."""
    for tid in sorted(board.unannounced):
        rec = board.records[tid]
        if rec.status == "pending" and rec.queued_at is None:
            _scarce(board, tid)
            rec.queued_at = now
            board.queued[tid] = now
            board.say(
                "task_queued", task_id=tid, message="waiting for a free worker with the skills"
            )
    board.unannounced, board.round_started = set(), {}


def _scarce(board: TaskBoard, tid: str) -> None:
    """A task left waiting because the one worker that can do it went to another task in the
    same scheduling round: recorded once, with who went first and why. (In a pool of
    interchangeable workers, waiting for a slot is a queue, not a conflict.)"""
    if tid in board.scarce_seen or not board.round_started or board.able.count(tid) != 1:
        return
    able = {w.name for w in board.registry.workers() if board.able(tid, w)}
    rivals = sorted(t for t, w in board.round_started.items() if w in able and t != tid)
    if len(able) != 1 or not rivals:
        return
    board.scarce_seen.add(tid)
    held = sorted({board.round_started[r] for r in rivals})
    record_conflict(
        board,
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


def progress(board: TaskBoard) -> Event:
    total = len(board.records)
    counts = {k: v for k, v in board.counts.items() if v}
    return Event(
        kind="progress",
        node="dispatcher",
        message=f"{counts.get('approved', 0)}/{total} tasks approved",
        data={"total": total, **counts},
    )


def escalations(board: TaskBoard) -> list[Escalation]:
    """Tasks the mediator must settle, and ready tasks left with nobody able to take them."""
    out = [_escalation(board, t) for t, r in board.records.items() if r.status == "escalated"]
    for _, _, tid in sorted(board.heap):
        rec = board.records[tid]
        if rec.status != "pending" or board.unmet.get(tid):
            continue
        board.set_status(tid, "escalated")
        rec.feedback = _nobody_reason(board, board.tasks[tid])
        board.say("escalated", task_id=tid, message=rec.feedback)
        out.append(_escalation(board, tid))
    board.heap = []
    return out


def _nobody_reason(board: TaskBoard, task: Task) -> str:
    need = ", ".join(f"{s}>={task.min_levels.get(s, 0.0):g}" for s in task.skills)
    able = [w.name for w in board.registry.workers() if w.can_do(task)]
    if not able:
        return f"no registered worker has {need}"
    states = ", ".join(f"{n}: {board.registry.status(n)}" for n in able)
    return f"no available worker has {need} ({states})"


def _escalation(board: TaskBoard, tid: str) -> Escalation:
    reviews = board.reviews[tid]
    best = max(reviews, key=lambda r: (r.score, -r.attempt), default=None)
    return Escalation(
        task_id=tid,
        reason=board.records[tid].feedback or "failed quality review",
        attempts=board.records[tid].attempts,
        best_attempt=best.attempt if best else None,
        best_score=best.score if best else 0.0,
        mechanism=board.rules.resolution_for("redundant_disagree")
        if tid in board.candidates
        else "",
        candidates=board.candidates.get(tid, []),
        tried=sorted(board.failed_on[tid]),
    )

"""Settling a finished attempt on the task board: approve or reject it, the loop guard, votes
between redundant replicas, conflicts, and the worker's performance history. Functions over a
``TaskBoard``; the board calls ``settle`` from its ``finish`` and ``replay`` transitions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from orchestrator_graph.consensus import MECHANISMS, Ballot, expertise_weight
from orchestrator_graph.events import Event
from orchestrator_graph.ledger import attempt_key
from orchestrator_graph.models import Conflict, Review, Task, TaskResult
from orchestrator_graph.qa import resolve
from orchestrator_graph.registry import SkillStats

if TYPE_CHECKING:
    from orchestrator_graph.dispatch.board import TaskBoard

FINAL = frozenset({"approved", "failed", "skipped"})


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


@dataclass(frozen=True)
class Approval:
    attempt: int
    worker: str
    score: float
    summary: str
    answer: str  # canonical answer, for votes between replicas ("" when there is one replica)


def settle(
    board: TaskBoard, result: TaskResult, review: Review, *, live: bool, cost: float | None = None
) -> None:
    tid = result.task_id
    rec = board.records[tid]
    board.outcomes.setdefault(result.worker, []).append(review.verdict == "approve")
    board.settled += 1
    board.spent_cost += cost if cost is not None else board.cost_of(result.worker)
    board.tokens += result.tokens + review.tokens
    if rec.status in FINAL:  # settled already; the ledger only adds history
        _learn(board, result, review, live)
        return
    board.reviews[tid].append(review)
    rec.attempts = max(rec.attempts, result.attempt)
    rec.worker, rec.score = result.worker, review.score
    rec.started_at, rec.finished_at = result.started_at, result.finished_at
    if review.verdict == "approve":
        _approve(board, result, review, live)
    else:
        _reject(board, result, review, live)
    if rec.status == "pending" and board.running_for[tid]:
        board.set_status(tid, "running")  # other replicas are still at work
    _learn(board, result, review, live)


def _approve(board: TaskBoard, result: TaskResult, review: Review, live: bool) -> None:
    tid = result.task_id
    task = board.tasks[tid]
    answer = answer_key(task, result.output) if board.redundancy[tid] > 1 else ""
    board.approved[tid].append(
        Approval(result.attempt, result.worker, review.score, result.summary, answer)
    )
    board.set_status(tid, "pending")
    board.records[tid].feedback = ""
    if len(board.approved[tid]) >= board.redundancy[tid]:
        _conclude(board, tid, live)
    if live:
        _announce(board, result, review)


def _reject(board: TaskBoard, result: TaskResult, review: Review, live: bool) -> None:
    tid = result.task_id
    rec = board.records[tid]
    board.failed_on[tid].add(result.worker)
    rec.feedback = review.feedback
    spent = len(board.reviews[tid]) >= board.allowed(tid)
    board.set_status(tid, "escalated" if spent else "pending")
    streak = 0  # the same failure, in a row, up to this one
    for earlier in reversed(board.reviews[tid]):
        if (
            earlier.verdict != "reject"
            or earlier.feedback != review.feedback
            or earlier.attempt <= rec.retry_from
        ):
            break
        streak += 1
    if not spent and review.feedback and streak >= board.rules.loop_guard:
        board.set_status(tid, "escalated")  # loop guard: the same failure again will not differ
        rec.feedback = f"loop guard: failed the same way {streak} times: {review.feedback}"
    if review.reviewer == "gates+rubric" and all(c.passed for c in review.checks):
        record_conflict(
            board,
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
    if live:
        _announce(board, result, review)


def _announce(board: TaskBoard, result: TaskResult, review: Review) -> None:
    tid = result.task_id
    rec = board.records[tid]
    kind = "task_completed" if review.verdict == "approve" else "task_failed"
    board.say(
        kind,
        task_id=tid,
        worker=result.worker,
        attempt=result.attempt,
        message=review.feedback or result.summary[:200],
        data={"score": review.score, "status": rec.status},
    )
    if rec.status == "escalated":
        board.say(
            "escalated",
            task_id=tid,
            message=f"after {len(board.reviews[tid])} attempts: {rec.feedback}",
        )


def _conclude(board: TaskBoard, tid: str, live: bool) -> None:
    """All replicas approved: one answer, or a vote among the disagreeing ones."""
    rec, task = board.records[tid], board.tasks[tid]
    replicas = sorted(board.approved[tid], key=lambda a: a.attempt)
    winner: Approval | None = replicas[0]
    if len({a.answer for a in replicas}) > 1:
        winner = _vote(board, tid, task, replicas, live)
        if winner is None:
            return
    assert winner is not None
    board.set_status(tid, "approved")
    rec.worker, rec.summary = winner.worker, winner.summary
    rec.result_key = attempt_key(tid, winner.attempt)
    board.reviews[tid] = []  # only an unsettled task needs them (fewer objects for the GC)


def _vote(
    board: TaskBoard, tid: str, task: Task, replicas: list[Approval], live: bool
) -> Approval | None:
    rec = board.records[tid]
    weights = {
        a.attempt: expertise_weight(board.registry.level(a.worker, task.skills), a.score)
        for a in replicas
    }
    detail = (
        f"{len({a.answer for a in replicas})} different answers from {len(replicas)} executions"
    )
    mechanism = board.rules.resolution_for("redundant_disagree")
    disagreement = partial(
        Conflict,
        kind="redundant_disagree",
        task_id=tid,
        parties=[a.worker for a in replicas],
        detail=detail,
    )
    if mechanism not in MECHANISMS:  # judge, mediate or human: the mediator decides
        board.candidates[tid] = [
            {
                "attempt": a.attempt,
                "worker": a.worker,
                "weight": round(weights[a.attempt], 4),
                "answer": a.answer,
            }
            for a in replicas
        ]
        record_conflict(
            board,
            live,
            disagreement(mechanism=mechanism, resolution=f"handed to the mediator ({mechanism})"),
        )
        board.set_status(tid, "escalated")
        rec.feedback = f"redundant results disagree: {detail}"
        return None
    ballots = [Ballot(voter=a.worker, answer=a.answer, weight=weights[a.attempt]) for a in replicas]
    verdict = MECHANISMS[mechanism](ballots)
    chosen = next((a for a in replicas if a.answer == verdict.winner), None)
    record_conflict(
        board,
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
        board.set_status(tid, "escalated")
        rec.feedback = f"redundant results disagree and the vote is tied: {verdict.reason}"
    return chosen


def record_conflict(board: TaskBoard, live: bool, conflict: Conflict) -> None:
    """Recorded also on replay (the state only keeps what a finished superstep returns);
    announced only live."""
    board.conflicts.append(conflict)
    if live:
        board.outbox.append(
            Event(
                kind="conflict",
                node="dispatcher",
                task_id=conflict.task_id,
                message=f"{conflict.kind}: {conflict.resolution}",
                data=conflict.model_dump(mode="json"),
            )
        )


def _learn(board: TaskBoard, result: TaskResult, review: Review, live: bool) -> None:
    """Per-skill performance history of the worker, updated after every live attempt."""
    if not live:
        return
    stats = board.history.setdefault(result.worker, {})
    task = board.tasks[result.task_id]
    for skill in task.skills:
        stats.setdefault(skill, SkillStats()).add(
            review.verdict == "approve",
            review.score,
            max(0.0, result.finished_at - result.started_at),
            task.effort,
        )
    board.touched.add(result.worker)

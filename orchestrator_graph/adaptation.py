"""The half of the dispatcher that watches the run and adapts: stalls and hedges, critical-path
slip and re-ranking, failing workers and quarantine, backups, run-time HEFT (waiting for a busy
worker that will finish sooner), the ETA and the deadline (simplify, then drop optional work),
and the status snapshots. ``Dispatch`` (``scheduler``) inherits it and owns the state it reads."""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Mapping
from typing import Any

from orchestrator_graph.dag import downstream
from orchestrator_graph.matching import Assignment
from orchestrator_graph.models import Bottleneck, StatusSnapshot, Task
from orchestrator_graph.monitor import (
    SLIP_SHARE,
    STALL_FLOOR,
    Attempt,
    eta,
    queue_bottlenecks,
    skill_loads,
)
from orchestrator_graph.registry import SkillStats, expected_durations, slowness

ETA_EVERY = 0.05  # seconds between ETA recomputations for the deadline check
QUARANTINE_AFTER = 3  # failed attempts in a run before a failing worker may be quarantined


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


class Adaptation:
    """Monitoring and adaptation methods of ``Dispatch``. They work on the attributes its
    ``__init__`` sets (tasks, records, registry, history, schedule, hedging, urgent, ...)."""

    def _shunned(self, tid: str) -> set[str]:
        """Quarantined workers, for a task that another worker can do."""
        if not self.quarantined:
            return set()
        able = {w.name for w in self.registry.workers() if w.can_do(self.tasks[tid])}
        return self.quarantined & able if able - self.quarantined else set()

    def _quarantine(self, worker: str) -> None:
        """With adaptation on, a worker that failed at least ``QUARANTINE_AFTER`` attempts of
        this run and passed at most a quarter gets no new task another worker can do."""
        seen = self.outcomes.get(worker, [])
        failed = seen.count(False)
        if (
            not self.adapt
            or worker in self.quarantined
            or failed < QUARANTINE_AFTER
            or failed < 0.75 * len(seen)
        ):
            return
        self.quarantined.add(worker)
        self._bottleneck(
            Bottleneck(
                kind="failing",
                worker=worker,
                detail=f"{worker} failed {failed} of {len(seen)} attempts in this run",
                measured=failed / len(seen),
                response="quarantined: no new task that another worker can do",
            )
        )

    def _expected_finish(self, tid: str, worker: str, start: float) -> float:
        """When the task would be done on this worker, retries included: its measured duration
        divided by its chance of passing QA."""
        task = self.tasks[tid]
        known = self._fit.setdefault(worker, {})
        kind = tuple(task.skills)
        if kind not in known:  # forgotten when the worker's history moves (_learn)
            member = self.registry.get(worker)
            if member is None:
                return float("inf")
            stats = self.history.get(worker, {})
            chance = min((stats[s].reliability for s in kind if s in stats), default=1.0)
            known[kind] = (slowness(member, kind, self.history), max(chance, 0.05))
        pace, chance = known[kind]
        return start + task.effort * pace / chance

    def _better_soon(
        self, tid: str, worker: str, running: dict[asyncio.Future[Any], Attempt]
    ) -> bool:
        """HEFT at run time: a busy worker that will be free soon and then finish the task
        earlier (measured speed and reliability) than the free one the matching chose is worth
        waiting for. Only history makes a difference here: with none, the free worker always
        finishes first. Attempts past their expected duration are not counted on."""
        if not any(self.history.values()):  # workers are listed even before they have any
            return False
        now = self.clock()
        here = self._expected_finish(tid, worker, now)
        task = self.tasks[tid]
        barred = self._busy_on(tid) | self._shunned(tid)
        for run in running.values():
            if run.worker == worker or run.worker in barred:
                continue
            free_at = run.started + run.expected
            member = self.registry.get(run.worker)
            if free_at < now or member is None or not member.can_do(task):
                continue
            if self._expected_finish(tid, run.worker, free_at) < here:
                return True
        return False

    def _start_backups(
        self, tids: list[str], running: dict[asyncio.Future[Any], Attempt]
    ) -> set[str]:
        """Contingency: a task being hedged, or retried after failing, goes to the backup worker
        its planned schedule chose, when that worker is free and has not failed it."""
        if not self.adapt or self.schedule is None:
            return set()
        out: set[str] = set()
        for tid in tids:
            risk = self.schedule.risks.get(tid)
            backup = risk.backup if risk else None
            if (
                backup is None
                or not (tid in self.hedging or self.failed_on[tid])
                or backup in self.failed_on[tid] | self._busy_on(tid)
            ):
                continue
            member = self.registry.get(backup)
            if (
                member is None
                or self.registry.status(backup) not in ("available", "busy")
                or self.registry.load(backup) >= member.capacity
            ):
                continue
            choice = Assignment(
                task=tid,
                worker=backup,
                score=1.0,
                parts={"backup": 1.0},
                runner_up=None,
                runner_up_score=None,
            )
            self._start(tid, choice, running)
            out.add(tid)
        return out

    def _elapsed(self) -> float:
        return self.clock() - self.t0

    def _stall_at(self, run: Attempt) -> float:
        """Clock time at which the attempt counts as stalled."""
        return run.started + max(STALL_FLOOR, self.stall_after * run.expected)

    def _watch(self, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """Stalled attempts (past ``stall_after`` times their expected duration): each found
        once; with adaptation on, a second attempt starts on another worker (the backup first)
        and whichever passes QA first wins."""
        if self.stall_after <= 0:
            return
        now = self.clock()
        for run in list(running.values()):
            key = (run.task_id, run.attempt)
            if key in self.stalled or now < self._stall_at(run):
                continue
            self.stalled.add(key)
            tid = run.task_id
            can_hedge = (
                self.adapt
                and self.redundancy[tid] == 1
                and self._needed(tid) == 0
                and any(
                    w.can_do(self.tasks[tid]) and w.name not in self._busy_on(tid)
                    for w in self.registry.assignable()
                )
            )
            if can_hedge:
                self.hedging.add(tid)
                self._push(tid)
            expected = run.expected
            self._bottleneck(
                Bottleneck(
                    kind="stall",
                    task_id=tid,
                    worker=run.worker,
                    detail=f"attempt {run.attempt} on {run.worker} has run {now - run.started:.2f}s"
                    f", {self.stall_after:g}x its expected {expected:.2f}s",
                    measured=now - run.started,
                    response="a second attempt starts on another worker; the first to pass QA wins"
                    if can_hedge
                    else "none: adaptation is off"
                    if not self.adapt
                    else "none: no other able worker",
                )
            )

    def _slipped(self, tid: str, finished_at: float) -> None:
        """A critical-path task finished later than planned: the slip is measured; with
        adaptation on, the remaining tasks are re-ranked on the speeds measured so far and all
        become urgent: the run is late, so the fastest free worker is preferred for each."""
        slot = self.planned.get(tid)
        if slot is None or not self.analysis.tasks[tid].critical:
            return
        late = finished_at - self.t0 - slot.finish
        self.slip = max(self.slip, late)
        bound = max(STALL_FLOOR, SLIP_SHARE * (self.schedule.makespan if self.schedule else 0))
        if late <= bound or self.slip_reported:
            return
        self.slip_reported = True
        left = [
            t for t in self.tasks if self.records[t].status in ("pending", "running", "rejected")
        ]
        if self.adapt:
            workers = self.registry.assignable()
            fresh = expected_durations([self.tasks[t] for t in left], workers, self.history)
            self.expected.update(fresh)
            self.urgent = set(left)
            self._rank()
            self.heap = [(-self.rank[t], p, t) for _, p, t in self.heap]
            heapq.heapify(self.heap)
        self._bottleneck(
            Bottleneck(
                kind="slip",
                task_id=tid,
                detail=f"critical-path task {tid} finished {late:.2f}s later than planned",
                measured=late,
                response=f"re-ranked {len(left)} remaining tasks on measured speeds; "
                "each now prefers the fastest free worker"
                if self.adapt
                else "none: adaptation is off",
            )
        )

    def _bottleneck(self, found: Bottleneck) -> None:
        self.bottlenecks.append(found)
        self._say(
            "bottleneck",
            task_id=found.task_id,
            worker=found.worker,
            message=f"{found.kind}: {found.detail}; {found.response}",
            data=found.model_dump(mode="json"),
        )

    def _eta(self, running: Mapping[asyncio.Future[Any], Attempt], *, every: float = 0.0) -> float:
        """The ETA, recomputed at most every ``every`` seconds."""
        now = self.clock()
        at, value = self.eta_cache
        if at >= 0 and now - at < every:
            return value
        value = eta(
            self.tasks,
            self.deps,
            self.records,
            list(running.values()),
            self.registry,
            self.history,
            now,
        )
        self.eta_cache = (now, value)
        return value

    async def _publish(self, running: Mapping[asyncio.Future[Any], Attempt]) -> StatusSnapshot:
        now = self.clock()
        self.snapshot_at = now
        runs = list(running.values())
        skills = skill_loads(self.tasks, self.records, runs, self.registry, now)
        planned = self.schedule.makespan if self.schedule else None
        for found in queue_bottlenecks(skills, planned or 0.0, self.queues_seen):
            self._bottleneck(found)
        snapshot = StatusSnapshot(
            run_id=self.run_id,
            at=now,
            elapsed=round(self._elapsed(), 4),
            tasks={tid: rec.status for tid, rec in self.records.items()},
            counts=dict(Counter(r.status for r in self.records.values())),
            workers=self.load.workers(self.registry, runs, now, self._elapsed()),
            skills=skills,
            eta=round(self._eta(running), 4),
            deadline=self.deadline,
            planned_makespan=planned,
            critical_path_slip=round(self.slip, 4),
            bottlenecks=self.bottlenecks[-10:],
        )
        self._say(
            "status",
            message=f"ETA {snapshot.eta:.2f}s, slip {snapshot.critical_path_slip:.2f}s",
            data=snapshot.model_dump(mode="json"),
        )
        if self.publish is not None:
            await self.publish(snapshot)
        return snapshot

    def _meet_deadline(self, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """When the ETA passes the deadline: with adaptation on, tasks that have a cheaper
        version switch to it, then optional tasks nobody required needs are dropped, lowest
        priority first, until the ETA fits or nothing is left to give; each change is
        reported."""
        if self.deadline is None:
            return
        spare = self.deadline - self._elapsed()
        estimate = self._eta(running, every=ETA_EVERY)
        if estimate <= spare:
            return
        if not self.deadline_warned:  # once: the cuts and the report tell the rest
            self.deadline_warned = True
            self._say(
                "deadline_risk",
                message=f"ETA {estimate:.2f}s, {spare:.2f}s left before the deadline",
                data={"eta": estimate, "left": spare},
            )
            self._bottleneck(
                Bottleneck(
                    kind="deadline",
                    detail=f"ETA {estimate:.2f}s with {spare:.2f}s left before the deadline",
                    measured=estimate - spare,
                    response="simplify, then drop optional tasks, lowest priority first"
                    if self.adapt
                    else "none: adaptation is off",
                )
            )
        if not self.adapt:
            return
        running_ids = {r.task_id for r in running.values()}
        why = f"ETA {estimate:.2f}s > {spare:.2f}s left"
        for tid in sorted(
            (
                t
                for t, task in self.tasks.items()
                if task.simplified is not None
                and not self.records[t].simplified
                and self.records[t].status == "pending"
                and t not in running_ids
            ),
            key=lambda t: (self.tasks[t].priority, -self.rank[t], t),
        ):
            rec = self.records[tid]
            rec.simplified = True
            note = self.tasks[tid].simplified.note  # type: ignore[union-attr]
            rec.feedback = f"simplified to meet the deadline: {why}" + (
                f" ({note})" if note else ""
            )
            self.tasks[tid] = simplified(self.tasks[tid])
            self.expected[tid] = min(self.expected[tid], self.tasks[tid].effort)
            self._say("simplified", task_id=tid, message=rec.feedback)
            if self._eta(running) <= spare:
                return
        for tid in sorted(
            self._droppable(running_ids), key=lambda t: (self.tasks[t].priority, self.rank[t], t)
        ):
            if self.records[tid].cut:
                continue  # already cut with a task it depends on
            priority = self.tasks[tid].priority
            cut = f"dropped to meet the deadline: {why} (optional, priority {priority})"
            for gone in [tid, *self._downstream(tid)]:  # all optional, by _droppable
                rec = self.records[gone]
                rec.status, rec.cut = "skipped", True
                rec.feedback = cut if gone == tid else f"depends on {tid}, which was {cut}"
                self._say(
                    "task_failed", task_id=gone, message=rec.feedback, data={"status": "skipped"}
                )
            if self._eta(running) <= spare:
                return

    def _downstream(self, tid: str) -> list[str]:
        return downstream(self.dependents, tid)

    def _droppable(self, running_ids: set[str]) -> list[str]:
        """Optional tasks not yet started whose dependents are all optional too."""
        return [
            tid
            for tid in self.analysis.order
            if self.tasks[tid].optional
            and self.records[tid].status == "pending"
            and tid not in running_ids
            and all(self.tasks[d].optional for d in self._downstream(tid))
        ]

    def _drop_hedges(self, tid: str, running: dict[asyncio.Future[Any], Attempt]) -> None:
        """The task is approved: attempts still running on it (hedges of a stalled attempt) are
        cancelled. They never reach the ledger; their workers are free again."""
        self.hedging.discard(tid)
        for job, other in list(running.items()):
            if other.task_id == tid and not job.done():
                job.cancel()
                del running[job]
                self.registry.release(other.worker)
                self.running_for[tid].discard(other.worker)
                ran = self.clock() - other.started
                self.load.add(other.worker, ran)
                if ran <= other.expected:
                    continue  # "at least this slow" says something only past the expectation
                stats = self.history.setdefault(other.worker, {})
                for skill in self.tasks[tid].skills:
                    stats.setdefault(skill, SkillStats()).add_timing(ran, self.tasks[tid].effort)
                self.touched.add(other.worker)
                self._stale.add(other.worker)
                self._fit.pop(other.worker, None)

"""What the dispatcher measures while it runs: the ETA (the planned-schedule scheduler over what
is left), per-worker and per-skill load, queue waits, stalls and critical-path slip, gathered
into a ``StatusSnapshot`` that goes to the event stream, the store (live) and the graph state."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator_graph.dispatch.board import Running, TaskBoard
from orchestrator_graph.dispatch.policies import STALL_FLOOR
from orchestrator_graph.events import Emit, Event
from orchestrator_graph.models import (
    Bottleneck,
    Schedule,
    SkillLoad,
    StatusSnapshot,
    Task,
    TaskRecord,
    WorkerLoad,
)
from orchestrator_graph.registry import History, Registry
from orchestrator_graph.schedule import list_schedule

QUEUE_SHARE = 0.5  # a skill is a bottleneck when its oldest wait passes this share of the plan


def eta(
    tasks: Mapping[str, Task],
    deps: Mapping[str, Sequence[str]],
    records: Mapping[str, TaskRecord],
    running: Sequence[Running],
    registry: Registry,
    history: History,
    now: float,
) -> float:
    """Seconds from ``now`` to the end: running attempts finish when their worker is expected to,
    then what is left is list-scheduled on the workers that can take work."""
    workers = [w for w in registry.workers() if registry.status(w.name) in ("available", "busy")]
    free_at: dict[str, list[float]] = {w.name: [now] * w.capacity for w in workers}
    ready_at: dict[str, float] = {}
    for run in running:
        left = max(0.0, run.expected - (now - run.since))
        ready_at[run.task_id] = max(ready_at.get(run.task_id, 0.0), now + left)
        frees = free_at.get(run.worker)
        if frees:
            frees[frees.index(min(frees))] = now + left
    busy = set(ready_at)
    left_tasks = [
        t
        for tid, t in tasks.items()
        if records[tid].status not in ("approved", "failed", "skipped") and tid not in busy
    ]
    slots = list_schedule(  # ``now`` is wall-clock time here: the epoch is 0
        left_tasks, deps, workers, history, now=now, ready_at=ready_at, free_at=free_at, epoch=0.0
    )
    end = max([*(s.finish for s in slots), *ready_at.values()], default=now)
    return max(0.0, end - now)


ETA_SHARE = 0.05  # at most this share of the wall time goes to recomputing the ETA


class EtaClock:
    """The ETA (a list schedule of what is left: O(tasks left)), recomputed no more often than
    keeps its own cost under ``ETA_SHARE`` of the elapsed time; in between it counts down. So
    snapshots cost O(1) on large plans and stay exact on small ones."""

    def __init__(self) -> None:
        self.at, self.value, self.cost = -1.0, 0.0, 0.0

    def get(self, now: float, compute: Callable[[], float], *, fresh: bool = False) -> float:
        if not fresh and self.at >= 0 and now - self.at < self.cost / ETA_SHARE:
            return max(0.0, self.value - (now - self.at))
        began = time.perf_counter()
        self.value = compute()
        self.cost, self.at = time.perf_counter() - began, now
        return self.value


@dataclass
class Load:
    """Busy seconds per worker, accumulated as attempts finish."""

    busy: dict[str, float] = field(default_factory=dict)

    def add(self, worker: str, seconds: float) -> None:
        self.busy[worker] = self.busy.get(worker, 0.0) + max(0.0, seconds)

    def workers(
        self, registry: Registry, running: Sequence[Running], now: float, elapsed: float
    ) -> dict[str, WorkerLoad]:
        live: dict[str, float] = {}
        for run in running:
            live[run.worker] = live.get(run.worker, 0.0) + now - run.dispatched
        out = {}
        for w in registry.workers():
            busy = self.busy.get(w.name, 0.0) + live.get(w.name, 0.0)
            out[w.name] = WorkerLoad(
                status=registry.status(w.name),
                load=registry.load(w.name),
                capacity=w.capacity,
                busy_seconds=round(busy, 4),
                utilisation=round(min(1.0, busy / (elapsed * w.capacity)), 4) if elapsed else 0.0,
            )
        return out


def skill_loads(
    tasks: Mapping[str, Task],
    queued: Mapping[str, float],
    running: Sequence[Running],
    registry: Registry,
    now: float,
) -> dict[str, SkillLoad]:
    """Per skill: tasks waiting for a worker (and the oldest wait), attempts running, the slots
    of the workers that have it, and the share of those slots in use. O(queued + running)."""
    out: dict[str, SkillLoad] = {}
    for tid, since in queued.items():
        for skill in tasks[tid].skills:
            load = out.setdefault(skill, SkillLoad())
            load.queued += 1
            load.oldest_wait = round(max(load.oldest_wait, now - since), 4)
    for run in running:
        for skill in tasks[run.task_id].skills:
            out.setdefault(skill, SkillLoad()).running += 1
    for skill, load in out.items():
        load.slots = sum(
            w.capacity
            for w in registry.workers()
            if skill in w.skills and registry.status(w.name) in ("available", "busy")
        )
        load.utilisation = round(min(1.0, load.running / load.slots), 4) if load.slots else 1.0
    return out


def queue_bottlenecks(
    skills: Mapping[str, SkillLoad], planned_makespan: float, seen: set[str]
) -> list[Bottleneck]:
    """Skills whose every slot is busy while work waits longer than a share of the plan: found
    once per skill and run."""
    bound = max(STALL_FLOOR, QUEUE_SHARE * planned_makespan)
    out = []
    for skill, load in sorted(skills.items()):
        if skill in seen or load.utilisation < 1.0 or load.oldest_wait <= bound:
            continue
        seen.add(skill)
        out.append(
            Bottleneck(
                kind="queue",
                skill=skill,
                detail=f"{load.queued} tasks wait for {skill} (oldest {load.oldest_wait:.2f}s), "
                f"all {load.slots} slots busy",
                measured=load.oldest_wait,
                response=f"critical-path tasks go first; more {skill} capacity would "
                "shorten the run",
            )
        )
    return out


class Monitor:
    """What the dispatch measures as it runs: busy time per worker, the ETA, the bottlenecks
    found (each also sent as a ``bottleneck`` event), the critical-path slip, and the status
    snapshot built from them and the board."""

    def __init__(
        self, emit: Emit, run_id: str, schedule: Schedule | None, deadline: float | None
    ) -> None:
        self.emit, self.run_id, self.schedule, self.deadline = emit, run_id, schedule, deadline
        self.load, self.clock = Load(), EtaClock()
        self.bottlenecks: list[Bottleneck] = []
        self.queues_seen: set[str] = set()
        self.slip = 0.0

    def bottleneck(self, found: Bottleneck) -> None:
        self.bottlenecks.append(found)
        self.emit(
            Event(
                kind="bottleneck",
                node="dispatcher",
                task_id=found.task_id,
                worker=found.worker,
                message=f"{found.kind}: {found.detail}; {found.response}",
                data=found.model_dump(mode="json"),
            )
        )

    def eta(self, board: TaskBoard, now: float, *, fresh: bool = False) -> float:
        return self.clock.get(  # the dependency map too is built only when recomputed
            now,
            lambda: eta(
                board.tasks,
                {tid: t.depends_on for tid, t in board.tasks.items()},
                board.records,
                list(board.running.values()),
                board.registry,
                board.history,
                now,
            ),
            fresh=fresh,
        )

    def snapshot(self, board: TaskBoard, now: float, elapsed: float) -> StatusSnapshot:
        """The live status, also sent as a ``status`` event; queue bottlenecks found here."""
        runs = list(board.running.values())
        skills = skill_loads(board.tasks, board.queued, runs, board.registry, now)
        planned = self.schedule.makespan if self.schedule else None
        for found in queue_bottlenecks(skills, planned or 0.0, self.queues_seen):
            self.bottleneck(found)
        snapshot = StatusSnapshot(
            run_id=self.run_id,
            at=now,
            elapsed=round(elapsed, 4),
            tasks={tid: rec.status for tid, rec in board.records.items()},
            counts={k: v for k, v in board.counts.items() if v},
            workers=self.load.workers(board.registry, runs, now, elapsed),
            skills=skills,
            eta=round(self.eta(board, now), 4),
            deadline=self.deadline,
            planned_makespan=planned,
            critical_path_slip=round(self.slip, 4),
            bottlenecks=self.bottlenecks[-10:],
        )
        self.emit(
            Event(
                kind="status",
                node="dispatcher",
                message=f"ETA {snapshot.eta:.2f}s, slip {snapshot.critical_path_slip:.2f}s",
                data=snapshot.model_dump(mode="json"),
            )
        )
        return snapshot

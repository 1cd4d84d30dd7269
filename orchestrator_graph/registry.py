"""The live team: who is registered, who can take work now, and how each did per skill.

A ``Registry`` may change at any time, also while a run is going: the dispatcher reads it at
every scheduling round and wakes when it changes. Workers come from Python, a roster file
(YAML or JSON), installed plugins (entry point group ``orchestrator_graph.workers``) or a
LangGraph server (``RemoteGraph``). Performance history lives in the LangGraph store, so it
survives runs and processes."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator_graph.dag import TaskKind, able_workers, task_kind
from orchestrator_graph.ledger import HISTORY
from orchestrator_graph.models import Task
from orchestrator_graph.workers import Worker

Status = Literal["available", "busy", "draining", "offline"]
ENTRY_POINT_GROUP = "orchestrator_graph.workers"
PRIOR_QUALITY, PRIOR_RELIABILITY, PRIOR_WEIGHT = 0.5, 0.8, 2.0


class SkillStats(BaseModel):
    attempts: int = 0
    successes: int = 0
    quality_sum: float = 0.0
    latency_sum: float = 0.0
    timed: int = Field(0, description="attempts with a known effort estimate")
    slowness_sum: float = Field(0.0, description="sum of seconds per unit of estimated effort")
    slowness_sq_sum: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0

    @property
    def reliability(self) -> float:
        """Success rate pulled towards ``PRIOR_RELIABILITY`` while there are few attempts."""
        return (self.successes + PRIOR_RELIABILITY * PRIOR_WEIGHT) / (self.attempts + PRIOR_WEIGHT)

    @property
    def quality(self) -> float:
        """Mean review score, pulled towards 0.5 while there are few attempts."""
        return (self.quality_sum + PRIOR_QUALITY * PRIOR_WEIGHT) / (self.attempts + PRIOR_WEIGHT)

    @property
    def merit(self) -> float:
        """What matching weighs as quality: the mean review score times the chance an attempt
        passes at all (a rejection costs a whole retry, whatever its score)."""
        return self.quality * self.reliability

    @property
    def latency(self) -> float | None:
        return self.latency_sum / self.attempts if self.attempts else None

    @property
    def slowness(self) -> float | None:
        """Mean seconds per unit of the plan's effort estimate: 1.0 = as estimated."""
        return self.slowness_sum / self.timed if self.timed else None

    @property
    def spread(self) -> float | None:
        """Coefficient of variation of the slowness: how far one attempt strays from the mean."""
        if self.timed < 2 or not self.slowness_sum:
            return None
        mean = self.slowness_sum / self.timed
        var = max(0.0, self.slowness_sq_sum / self.timed - mean * mean)
        return var**0.5 / mean

    def add(self, approved: bool, score: float, seconds: float, effort: float = 0.0) -> None:
        self.attempts += 1
        self.successes += approved
        self.quality_sum += score
        self.latency_sum += seconds
        self.add_timing(seconds, effort)

    def add_timing(self, seconds: float, effort: float) -> None:
        """A duration alone: also what an attempt cancelled unfinished ran for (a lower bound,
        but enough to tell a slow worker from a fast one)."""
        if effort > 0:
            self.timed += 1
            self.slowness_sum += seconds / effort
            self.slowness_sq_sum += (seconds / effort) ** 2


History = dict[str, dict[str, SkillStats]]  # worker -> skill -> stats


async def load_history(store: BaseStore, names: Iterable[str]) -> History:
    """Each worker's stats: as saved whole (before the history log), plus every dispatch's
    logged additions (``history_log``)."""
    from orchestrator_graph.history_log import add_logged

    out: History = {}
    for name in names:
        item = await store.aget(HISTORY, name)
        out[name] = {
            s: SkillStats.model_validate(v) for s, v in (item.value if item else {}).items()
        }
    await add_logged(store, out)
    return out


def slowness(worker: Worker, skills: Iterable[str], history: History) -> float:
    """Seconds per unit of estimated effort the worker takes on these skills: the slowest of its
    measured ones, else the inverse of its declared speed."""
    seen = [history.get(worker.name, {}).get(s) for s in skills]
    measured = [st.slowness for st in seen if st is not None and st.slowness is not None]
    return max(measured) if measured else 1.0 / worker.speed


def duration_on(task: Task, worker: Worker, history: History) -> float:
    return task.effort * slowness(worker, task.skills, history)


def expected_durations(
    tasks: Iterable[Task], workers: Iterable[Worker], history: History
) -> dict[str, float]:
    """Each task's expected duration with the fastest worker able to do it (``duration_on``:
    its measured pace on the task's skills, else its declared speed). Tasks no worker can do
    keep their effort."""
    tasks = list(tasks)
    able = able_workers(tasks, list(workers))
    pace: dict[TaskKind, float | None] = {}  # per kind of task: the fastest able worker's pace
    out = {}
    for task in tasks:
        key = task_kind(task)
        if key not in pace:
            paces = [slowness(w, task.skills, history) for w in able[task.id]]
            pace[key] = min(paces) if paces else None
        fastest = pace[key]
        out[task.id] = task.effort if fastest is None else task.effort * fastest
    return out


class Registry:
    """Mutable, in-process team. Call it from the event loop the graph runs on (or hand calls to
    it with ``loop.call_soon_threadsafe``)."""

    def __init__(
        self, workers: Iterable[Worker] = (), *, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self._workers: dict[str, Worker] = {}
        self._status: dict[str, Status] = {}
        self._seen: dict[str, float] = {}
        self._load: dict[str, int] = {}
        self._changed: asyncio.Event | None = None
        self._changed_loop: asyncio.AbstractEventLoop | None = None
        self.version = 0
        self._heartbeats = (-1, False)  # (version, whether any worker sends heartbeats)
        for worker in workers:
            self.register(worker)

    # --- changes ----------------------------------------------------------------------------
    def register(self, worker: Worker) -> None:
        if not isinstance(worker, Worker):
            raise TypeError(f"register a Worker, got {type(worker).__name__}: {worker!r}")
        if worker.name in self._workers:
            raise ValueError(
                f"a worker named {worker.name!r} is registered already; "
                "use update() to change it or remove() it first"
            )
        self._workers[worker.name] = worker
        self._status[worker.name] = "available"
        self._seen[worker.name] = self.clock()
        self._touch()

    def update(self, name: str, **changes: Any) -> Worker:
        """Change a worker's fields (skills, capacity, cost, ...); validated like a new one."""
        current = self._get(name)
        try:
            worker = Worker.model_validate({**current.model_dump(), "run": current.run, **changes})
        except ValidationError as err:
            raise ValueError(f"update of worker {name!r}: {field_errors(err)}") from None
        self._workers[name] = worker
        self._touch()
        return worker

    def heartbeat(self, name: str) -> None:
        self._get(name)
        self._seen[name] = self.clock()
        if self._status[name] == "offline":
            self._status[name] = "available"
            self._touch()

    def drain(self, name: str) -> None:
        """No new tasks; running ones finish."""
        self._set(name, "draining")

    def set_offline(self, name: str) -> None:
        """Gone now: its running tasks are reassigned."""
        self._set(name, "offline")

    def resume_work(self, name: str) -> None:
        self._set(name, "available")

    def remove(self, name: str) -> None:
        self._get(name)
        self._status[name] = "offline"  # kept until its running tasks are taken back
        self._workers.pop(name)
        self._touch()

    def occupy(self, name: str) -> None:
        """A task started on the worker (the dispatcher calls this; shared by concurrent runs)."""
        self._load[name] = self._load.get(name, 0) + 1

    def release(self, name: str) -> None:
        self._load[name] = max(0, self._load.get(name, 0) - 1)

    # --- reading ----------------------------------------------------------------------------
    def level(self, name: str, skills: Iterable[str], default: float = 0.5) -> float:
        """The worker's lowest level among ``skills`` (``default`` if it is gone)."""
        worker = self._workers.get(name)
        if worker is None:
            return default
        return min((worker.skills.get(s, 0.0) for s in skills), default=0.0)

    def load(self, name: str) -> int:
        return self._load.get(name, 0)

    def get(self, name: str) -> Worker | None:
        return self._workers.get(name)

    def status(self, name: str) -> Status:
        self._get(name)
        worker = self._workers[name]
        lapsed = (
            worker.heartbeat_timeout is not None
            and self.clock() - self._seen[name] > worker.heartbeat_timeout
        )
        if lapsed:
            return "offline"
        if self._status[name] == "available" and self.load(name) >= worker.capacity:
            return "busy"
        return self._status[name]

    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    def assignable(self) -> list[Worker]:
        """Workers that take new tasks (when they have a free slot): neither draining nor
        offline, and within their working hours."""
        now = self.clock()
        return [
            w
            for w in self._workers.values()
            if self.status(w.name) in ("available", "busy") and w.available(now)
        ]

    def gone(self, names: Iterable[str]) -> set[str]:
        """Of ``names``, those whose running tasks must be taken back."""
        return {n for n in names if n not in self._workers or self.status(n) == "offline"}

    def skills(self) -> dict[str, float]:
        """Every skill the team has, with its highest level."""
        best: dict[str, float] = {}
        for worker in self._workers.values():
            for skill, level in worker.skills.items():
                best[skill] = max(level, best.get(skill, 0.0))
        return best

    def watches_heartbeats(self) -> bool:
        """Whether any worker must send heartbeats (checked once per version of the team)."""
        if self._heartbeats[0] != self.version:
            watched = any(w.heartbeat_timeout is not None for w in self._workers.values())
            self._heartbeats = (self.version, watched)
        return self._heartbeats[1]

    async def wait_changed(self) -> None:
        await self._event().wait()
        self._event().clear()

    # --- internals --------------------------------------------------------------------------
    def _get(self, name: str) -> Worker:
        if name not in self._workers:
            known = ", ".join(sorted(self._workers)) or "none"
            raise KeyError(f"no worker named {name!r} (registered: {known})")
        return self._workers[name]

    def _set(self, name: str, status: Status) -> None:
        self._get(name)
        self._status[name] = status
        self._touch()

    def _event(self) -> asyncio.Event:
        """The change signal of the running event loop (an ``asyncio.Event`` belongs to one
        loop: a team used by runs on several loops, one after another, gets one per loop)."""
        loop = asyncio.get_running_loop()
        if self._changed is None or self._changed_loop is not loop:
            self._changed, self._changed_loop = asyncio.Event(), loop
        return self._changed

    def _touch(self) -> None:
        self.version += 1
        if self._changed is not None and self._changed_loop is not None:
            if self._changed_loop.is_closed():
                self._changed = None
            else:
                self._changed.set()


def field_errors(err: ValidationError) -> str:
    """A pydantic error on one line: ``field: message; field: message``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors())


# --- sources ------------------------------------------------------------------------------------


class RemoteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="LangGraph server URL, e.g. http://127.0.0.1:2024")
    graph: str = Field(description="graph id (assistant) on that server")


class RosterEntry(BaseModel):
    """One worker in a roster file: ``run`` (``module:attribute``) or ``remote``, not both."""

    model_config = ConfigDict(extra="forbid")

    name: str
    skills: dict[str, float] | list[str]
    description: str = ""
    capacity: int = 1
    cost: float = 0.0
    speed: float = 1.0
    region: str = ""
    needs: list[str] = Field(default_factory=list)
    provides: list[str] = Field(default_factory=list)
    needs_inputs: list[str] = Field(default_factory=list)
    heartbeat_timeout: float | None = None
    run: str | None = None
    remote: RemoteSpec | None = None


def remote_worker(name: str, url: str, graph: str, **fields: Any) -> Worker:
    """A worker that is a graph on a LangGraph server (``langgraph.pregel.remote.RemoteGraph``)."""
    from langgraph.pregel.remote import RemoteGraph

    return Worker(name=name, run=RemoteGraph(graph, url=url), **fields)


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"run must be 'module:attribute', got {path!r}")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import {path!r}: {err}") from None


def load_roster(path: str | Path) -> list[Worker]:
    """Workers from a YAML or JSON roster file: ``{"workers": [entry, ...]}``. Errors name the
    file, the entry and the field."""
    from orchestrator_graph.limits import parse_structured, read_bounded

    path = Path(path)
    data = parse_structured(read_bounded(path, "roster"), path, "roster")
    if not isinstance(data, Mapping) or not isinstance(data.get("workers"), list):
        raise ValueError(f"roster {path}: expected a mapping with a 'workers' list")
    workers = []
    for i, raw in enumerate(data["workers"]):
        label = f"roster {path}, worker #{i + 1}" + (
            f" ({raw.get('name')!r})" if isinstance(raw, Mapping) and raw.get("name") else ""
        )
        try:
            entry = RosterEntry.model_validate(raw)
            if (entry.run is None) == (entry.remote is None):
                raise ValueError("give exactly one of 'run' (module:attribute) or 'remote'")
            fields = entry.model_dump(exclude={"run", "remote"})
            if entry.remote is not None:
                workers.append(
                    remote_worker(url=entry.remote.url, graph=entry.remote.graph, **fields)
                )
            else:
                workers.append(Worker(run=_import(entry.run or ""), **fields))
        except ValidationError as err:
            raise ValueError(f"{label}: {field_errors(err)}") from None
        except ValueError as err:
            raise ValueError(f"{label}: {err}") from None
    return workers


def discover_plugins(group: str = ENTRY_POINT_GROUP) -> list[Worker]:
    """Workers installed packages offer under the entry point group: each entry point is a
    Worker, a list of Workers, or a function returning either."""
    found: list[Worker] = []
    for ep in entry_points(group=group):
        value = ep.load()
        if callable(value) and not isinstance(value, Worker):
            value = value()
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not isinstance(item, Worker):
                raise TypeError(
                    f"entry point {ep.name!r} ({ep.value}) gave {type(item).__name__}, not a Worker"
                )
            found.append(item)
    return found

"""Workers: who can do what, and one way to call any of them (function, Runnable, graph)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langgraph.pregel import Pregel
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from orchestrator_graph.events import Emit
from orchestrator_graph.models import Task


class WorkerInput(BaseModel):
    """What a worker receives: its task, the approved outputs of the tasks it depends on (never
    anything unapproved, never other tasks'), and the reviewer's feedback on a retry."""

    run_id: str
    task: Task
    attempt: int
    upstream: dict[str, Any] = Field(default_factory=dict)
    feedback: str = ""


@dataclass(frozen=True)
class WorkerContext:
    """Run-time help a function worker may ask for by taking a second parameter."""

    model: BaseChatModel
    output_dir: str
    emit: Emit


class Worker(BaseModel):
    """A member of the team. ``run`` is a function ``(WorkerInput[, WorkerContext]) -> output``
    (sync or async), a Runnable, or a compiled graph; each gets the ``WorkerInput`` (a Runnable or
    graph as a dict) and returns the output (a graph: its ``output`` key, else its whole state)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    skills: dict[str, float] = Field(description="skill -> level in [0, 1]")
    description: str = ""
    capacity: int = Field(1, ge=1, description="tasks it can run at once")
    cost: float = Field(0.0, ge=0)
    run: Any = Field(exclude=True)
    _convention: tuple[bool, bool] = PrivateAttr(default=(False, False))

    @field_validator("skills", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> dict[str, float]:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple, set)):
            value = dict.fromkeys(value, 1.0)
        if not value:
            raise ValueError("a worker needs at least one skill")
        for skill, level in value.items():
            if not 0.0 <= float(level) <= 1.0:
                raise ValueError(f"skill {skill!r}: level {level} is outside [0, 1]")
        return value

    @field_validator("run")
    @classmethod
    def _callable(cls, value: Any) -> Any:
        if not (isinstance(value, Runnable) or callable(value)):
            raise ValueError(
                f"run must be a function, a Runnable or a compiled graph, got {value!r}"
            )
        return value

    def model_post_init(self, _context: Any) -> None:
        if not isinstance(self.run, Runnable):
            self._convention = _calling_convention(self.run)

    def can_do(self, task: Task) -> bool:
        return all(s in self.skills for s in task.skills)

    async def call(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        run = self.run
        if isinstance(run, Runnable):
            out = await run.ainvoke(payload.model_dump(mode="json"))
            if isinstance(run, Pregel) and isinstance(out, Mapping) and "output" in out:
                return out["output"]
            return out
        wants_context, is_async = self._convention
        args = (payload, ctx) if wants_context else (payload,)
        if is_async:
            return await run(*args)
        return await asyncio.to_thread(run, *args)


def _calling_convention(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """(takes a WorkerContext as second argument, is async): read once per function."""
    params = inspect.signature(fn).parameters.values()
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    return positional >= 2, is_async


def build_roster(workers: Iterable[Worker]) -> dict[str, Worker]:
    """Validate a team at build time: unique names, at least one worker."""
    roster: dict[str, Worker] = {}
    for worker in workers:
        if not isinstance(worker, Worker):
            raise TypeError(
                f"workers must be Worker objects, got {type(worker).__name__}: {worker!r}"
            )
        if worker.name in roster:
            raise ValueError(f"two workers are named {worker.name!r}; worker names must be unique")
        roster[worker.name] = worker
    if not roster:
        raise ValueError("the team is empty: pass at least one Worker in workers=[...]")
    return roster


def skills_of(roster: Mapping[str, Worker]) -> set[str]:
    return {s for w in roster.values() for s in w.skills}

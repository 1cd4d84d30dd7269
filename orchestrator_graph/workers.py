"""Workers: who can do what, and one way to call any of them (function, Runnable, graph)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langgraph.pregel.protocol import PregelProtocol
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator_graph import adapters
from orchestrator_graph.availability import WorkingHours
from orchestrator_graph.events import Emit
from orchestrator_graph.limits import MAX_CAPACITY
from orchestrator_graph.models import Task
from orchestrator_graph.residency import may_run_in


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
    run: RunHandle | None = None
    """The parent run's thread, store, checkpointer and settings (a team lead starts its child
    orchestrator on them); None when the worker is called outside a run."""


@dataclass(frozen=True)
class RunHandle:
    thread_id: str
    store: Any
    checkpointer: Any
    context: Any


class Worker(BaseModel):
    """A member of the team. ``run`` is a function ``(WorkerInput[, WorkerContext]) -> output``
    (sync or async), a Runnable, a compiled graph or a ``RemoteGraph``; each gets the
    ``WorkerInput`` (a Runnable or graph as a dict) and returns the output (a graph: its
    ``output`` key, else its whole state). Two kinds get their task in their own terms
    (``adapters``): an agent whose state is ``messages`` gets it as a conversation and answers
    with its structured response or last AI message; a LangChain or MCP tool gets the task's
    inputs as its arguments, checked against its schema first."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, frozen=True, allow_inf_nan=False, extra="forbid"
    )

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    skills: dict[str, float] = Field(description="skill -> level in [0, 1]")
    description: str = ""
    capacity: int = Field(
        1, ge=1, le=MAX_CAPACITY, description=f"tasks it can run at once (at most {MAX_CAPACITY:,})"
    )
    cost: float = Field(0.0, ge=0, description="cost per task")
    speed: float = Field(1.0, gt=0, description="expected speed: 2.0 = twice the estimate's pace")
    region: str = Field("", description="where it runs (matched by tasks' residency and affinity)")
    hours: WorkingHours | None = Field(
        None, description="when it takes work, in its time zone (default: always)"
    )
    needs: list[str] = Field(
        default_factory=list,
        description="what its tasks need from the tasks they depend on (e.g. 'table'): a plan "
        "where one of its tasks has no such upstream task is refused before it runs",
    )
    provides: list[str] = Field(
        default_factory=list, description="what its results give dependent tasks (e.g. 'table')"
    )
    needs_inputs: list[str] = Field(
        default_factory=list,
        description="task inputs it cannot work without (e.g. 'path'), checked with the plan",
    )
    input_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema its tasks' inputs must meet, shown to the planner and checked "
        "with the plan (default: a tool's argument schema)",
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema of what it answers (e.g. an agent's response_format)"
    )
    heartbeat_timeout: float | None = Field(
        None, gt=0, description="seconds without a heartbeat before it counts as offline"
    )
    run: Any = Field(exclude=True)

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
        self.__dict__["kind"] = adapters.kind_of(self.run)
        if not isinstance(self.run, Runnable):  # read once: a private attribute is slow to read
            self.__dict__["convention"] = _calling_convention(self.run)

    def contract(self) -> dict[str, Any] | None:
        """The JSON Schema its tasks' inputs must meet: declared, else a tool's arguments."""
        if self.input_schema is not None:
            return self.input_schema
        if self.__dict__["kind"] == "tool":
            return adapters.tool_schema(self.run)
        return None

    def about(self) -> str:
        """What it does, for the planner: declared, else the tool's or the graph's own words."""
        if self.description:
            return self.description
        return str(getattr(self.run, "description", "") or getattr(self.run, "name", "") or "")

    def can_do(self, task: Task) -> bool:
        """Its skills at the levels the task needs, in a region the task may run in."""
        return self.has_skills_for(task) and may_run_in(task, self.region)

    def has_skills_for(self, task: Task) -> bool:
        return all(
            s in self.skills and self.skills[s] >= task.min_levels.get(s, 0.0) for s in task.skills
        )

    def available(self, when: float) -> bool:
        """Within its working hours at ``when`` (epoch seconds); always, without hours."""
        return self.hours is None or self.hours.open_at(when)

    async def call(self, payload: WorkerInput, ctx: WorkerContext) -> Any:
        run, kind = self.run, self.__dict__["kind"]
        if kind == "tool":
            return await adapters.call_tool(run, payload)
        if kind == "agent":
            return await adapters.call_agent(run, payload)
        if isinstance(run, Runnable):
            out = await run.ainvoke(payload.model_dump(mode="json"))
            if isinstance(run, PregelProtocol) and isinstance(out, Mapping):
                return out.get("output", out)
            return out
        wants_context, is_async = self.__dict__["convention"]
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

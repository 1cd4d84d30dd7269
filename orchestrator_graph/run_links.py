"""How a run's report names the runs around it in a hierarchy (``hierarchy`` fills them in)."""

from __future__ import annotations

from pydantic import BaseModel


class ChildRun(BaseModel):
    """A child orchestrator one of the run's team leads ran for one attempt of one task (a
    report lists them by task, then attempt)."""

    task_id: str
    attempt: int
    lead: str
    thread_id: str
    run_id: str = ""
    status: str = "running"
    cost: float = 0.0


class ParentRun(BaseModel):
    """The run (and its task attempt) this run was delegated by."""

    thread_id: str
    run_id: str
    task_id: str
    attempt: int
    lead: str

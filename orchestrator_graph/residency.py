"""Where a task may run (``Task.residency``: a hard constraint, e.g. data that must stay in the
EU) and where it prefers to run (``Task.affinity``: a scored preference, e.g. near its data).
Regions are free-form names matched exactly against ``Worker.region``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from orchestrator_graph.errors import PlanValidationError

if TYPE_CHECKING:
    from orchestrator_graph.models import Plan, Task
    from orchestrator_graph.workers import Worker


def may_run_in(task: Task, region: str) -> bool:
    """Whether ``task`` may run on a worker in ``region`` (any region without residency)."""
    return not task.residency or region in task.residency


def prefers(task: Task, region: str) -> bool:
    return region in task.affinity


def residency_problems(tasks: Iterable[Task], workers: Sequence[Worker]) -> list[str]:
    """Each task with residency that no worker in its regions can do, with the regions named
    and where the workers able to do it are instead."""
    problems = []
    for task in tasks:
        if not task.residency or any(w.can_do(task) for w in workers):
            continue  # can_do includes residency
        regions = ", ".join(repr(r) for r in task.residency)
        skilled = sorted({w.region or "no region" for w in workers if w.has_skills_for(task)})
        where = f"; workers able to do it are in: {', '.join(skilled)}" if skilled else ""
        problems.append(
            f"task {task.id!r} must run in region {regions} (residency), and no worker there "
            f"can do it{where}"
        )
    return problems


def check_residency(plan: Plan, workers: Sequence[Worker]) -> None:
    """Refuse a plan with a task no worker in its residency regions can do."""
    problems = residency_problems(plan.tasks, workers)
    if problems:
        raise PlanValidationError(problems)

"""Data classification: which models and regions may handle a task.

A task's classification is its own, else its plan's, else the policy's default. The policy
(``classification.levels``) gives, per level, fnmatch patterns of the models (by the label the
run uses, e.g. ``openai:gpt-4o`` or ``offline``) and of the worker regions allowed. Checked when
a plan is validated (every task must have a worker and models it may use) and when a task is
assigned (the chosen worker's region)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator_graph.errors import DataPolicyError
from orchestrator_graph.models import Plan, Task
from orchestrator_graph.protection.policy import DataPolicy, load_policy

# Roles that see a task's data: its worker, the reviewer of its result, the synthesizer.
DATA_ROLES = ("worker", "reviewer", "synthesizer")


def level_of(task: Task, plan: Plan | None = None, policy: DataPolicy | None = None) -> str:
    policy = policy or load_policy()
    return (
        task.classification
        or (plan.classification if plan else None)
        or policy.classification.default
    )


def classify(plan: Plan, policy: DataPolicy | None = None) -> Plan:
    """The plan with each task's effective classification written on it, so the dispatcher
    (which sees tasks, not plans) checks the same level."""
    policy = policy or load_policy()
    tasks = [t.model_copy(update={"classification": level_of(t, plan, policy)}) for t in plan.tasks]
    return plan.model_copy(update={"tasks": tasks})


def region_of(worker: Any) -> str:
    return getattr(worker, "region", "") or "unspecified"


def plan_problems(
    plan: Plan, workers: Iterable[Any], models: Mapping[str, str], policy: DataPolicy | None = None
) -> list[str]:
    """Every task whose classification no model of the run or no capable worker may handle."""
    policy = policy or load_policy()
    team = list(workers)
    regions_of: dict[frozenset[str], set[str]] = {}  # skills -> regions of the workers with them
    problems = []
    for task in plan.tasks:
        level = level_of(task, plan, policy)
        rules = policy.classification.handlers(level)
        for role in DATA_ROLES:
            if role in models and not rules.allows_model(models[role]):
                problems.append(
                    f"task {task.id!r} is {level}: the {role} model {models[role]!r} may not "
                    f"handle it (allowed models: {', '.join(rules.models)})"
                )
        skills = frozenset(task.skills)
        if skills not in regions_of:  # once per set of skills, not once per task
            regions_of[skills] = {region_of(w) for w in team if skills <= set(w.skills)}
        capable = regions_of[skills]
        if capable and not any(rules.allows_region(region) for region in capable):
            regions = sorted(capable)
            problems.append(
                f"task {task.id!r} is {level}: no capable worker is in an allowed region "
                f"(workers' regions: {', '.join(regions)}; allowed: {', '.join(rules.regions)})"
            )
    return problems


def check_plan(
    plan: Plan, workers: Iterable[Any], models: Mapping[str, str], policy: DataPolicy | None = None
) -> None:
    if problems := plan_problems(plan, workers, models, policy):
        raise DataPolicyError("data classification: " + "; ".join(problems))


def barred(task: Task, workers: Iterable[Any], policy: DataPolicy | None = None) -> set[str]:
    """The workers the task's classification keeps away from it (by region)."""
    rules = (policy or load_policy()).classification.handlers(level_of(task, None, policy))
    if "*" in rules.regions:
        return set()
    return {w.name for w in workers if not rules.allows_region(region_of(w))}


def check_assignment(task: Task, worker: Any, policy: DataPolicy | None = None) -> None:
    if worker is None:
        return
    level = level_of(task, None, policy)
    rules = (policy or load_policy()).classification.handlers(level)
    if not rules.allows_region(region_of(worker)):
        raise DataPolicyError(
            f"task {task.id!r} is {level}: worker {worker.name!r} in region "
            f"{region_of(worker)!r} may not handle it (allowed regions: {', '.join(rules.regions)})"
        )

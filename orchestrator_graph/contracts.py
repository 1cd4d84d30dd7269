"""What each worker publishes to the planner (what it does, what inputs it takes) and the check
that every task's inputs meet the contract of every worker able to take it, before any runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orchestrator_graph.adapters import schema_errors
from orchestrator_graph.dag import able_workers
from orchestrator_graph.errors import PlanValidationError
from orchestrator_graph.models import Plan
from orchestrator_graph.workers import Worker

SHEET_SCHEMA_CHARS = 1500


def team_sheet(workers: Sequence[Worker]) -> str:
    """One line per worker for the planner: name, skills, what it does, its input contract."""
    lines = []
    for w in sorted(workers, key=lambda w: w.name):
        line = f"- {w.name} (skills: {', '.join(sorted(w.skills))})"
        about = " ".join(w.about().split())
        if about:
            line += f": {about}"
        contract = w.contract()
        if contract is not None:
            line += f"\n  inputs must match: {_compact(contract)}"
        if w.needs_inputs:
            line += f"\n  needs inputs: {', '.join(w.needs_inputs)}"
        if w.output_schema is not None:
            line += f"\n  answers with: {_compact(w.output_schema)}"
        lines.append(line)
    return "\n".join(lines) or "none"


def _compact(schema: dict[str, Any]) -> str:
    keep = {k: schema[k] for k in ("properties", "required", "type") if k in schema}
    return json.dumps(keep, separators=(",", ":"), default=str)[:SHEET_SCHEMA_CHARS]


def check_contracts(plan: Plan, workers: Sequence[Worker]) -> None:
    """Raise ``PlanValidationError`` naming every task whose inputs break the contract of a
    worker able to take it, and how."""
    bound = [(w, c) for w in workers if (c := w.contract()) is not None]
    able = able_workers(plan.tasks, [w for w, _ in bound])  # once per kind of task
    contracts = {w.name: c for w, c in bound}
    problems = []
    for task in plan.tasks:
        for worker in able[task.id]:
            contract = contracts[worker.name]
            broken = schema_errors(contract, _arguments(worker, contract, task.inputs))
            if broken:
                problems.append(
                    f"task {task.id!r} inputs break worker {worker.name!r}'s contract: "
                    + "; ".join(_at_inputs(b) for b in broken)
                )
    if problems:
        raise PlanValidationError(problems)


def _at_inputs(problem: str) -> str:
    """``schema_errors``' paths as paths into the task: ``inputs.amount``, ``inputs``."""
    if problem.startswith("(inputs)"):
        return "inputs" + problem.removeprefix("(inputs)")
    return f"inputs.{problem}"


def _arguments(worker: Worker, contract: dict[str, Any], inputs: dict[str, Any]) -> Any:
    """A tool takes only the inputs its schema names (``adapters.tool_arguments``)."""
    if worker.input_schema is None:
        names = contract.get("properties", {})
        return {k: v for k, v in inputs.items() if k in names}
    return inputs

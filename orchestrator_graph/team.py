"""The default team: one worker per specialisation of the mission document. Tools do the work;
each worker's model (its prompt in ``prompts/worker_<skill>.system.md``) writes the note."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from orchestrator_graph import tools
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.prompts import render
from orchestrator_graph.schemas import WorkerNote
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput


async def _note(skill: str, payload: WorkerInput, ctx: WorkerContext, facts: dict[str, Any]) -> str:
    messages = [
        SystemMessage(render(f"worker_{skill}.system")),
        HumanMessage(
            render(
                "worker.user",
                task=payload.task.title,
                feedback=payload.feedback or "none",
                facts=json.dumps(facts, default=str)[:4000],
            )
        ),
    ]
    return (await ask_structured(ctx.model, WorkerNote, messages)).summary


def _upstream_table(payload: WorkerInput) -> tools.Table:
    tables = [v for v in payload.upstream.values() if isinstance(v, dict) and "rows" in v]
    if not tables:
        raise ValueError(
            f"task {payload.task.id!r} needs a table from an upstream task; "
            f"got outputs from: {', '.join(payload.upstream) or 'no tasks'}"
        )
    return tools.combine(tables)


async def collect(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    path = payload.task.inputs.get("path")
    if not path:
        raise ValueError(f"task {payload.task.id!r}: data collection needs inputs.path")
    table = await asyncio.to_thread(tools.load_table, str(path))
    facts = {"source": table["source"], "rows": len(table["rows"]), "columns": table["columns"]}
    return {**table, "summary": await _note("data_collection", payload, ctx, facts)}


async def process(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    table = tools.clean_table(_upstream_table(payload))
    facts = {"rows": len(table["rows"]), "dropped": table["dropped"], "columns": table["columns"]}
    return {
        **table,
        "facts": {"rows_after_cleaning": len(table["rows"])},
        "summary": await _note("processing", payload, ctx, facts),
    }


async def analyse(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    result = tools.describe(_upstream_table(payload), payload.task.inputs.get("group_by"))
    facts = {"rows_after_cleaning": result["rows"]}
    if "revenue" in result["statistics"]:
        facts["total_revenue"] = result["statistics"]["revenue"]["sum"]
    return {**result, "facts": facts, "summary": await _note("analysis", payload, ctx, result)}


async def validate(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    result = tools.validate_rows(_upstream_table(payload))
    facts = {
        "checked_rows": result["checked_rows"],
        "issues": len(result["issues"]),
        "first_issues": result["issues"][:5],
    }
    return {
        **result,
        "facts": {"rows_after_cleaning": result["checked_rows"]},
        "summary": await _note("validation", payload, ctx, facts),
    }


async def report(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for task_id, output in payload.upstream.items():
        if not isinstance(output, dict):
            sections[task_id] = output
            continue
        sections[f"{task_id}: summary"] = output.get("summary", "")
        for key in ("statistics", "groups", "issues"):
            if key in output:
                sections[f"{task_id}: {key}"] = output[key]
    markdown = tools.render_report(payload.task.title, sections)
    path = await asyncio.to_thread(
        tools.write_text, Path(ctx.output_dir) / f"{payload.run_id}-{payload.task.id}.md", markdown
    )
    facts = {"path": str(path), "sections": list(sections)}
    return {
        "markdown": markdown,
        "path": str(path),
        "summary": await _note("reporting", payload, ctx, facts),
    }


def default_team() -> list[Worker]:
    """Five specialists, one per skill; capacity 2 each so independent tasks run side by side."""
    spec = [
        ("collector", "data_collection", collect, "Reads CSV and JSON tables from local files."),
        (
            "processor",
            "processing",
            process,
            "Cleans tables: numbers, blanks, duplicates, revenue.",
        ),
        ("analyst", "analysis", analyse, "Descriptive statistics, optionally grouped by a column."),
        ("validator", "validation", validate, "Finds missing values, negatives, duplicate ids."),
        ("reporter", "reporting", report, "Writes a Markdown report from upstream results."),
    ]
    return [
        Worker(name=n, skills={s: 0.9}, run=fn, description=d, capacity=2) for n, s, fn, d in spec
    ]

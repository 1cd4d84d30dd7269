"""The default team: one worker per specialisation of the mission document. Tools do the work;
each worker's model (its prompt in ``prompts/worker_<skill>.system.md``) writes the note."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from orchestrator_graph import tools
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.prompts import render
from orchestrator_graph.reports import report_markdown
from orchestrator_graph.sandbox import output_file
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
    combined = tools.combine(tables)
    dropped = sum(t.get("dropped", 0) for t in tables if isinstance(t.get("dropped"), int))
    return {**combined, "dropped": dropped} if dropped else combined


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
    inputs = payload.task.inputs
    result = tools.describe(
        _upstream_table(payload), inputs.get("group_by"), inputs.get("measures") or None
    )
    facts = {"rows_analysed": result["rows"]}
    checked = [o["checked_rows"] for o in payload.upstream.values() if _has_int(o, "checked_rows")]
    if len(checked) == 1:  # the validated table says how many cleaned rows it came from
        facts["rows_after_cleaning"] = checked[0]
    if "revenue" in result["statistics"]:
        facts["total_revenue"] = result["statistics"]["revenue"]["sum"]
    noted = {
        "rows": result["rows"],
        "measures": result["measures"],
        "totals": {m: s["sum"] for m, s in result["statistics"].items()},
        "group_by": result.get("group_by"),
        "groups": list(result.get("groups", {})),
    }
    return {**result, "facts": facts, "summary": await _note("analysis", payload, ctx, noted)}


def _has_int(output: Any, key: str) -> bool:
    return isinstance(output, dict) and isinstance(output.get(key), int)


async def validate(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    result = tools.validate_rows(_upstream_table(payload))
    facts = {
        "checked_rows": result["checked_rows"],
        "held_back": result["held_back"],
        "issues": len(result["issues"]),
        "first_issues": result["issues"][:5],
    }
    return {
        **result,
        "facts": {"rows_after_cleaning": result["checked_rows"]},
        "summary": await _note("validation", payload, ctx, facts),
    }


async def report(payload: WorkerInput, ctx: WorkerContext) -> dict[str, Any]:
    """A titled Markdown report of the upstream analysis and validation, written to a file."""
    title = str(payload.task.inputs.get("title") or payload.task.title)
    markdown = report_markdown(title, payload.upstream)
    path = await asyncio.to_thread(
        lambda: tools.write_text(
            output_file(ctx.output_dir, payload.run_id, payload.task.id, suffix=".md"), markdown
        )
    )
    facts = {"path": str(path), "title": title, "drawn_from": list(payload.upstream)}
    return {
        "markdown": markdown,
        "path": str(path),
        "summary": await _note("reporting", payload, ctx, facts),
    }


def default_team() -> list[Worker]:
    """Five specialists, one per skill; capacity 2 each so independent tasks run side by side.
    Each says what it needs and gives (a table), so a plan that cannot feed them is refused."""
    table = ["table"]
    spec: list[tuple[str, str, Any, str, dict[str, list[str]]]] = [
        (
            "collector",
            "data_collection",
            collect,
            "Reads CSV and JSON tables from local files.",
            {"provides": table, "needs_inputs": ["path"]},
        ),
        (
            "processor",
            "processing",
            process,
            "Cleans tables: numbers, blanks, duplicates, revenue.",
            {"needs": table, "provides": table},
        ),
        (
            "analyst",
            "analysis",
            analyse,
            "Descriptive statistics of the measures, optionally grouped by a column.",
            {"needs": table},
        ),
        (
            "validator",
            "validation",
            validate,
            "Finds missing values, negatives, duplicate ids; passes on the rows without.",
            {"needs": table, "provides": table},
        ),
        ("reporter", "reporting", report, "Writes a Markdown report from upstream results.", {}),
    ]
    return [
        Worker(name=n, skills={s: 0.9}, run=fn, description=d, capacity=2, **flow)
        for n, s, fn, d, flow in spec
    ]

"""``run``, ``resume`` and ``status``: a job from a request, a plan file or the bundled example,
and its thread afterwards."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator_graph.cli.common import (
    AsJson,
    Budget,
    CliError,
    Home,
    Limit,
    Models,
    Plugins,
    Postgres,
    Roster,
    StructuredOutput,
    app,
    guard,
)
from orchestrator_graph.cli.display import show_status
from orchestrator_graph.cli.driving import drive, finish
from orchestrator_graph.cli.settings import (
    call_settings,
    check_declared,
    checked_context,
    run_input,
    run_settings,
    team_of,
    team_settings,
)
from orchestrator_graph.threads import (
    alive,
    inspect_thread,
    task_rows,
    thread_status,
)


@app.command()
def run(
    request: Annotated[str | None, typer.Argument(help="what to do; omit with --example")] = None,
    example: Annotated[bool, typer.Option(help="the bundled sales-data job")] = False,
    plan: Annotated[
        Path | None, typer.Option(help="a declared plan (YAML or JSON): no planning")
    ] = None,
    thread: Annotated[str | None, typer.Option(help="thread id (default: a new one)")] = None,
    model: Models = None,
    structured_output: StructuredOutput = None,
    limit: Limit = None,
    escalation: Annotated[str | None, typer.Option(help="policy | human")] = None,
    qa_policy: Annotated[str | None, typer.Option(help="strict | standard | lenient")] = None,
    output_dir: Annotated[str | None, typer.Option(help="where workers write files")] = None,
    objective: Annotated[str | None, typer.Option(help="balanced | quality | cost")] = None,
    budget: Budget = None,
    roster: Roster = None,
    plugins: Plugins = False,
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
) -> None:
    """Plan and run a request to the end, showing progress live."""

    async def go() -> int:
        payload = run_input(request, example, plan)
        team = team_of(team_settings(roster, plugins))  # refused before any state exists
        check_declared(payload, team)
        settings = run_settings(
            model,
            budget,
            escalation=escalation,
            qa_policy=qa_policy,
            output_dir=output_dir,
            objective=objective,
        ) | team_settings(roster, plugins)
        settings |= call_settings(structured_output, limit)
        checked_context(settings)
        return await drive(
            payload, thread or uuid.uuid4().hex[:12], settings, home, postgres, as_json
        )

    guard(go(), as_json)


@app.command()
def resume(
    thread: str,
    answer: Annotated[
        str | None,
        typer.Option(help="reply to a pending escalation: accept | retry | skip, or a JSON object"),
    ] = None,
    model: Models = None,
    structured_output: StructuredOutput = None,
    limit: Limit = None,
    budget: Budget = None,
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
) -> None:
    """Continue a thread that stopped: crashed, paused by a budget, or waiting for a human."""

    async def go() -> int:
        from langgraph.types import Command

        found = await inspect_thread(thread, home, postgres)
        snapshot = found.snapshot
        if alive(found.owner) and snapshot.values.get("report") is None:
            raise CliError(
                f"thread {thread} is running in process {found.owner['pid']}: "  # type: ignore[index]
                "let it finish, or stop that process first"
            )
        if not snapshot.next and snapshot.values.get("report") is not None:
            return finish(thread, snapshot, as_json)
        # No report yet: the run goes on from its last checkpoint, also when no node is
        # pending (a crash after a node's writes were saved but before the next checkpoint).
        questions = [i.value for t in snapshot.tasks for i in t.interrupts]
        waiting = bool(questions)
        given = answer
        if waiting and given is None and all(q.get("type") == "budget" for q in questions):
            given = "continue"  # a budget pause needs more budget, not an answer
        if waiting and given is None:
            raise CliError(f"thread {thread} waits for a human: pass --answer accept|retry|skip", 3)
        reply = json.loads(given) if given and given.lstrip().startswith("{") else given
        payload: Command[Any] | None = Command(resume=reply) if waiting else None
        settings = run_settings(model, budget) | call_settings(structured_output, limit)
        return await drive(payload, thread, settings, home, postgres, as_json)

    guard(go(), as_json)


@app.command()
def status(
    thread: str,
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
    gantt: Annotated[
        Path | None,
        typer.Option(help="write the planned vs actual Gantt chart here (HTML, opens offline)"),
    ] = None,
) -> None:
    """Where a thread stands: per-task state, ETA, slip, worker load, bottlenecks, next step,
    pending questions. Readable while the run goes (from another shell)."""

    async def go() -> int:
        found = await inspect_thread(thread, home, postgres)
        snapshot, live, values = found.snapshot, found.live, found.snapshot.values
        tasks = task_rows(found)
        summary = {
            "thread": thread,
            "next": list(snapshot.next),
            "run_id": values.get("run_id"),
            "request": values.get("request"),
            "tasks": tasks,
            "waiting": [i.value for t in snapshot.tasks for i in t.interrupts],
            "status": thread_status(found),
            "snapshot": live.model_dump(mode="json") if live else None,
            "bottlenecks": values.get("bottlenecks", []),
            "children": found.children,
        }
        if gantt is not None:
            from orchestrator_graph.charts import gantt_figure, to_html

            planned = found.schedule.planned if found.schedule else []
            critical = (values.get("analysis") or {}).get("critical_path") or []
            title = f"thread {thread}: planned vs actual"
            figure = gantt_figure(planned, found.actual, critical=critical, title=title)
            gantt.write_text(to_html(figure), encoding="utf-8")
            summary["gantt"] = str(gantt)
        if as_json:
            print(json.dumps(summary, indent=2, default=str))
            return 0
        show_status(summary, live)
        return 0

    guard(go())

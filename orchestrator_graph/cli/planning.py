"""``plan``, ``audit``, ``workers`` and ``insights``: a plan without running it, the audit trail,
the team, the optimizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator_graph.cli.common import (
    AsJson,
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
from orchestrator_graph.cli.driving import memory_location
from orchestrator_graph.cli.settings import (
    call_settings,
    checked_context,
    run_input,
    run_settings,
    team_of,
    team_settings,
)
from orchestrator_graph.threads import (
    check_ledger,
    inspect_thread,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig


@app.command("plan")
def plan_command(
    request: Annotated[str | None, typer.Argument(help="what to plan; omit with --example")] = None,
    example: Annotated[bool, typer.Option(help="the bundled sales-data job")] = False,
    plan: Annotated[Path | None, typer.Option(help="validate and analyse this plan file")] = None,
    model: Models = None,
    structured_output: StructuredOutput = None,
    limit: Limit = None,
    roster: Roster = None,
    plugins: Plugins = False,
    as_json: AsJson = False,
) -> None:
    """Plan only: the validated plan and its critical path; nothing is executed."""

    async def go() -> int:
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.store.memory import InMemoryStore

        from orchestrator_graph.graph import create_orchestrator
        from orchestrator_graph.models import Plan

        payload = run_input(request, example, plan)
        graph = create_orchestrator(workers=team_of(team_settings(roster, plugins))).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore(), interrupt_before=["dispatcher"]
        )
        config: RunnableConfig = {"configurable": {"thread_id": "plan"}}
        settings = run_settings(model, use_memory=False) | call_settings(structured_output, limit)
        await graph.ainvoke(payload, config, context=checked_context(settings))
        values = (await graph.aget_state(config)).values
        planned = Plan.model_validate(values["plan"])
        result = {"plan": planned.model_dump(mode="json"), "analysis": values["analysis"]}
        if as_json:
            print(json.dumps(result, indent=2))
            return 0
        analysis = values["analysis"]
        table = Table("task", "skills", "depends on", "effort", "ES", "EF", "slack", "critical")
        for task in result["plan"]["tasks"]:
            a = analysis["tasks"][task["id"]]
            table.add_row(
                escape(task["id"]),
                escape(",".join(task["skills"])),
                escape(",".join(task["depends_on"])),
                f"{task['effort']:g}",
                f"{a['earliest_start']:g}",
                f"{a['earliest_finish']:g}",
                f"{a['slack']:g}",
                "yes" if a["critical"] else "",
            )
        out = Console()
        out.print(table)
        out.print(
            f"critical path: {' -> '.join(analysis['critical_path'])} "
            f"({analysis['duration']:g}s of {analysis['total_work']:g}s work)",
            markup=False,
        )
        return 0

    guard(go(), as_json)


@app.command()
def audit(
    thread: str, home: Home = None, postgres: Postgres = None, as_json: AsJson = False
) -> None:
    """Every verdict and action of a thread's run, in order."""

    async def go() -> int:
        from orchestrator_graph.audit import audit_trail
        from orchestrator_graph.persistence import open_persistence

        found = await inspect_thread(thread, home, postgres)
        check_ledger(thread, found)
        async with open_persistence(home, postgres) as (_saver, store):
            trail = await audit_trail(store, found.snapshot.values)
        if as_json:
            print(json.dumps([e.model_dump() for e in trail], indent=2))
            return 0
        start = trail[0].at if trail else 0.0
        table = Table("t+s", "actor", "action", "task", "detail")
        for e in trail:
            table.add_row(
                f"{e.at - start:.3f}",
                escape(e.actor),
                escape(e.action),
                escape(e.task_id or ""),
                escape(e.detail[:100]),
            )
        Console().print(table)
        return 0

    guard(go())


@app.command("workers")
def workers_command(
    roster: Roster = None,
    plugins: Plugins = False,
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
) -> None:
    """The team (default, roster file and/or plugins) with each worker's history per skill."""

    async def go() -> int:
        from orchestrator_graph.persistence import open_persistence
        from orchestrator_graph.registry import load_history
        from orchestrator_graph.team import default_team

        team = team_of(team_settings(roster, plugins)) or default_team()
        async with open_persistence(home, postgres) as (_saver, store):
            history = await load_history(store, [w.name for w in team])
        rows = [
            {
                **w.model_dump(),
                "history": {
                    s: {
                        "attempts": h.attempts,
                        "success_rate": round(h.success_rate, 3),
                        "quality": round(h.quality, 3),
                        "latency": h.latency,
                    }
                    for s, h in history[w.name].items()
                },
            }
            for w in team
        ]
        if as_json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table(
            "worker", "skills", "capacity", "cost", "region", "history (attempts, success, quality)"
        )
        for row in rows:
            table.add_row(
                escape(row["name"]),
                escape(", ".join(f"{k} {v:g}" for k, v in row["skills"].items())),
                str(row["capacity"]),
                f"{row['cost']:g}",
                escape(row["region"]),
                escape(
                    "; ".join(
                        f"{s}: {h['attempts']}, {h['success_rate']:.0%}, {h['quality']:.2f}"
                        for s, h in row["history"].items()
                    )
                    or "none yet"
                ),
            )
        Console().print(table)
        return 0

    guard(go())


@app.command()
def insights(
    roster: Roster = None,
    plugins: Plugins = False,
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
    target: Annotated[
        float | None,
        typer.Option(help="makespan to plan capacity for, in seconds (simulated on past plans)"),
    ] = None,
    runs: Annotated[int, typer.Option(help="how many recent runs to look at")] = 50,
) -> None:
    """What past runs say about the team: load, bottlenecks, skill gaps, failure patterns,
    capacity for a target makespan, and recommendations."""

    async def go() -> int:
        from orchestrator_graph.insights import insights as analyse
        from orchestrator_graph.memory import MemoryHandle, MemoryUnavailable
        from orchestrator_graph.persistence import open_persistence
        from orchestrator_graph.registry import load_history
        from orchestrator_graph.team import default_team

        team = team_of(team_settings(roster, plugins)) or default_team()
        handle = MemoryHandle(memory_location(home))
        try:
            records = await handle.call("records", limit=runs)
        except MemoryUnavailable as err:
            raise CliError(str(err)) from err
        async with open_persistence(home, postgres) as (_saver, store):
            history = await load_history(store, [w.name for w in team])
        found = analyse(records, team, history, target=target)
        if as_json:
            print(json.dumps(found.model_dump(mode="json"), indent=2))
            return 0
        out = Console()
        out.print(
            f"{found.runs} runs ({', '.join(f'{k} {v}' for k, v in found.statuses.items())}); "
            f"mean makespan {found.mean_makespan:.2f}s, mean quality {found.mean_quality:.2f}, "
            f"fairness {found.fairness if found.fairness is not None else 'n/a'}",
            highlight=False,
        )
        load = Table("worker", "tasks", "share", "busy s", "success")
        for w in found.load:
            rate = "" if w.success_rate is None else f"{w.success_rate:.0%}"
            load.add_row(escape(w.worker), str(w.tasks), f"{w.share:.0%}", f"{w.seconds:.2f}", rate)
        out.print(load)
        skills = Table(
            "skill", "tasks", "effort s", "workers", "slots", "quality", "pressure", "gap"
        )
        for c in found.skills:
            skills.add_row(
                escape(c.skill),
                str(c.tasks),
                f"{c.effort:.2f}",
                escape(", ".join(c.workers)),
                str(c.slots),
                "" if c.quality is None else f"{c.quality:.2f}",
                f"{c.pressure:.2f}",
                c.gap,
            )
        out.print(skills)
        if found.bottlenecks:
            out.print(
                "bottlenecks: "
                + ", ".join(f"{k} in {v} runs" for k, v in found.bottlenecks.items())
            )
        for line in found.recommendations:
            out.print(f"- {line}", markup=False, highlight=False)
        return 0

    guard(go())

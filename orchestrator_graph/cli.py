"""``orchestrator-graph``: run, resume, inspect and plan orchestrated jobs from the shell.

Exit codes: 0 done; 1 finished partial or failed, or stopped by a model provider (resumable);
2 bad input; 3 waiting for a human decision or for more budget."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator_graph import ops_cli as ops_commands
from orchestrator_graph.context import LIMIT_KEYS, METHOD_NAMES, ROLES, Context
from orchestrator_graph.errors import (
    BudgetSpent,
    ContextError,
    OrchestratorError,
    ProviderError,
)
from orchestrator_graph.threads import (
    THREAD_OWNERS,
    alive,
    check_ledger,
    inspect_thread,
    owner,
    task_rows,
    thread_status,
)

if TYPE_CHECKING:  # the heavy modules load when a command needs them: --help stays fast
    from rich.console import Group

    from orchestrator_graph.models import StatusSnapshot
    from orchestrator_graph.workers import Worker

SAMPLES = Path(__file__).resolve().parent / "samples"  # tools.SAMPLES, without importing tools
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
err = Console(stderr=True, soft_wrap=True)  # a one-line reason stays one line

EXAMPLE = (
    f"Collect the sales data from {SAMPLES / 'sales.csv'} and {SAMPLES / 'online_sales.json'}, "
    "clean and transform it, analyse revenue by region, validate the rows, and write a report."
)

Home = Annotated[
    str | None,
    typer.Option(
        help="data folder for state.db/store.db "
        "(default $ORCHESTRATOR_GRAPH_HOME or ./.orchestrator-graph)"
    ),
]
Postgres = Annotated[
    str | None, typer.Option(help="Postgres URL: checkpoints and store in Postgres")
]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document, no live display")]
Roster = Annotated[
    Path | None,
    typer.Option(help="a roster file (YAML/JSON) of workers: replaces the default team"),
]
Plugins = Annotated[
    bool, typer.Option("--plugins", help="add workers from installed plugins (entry points)")
]
Budget = Annotated[
    list[str] | None,
    typer.Option("--budget", help="NAME=VALUE: seconds, cost, attempts or tokens for the run"),
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="SPEC for every role, or ROLE=SPEC (roles: " + ", ".join(ROLES) + "); SPEC is "
        "'offline' or 'provider:model' for init_chat_model",
    ),
]


StructuredOutput = Annotated[
    list[str] | None,
    typer.Option(
        "--structured-output",
        help="METHOD for every role, or ROLE=METHOD; METHOD is json_schema, function_calling "
        "or json_mode (default: what the provider supports best)",
    ),
]
Limit = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        help="KEY=VALUE for every role, or ROLE.KEY=VALUE: timeout (seconds per request), "
        "max_tokens (output tokens per request), retries (of 429/5xx/no answer)",
    ),
]


class CliError(Exception):
    """A one-line reason and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _settings(
    models: list[str] | None, budgets: list[str] | None = None, **settings: Any
) -> dict[str, Any]:
    """The context values the flags set (unset flags are left out), checked."""
    values: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
    for spec in budgets or []:
        name, _, amount = spec.partition("=")
        if name not in ("seconds", "cost", "attempts", "tokens") or not amount:
            raise CliError(
                f"--budget {spec!r}: use NAME=VALUE with NAME one of seconds, cost, "
                "attempts, tokens"
            )
        try:
            values[f"budget_{name}"] = (
                int(amount) if name in ("attempts", "tokens") else float(amount)
            )
        except ValueError:
            raise CliError(f"--budget {spec!r}: {amount!r} is not a number") from None
    for spec in models or []:
        role, _, name = spec.partition("=") if "=" in spec else ("", "", spec)
        if role and role not in ROLES:
            raise CliError(f"--model {spec!r}: unknown role {role!r}; roles are {', '.join(ROLES)}")
        for r in [role] if role else ROLES:
            values[f"{r}_model"] = name
    context = _context(values)
    from orchestrator_graph.llm import resolve_model

    for role in ROLES:  # fail before the run starts, not inside it
        if spec := getattr(context, f"{role}_model"):
            resolve_model(spec)
    return values


def _call_settings(methods: list[str] | None, limits: list[str] | None) -> dict[str, Any]:
    """The context values of ``--structured-output`` and ``--limit``."""
    values: dict[str, Any] = {}
    for spec in methods or []:
        role, _, method = spec.rpartition("=")
        if role and role not in ROLES:
            raise CliError(
                f"--structured-output {spec!r}: unknown role {role!r}; roles are {', '.join(ROLES)}"
            )
        if method not in METHOD_NAMES:
            raise CliError(
                f"--structured-output {spec!r}: method {method!r}; use one of "
                f"{', '.join(METHOD_NAMES)}"
            )
        for r in [role] if role else ROLES:
            values.setdefault("structured_output", {})[r] = method
    for spec in limits or []:
        name, _, amount = spec.partition("=")
        role, _, key = name.rpartition(".")
        try:
            number = float(amount)
        except ValueError:
            raise CliError(f"--limit {spec!r}: {amount!r} is not a number") from None
        if key not in LIMIT_KEYS or (role and role not in ROLES) or number < 0:
            raise CliError(
                f"--limit {spec!r}: use [ROLE.]KEY=VALUE with KEY one of "
                f"{', '.join(LIMIT_KEYS)}, ROLE one of {', '.join(ROLES)}, VALUE >= 0"
            )
        for r in [role] if role else ROLES:
            values.setdefault("role_limits", {}).setdefault(r, {})[key] = number
    return values


def _stopped(thread: str, error: Exception, as_json: bool) -> int:
    """A run stopped at a node by its provider, an unusable model answer or a spent budget:
    one line, the thread intact; exit 3 for a budget (like the dispatcher's), else 1."""
    code = 3 if isinstance(error, BudgetSpent) else 1
    reason = " ".join(str(error).split())
    if as_json:
        doc = {"thread": thread, "status": "stopped", "error": type(error).__name__}
        print(json.dumps({**doc, "reason": reason, "exit_code": code}))
    more = " --budget NAME=MORE" if code == 3 else ""
    err.print(
        f"stopped: {reason}; go on with: orchestrator-graph resume {thread}{more}",
        markup=False,
        highlight=False,
    )
    return code


TEAM_KEYS = ("roster", "plugins")


def _context(values: dict[str, Any]) -> Context:
    try:
        return Context(**{k: v for k, v in values.items() if k not in TEAM_KEYS})
    except ContextError as error:
        raise CliError(_option_error(error)) from None
    except TypeError as error:
        raise CliError(str(error)) from error


def _option_error(error: ContextError) -> str:
    """A context error in the words of the command line: the option, the value, what it takes."""
    name, value = error.field, error.value
    if name.startswith("budget_"):
        option = f"--budget {name.removeprefix('budget_')}={value!r}"
    elif name.endswith("_model"):
        option = f"--model {name.removesuffix('_model')}={value!r}"
    else:
        option = f"--{name.replace('_', '-')} {value!r}"
    return f"{option} is not allowed: {error.allowed}"


def _team(values: dict[str, Any]) -> list[Worker] | None:
    """The roster file (else the default team), plus installed plugin workers with
    ``--plugins``; ``None`` = the default team alone."""
    from orchestrator_graph.registry import discover_plugins, load_roster
    from orchestrator_graph.team import default_team

    roster, plugins = values.get("roster"), values.get("plugins")
    if not roster and not plugins:
        return None
    workers = load_roster(roster) if roster else default_team()
    if not workers:
        raise CliError(f"no workers: the roster {roster} lists none")
    return workers + (discover_plugins() if plugins else [])


def _read_plan(path: Path) -> dict[str, Any]:
    from orchestrator_graph.limits import load_plan_file

    return load_plan_file(path)


class Display:
    """Live view: task table, progress bar and the latest events; plain lines when not a TTY."""

    def __init__(self, console: Console, live: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        from orchestrator_graph.rendering import ChangeFilter

        self.console, self.live = console, live
        self.tasks: dict[str, dict[str, Any]] = {}
        self.events: list[str] = []
        self.printed = ChangeFilter()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
        )
        self.bar = self.progress.add_task("tasks", total=0)
        self.status = ""

    def render(self) -> Group:
        from rich.console import Group

        table = Table("task", "status", "worker", "attempt", "score", expand=True)
        for tid, t in self.tasks.items():
            table.add_row(
                escape(tid),
                t.get("status", ""),
                escape(t.get("worker") or ""),
                str(t.get("attempt") or ""),
                "" if t.get("score") is None else f"{t['score']:.2f}",
            )
        lines = [escape(line) for line in (self.status, *self.events[-6:])]
        return Group(table, self.progress, *lines)

    def on_event(self, ev: dict[str, Any]) -> None:
        from orchestrator_graph.models import StatusSnapshot
        from orchestrator_graph.rendering import event_line

        tid, kind = ev.get("task_id"), ev["kind"]
        if kind == "status":  # the live line, not an event to list
            self.status = _status_line(StatusSnapshot.model_validate(ev["data"]))
            return
        line = event_line(ev)
        self.events.append(line)
        if kind == "planned":
            self.progress.update(self.bar, total=ev["data"]["tasks"])
        if tid:
            task = self.tasks.setdefault(tid, {})
            status = {
                "task_started": "running",
                "task_completed": "approved",
                "task_queued": "queued",
                "task_failed": "retrying",
                "escalated": "escalated",
            }.get(kind)
            if status:
                task["status"] = status
            if ev.get("worker"):
                task["worker"] = ev["worker"]
            if ev.get("attempt"):
                task["attempt"] = ev["attempt"]
            if "score" in ev.get("data", {}):
                task["score"] = ev["data"]["score"]
        if kind == "progress":
            self.progress.update(self.bar, completed=ev["data"].get("approved", 0))
        if not self.live and self.printed.changed((ev["node"], kind, tid or ""), line):
            self.console.print(line, markup=False, highlight=False)


THREAD_SETTINGS = ("orchestrator_graph", "cli_threads")


async def _drive(
    payload: Any,
    thread: str,
    settings: dict[str, Any],
    home: str | None,
    postgres: str | None,
    as_json: bool,
) -> int:
    """Run or continue a thread. LangGraph does not checkpoint the run context, so the settings
    a thread started with are kept in the store and applied again (under new flags) on resume."""
    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.persistence import open_persistence

    console = Console(stderr=True)
    config = {"configurable": {"thread_id": thread}}
    async with open_persistence(home, postgres) as (saver, store):
        if not isinstance(payload, dict):  # resuming: the thread's own settings first
            saved = await store.aget(THREAD_SETTINGS, thread)
            settings = {**(saved.value if saved else {}), **settings}
        context = _context(settings)
        builder = create_orchestrator(workers=_team(settings), memory=memory_location(home))
        await store.aput(THREAD_SETTINGS, thread, settings, index=False)
        await store.aput(THREAD_OWNERS, thread, owner(), index=False)
        graph = builder.compile(checkpointer=saver, store=store)
        display = Display(console, live=console.is_terminal and not as_json)
        if not as_json:
            console.print(
                f"thread [bold]{escape(thread)}[/]  models: "
                + escape(", ".join(f"{r}={m}" for r, m in _roles(context).items())),
                highlight=False,
            )

        async def consume() -> None:
            async for ev in graph.astream(
                payload,
                config,
                stream_mode="custom",
                context=context,
                durability="sync",
                subgraphs=True,
            ):
                _ns, data = ev
                if isinstance(data, dict) and data.get("event") == "orchestrator":
                    display.on_event(data)
                    if display.live:
                        live.update(display.render())

        from orchestrator_graph.llm import StructuredOutputError

        try:
            if display.live:
                from rich.live import Live

                with Live(display.render(), console=console, refresh_per_second=8) as live:
                    await consume()
            else:
                live = None
                await consume()
        except (ProviderError, StructuredOutputError, BudgetSpent) as error:
            return _stopped(thread, error, as_json)
        finally:
            await store.adelete(THREAD_OWNERS, thread)
        snapshot = await graph.aget_state(config)
    return _finish(thread, snapshot, as_json)


def _status_line(snapshot: StatusSnapshot) -> str:
    """ETA, deadline, slip and each worker's utilisation, on one line."""
    load = ", ".join(
        f"{name} {w.utilisation:.0%}" + (f" ({w.status})" if w.status == "offline" else "")
        for name, w in snapshot.workers.items()
    )
    deadline = f" of {snapshot.deadline:g}s deadline" if snapshot.deadline else ""
    return (
        f"elapsed {snapshot.elapsed:.2f}s{deadline}, ETA {snapshot.eta or 0:.2f}s more, "
        f"critical-path slip {snapshot.critical_path_slip:.2f}s; utilisation: {load}"
    )


def memory_location(home: str | None) -> str:
    """The plan memory: ``$ORCHESTRATOR_GRAPH_CHROMA`` (a folder or a server URL), else the
    ``chroma`` folder in the data directory."""
    from orchestrator_graph.memory import CHROMA_ENV
    from orchestrator_graph.persistence import data_dir

    return os.environ.get(CHROMA_ENV) or str(data_dir(home) / "chroma")


def _roles(context: Context) -> dict[str, str]:
    return {r: getattr(context, f"{r}_model") or "offline" for r in ROLES}


def _finish(thread: str, snapshot: Any, as_json: bool) -> int:
    values = snapshot.values
    waiting = [i.value for t in snapshot.tasks for i in t.interrupts]
    if waiting:
        return _waiting(thread, waiting, as_json)
    report = values.get("report")
    if report is None:
        raise CliError(
            f"thread {thread} has no finished run (next: {list(snapshot.next) or 'none'})", 1
        )
    if as_json:
        print(json.dumps({"thread": thread, **report}, indent=2, default=str))
    else:
        _show_report(report)
    if report["status"] != "done":
        err.print(f"run {report['status']}: {report['reason']}", markup=False, highlight=False)
        return 1
    return 0


def _waiting(thread: str, waiting: list[Any], as_json: bool) -> int:
    if as_json:
        print(
            json.dumps({"thread": thread, "status": "waiting", "interrupts": waiting}, default=str)
        )
        return 3
    for w in waiting:
        if w.get("type") == "budget":
            line = (
                f"stopped: {w['reason']}; go on with: orchestrator-graph resume "
                f"{thread} --budget NAME=MORE"
            )
        else:
            line = (
                f"waiting for a human: task {w.get('task_id')}: {w.get('reason')}\n"
                f"answer with: orchestrator-graph resume {thread} --answer accept|retry|skip"
            )
        err.print(line, markup=False, highlight=False)
    return 3


def _show_report(report: dict[str, Any]) -> None:
    """The deliverable rendered as Markdown, then how the run went, in plain lines."""
    from rich.markdown import Markdown

    from orchestrator_graph.rendering import deliverable_markdown

    out = Console()
    out.print(Markdown(deliverable_markdown(report.get("deliverable") or {})))
    lines = [
        f"\nrun {report['run_id']}: {report['status']} in {report['makespan']:.2f}s "
        f"(planned {report['planned_duration']:.2f}s) {report['reason']}"
    ]
    lines += [
        f"bottleneck {b['kind']}: {b['detail']}; {b['response']}"
        for b in report.get("bottlenecks", [])
    ]
    for r in report.get("replans", []):
        verb = "replaced" if r["applied"] else "did not replace"
        lines.append(f"re-plan: {verb} {', '.join(r['removed']) or r['failed']}: {r['reason']}")
    lines += [
        f"decision on {d['task_id']}: {d['action']} by {d['by']}: {d['reason']}"
        for d in report.get("decisions", [])
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)


async def _snapshot(thread: str, home: str | None, postgres: str | None) -> Any:
    return (await inspect_thread(thread, home, postgres)).snapshot


def _team_settings(roster: Path | None, plugins: bool) -> dict[str, Any]:
    return {"roster": str(roster.resolve()) if roster else None, "plugins": plugins}


def _guard(coro: Any, as_json: bool = False) -> None:
    import asyncio
    import sqlite3

    from orchestrator_graph.llm import StructuredOutputError

    try:
        code = asyncio.run(coro)
    except CliError as error:
        raise typer.Exit(_failed(str(error), error.code, as_json)) from None
    except ContextError as error:
        raise typer.Exit(_failed(str(_option_error(error)), 2, as_json)) from None
    except (ProviderError, StructuredOutputError, BudgetSpent) as error:
        code = 3 if isinstance(error, BudgetSpent) else 1
        raise typer.Exit(_failed(str(error), code, as_json)) from None
    except (OrchestratorError, ValueError, FileNotFoundError) as error:
        raise typer.Exit(_failed(str(error), 2, as_json)) from None
    except sqlite3.DatabaseError as error:  # damaged past the checks made on opening
        message = f"a database in the data folder is damaged ({error}); {DAMAGED_HINT}"
        raise typer.Exit(_failed(message, 2, as_json)) from None
    raise typer.Exit(code)


DAMAGED_HINT = "move state.db and store.db aside to start afresh, or restore them from a backup"


def _run_input(request: str | None, example: bool, plan: Path | None) -> dict[str, Any]:
    """The graph's input: the request (the example's, or a declared plan's goal when only a
    plan is given) and the declared plan, each checked against its limits."""
    from orchestrator_graph.limits import check_request

    declared = _read_plan(plan) if plan is not None else None
    text = EXAMPLE if example else request
    if not text and declared is not None:
        text = declared.get("goal") or f"the plan in {plan.name if plan else ''}"
    if not text:
        raise CliError("give a REQUEST, --example or --plan FILE")
    payload: dict[str, Any] = {"request": check_request(text)}
    if declared is not None:
        payload["plan"] = declared
    return payload


def _check_declared(payload: dict[str, Any], team: list[Worker] | None) -> None:
    """A declared plan checked against the team before a thread is created for it."""
    if "plan" not in payload:
        return
    from orchestrator_graph.models import Plan
    from orchestrator_graph.nodes.planner import validate_for_team
    from orchestrator_graph.registry import Registry
    from orchestrator_graph.team import default_team

    validate_for_team(Plan.model_validate(payload["plan"]), Registry(team or default_team()))


def _failed(message: str, code: int, as_json: bool) -> int:
    """One line on stderr; with ``--json`` also a document on stdout."""
    line = " ".join(message.split())
    err.print(f"error: {line}", markup=False, highlight=False)
    if as_json:
        print(json.dumps({"status": "error", "error": line, "exit_code": code}))
    return code


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
        payload = _run_input(request, example, plan)
        team = _team(_team_settings(roster, plugins))  # refused before any state exists
        _check_declared(payload, team)
        settings = _settings(
            model,
            budget,
            escalation=escalation,
            qa_policy=qa_policy,
            output_dir=output_dir,
            objective=objective,
        ) | _team_settings(roster, plugins)
        settings |= _call_settings(structured_output, limit)
        _context(settings)
        return await _drive(
            payload, thread or uuid.uuid4().hex[:12], settings, home, postgres, as_json
        )

    _guard(go(), as_json)


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
            return _finish(thread, snapshot, as_json)
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
        payload = Command(resume=reply) if waiting else None
        settings = _settings(model, budget) | _call_settings(structured_output, limit)
        return await _drive(payload, thread, settings, home, postgres, as_json)

    _guard(go(), as_json)


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
        _show_status(summary, live)
        return 0

    _guard(go())


def _show_status(summary: dict[str, Any], live: StatusSnapshot | None) -> None:
    out = Console()
    lines = [
        f"thread {summary['thread']}: {summary['status']}; "
        f"next: {', '.join(summary['next']) or 'none'}"
    ]
    if summary["status"] == "interrupted":
        lines.append(f"its process is gone: orchestrator-graph resume {summary['thread']}")
    if live:
        lines.append(_status_line(live))
    lines += [
        f"bottleneck {b['kind']}: {b['detail']}; {b['response']}"
        for b in summary["bottlenecks"][-5:]
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)
    table = Table("task", "status", "worker", "attempts", "score")
    for tid, rec in summary["tasks"].items():
        table.add_row(
            escape(tid),
            rec["status"],
            escape(rec.get("worker") or ""),
            str(rec["attempts"]),
            "" if rec.get("score") is None else f"{rec['score']:.2f}",
        )
    out.print(table)


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

        payload = _run_input(request, example, plan)
        graph = create_orchestrator(workers=_team(_team_settings(roster, plugins))).compile(
            checkpointer=InMemorySaver(), store=InMemoryStore(), interrupt_before=["dispatcher"]
        )
        config = {"configurable": {"thread_id": "plan"}}
        settings = _settings(model, use_memory=False) | _call_settings(structured_output, limit)
        await graph.ainvoke(payload, config, context=_context(settings))
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

    _guard(go(), as_json)


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

    _guard(go())


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

        team = _team(_team_settings(roster, plugins)) or default_team()
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

    _guard(go())


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

        team = _team(_team_settings(roster, plugins)) or default_team()
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

    _guard(go())


ops_commands.register(app)  # metrics, alerts, doctor, dashboard (ops_cli.py)


def main() -> None:
    app(prog_name="orchestrator-graph")


if __name__ == "__main__":
    sys.exit(main())

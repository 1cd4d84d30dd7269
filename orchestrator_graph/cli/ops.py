"""Operations commands for the CLI: ``metrics``, ``alerts``, ``doctor`` and ``dashboard``.
They read the same data folder (or Postgres) as ``run`` and ``status``; ``cli`` registers them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator_graph.limits import RECENT_RUNS as RECENT

Home = Annotated[
    str | None,
    typer.Option(help="data folder (default $ORCHESTRATOR_GRAPH_HOME or ./.orchestrator-graph)"),
]
Postgres = Annotated[str | None, typer.Option(help="Postgres URL of the checkpoints and store")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document")]
Runs = Annotated[int, typer.Option(help="how many recent threads to look at")]
MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def require(module: str) -> None:
    """Fail with the install line when an optional dependency of these commands is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        Console(stderr=True).print(
            f"error: {module} is missing: pip install 'orchestrator-graph[ops]'"
        )
        raise typer.Exit(2)


async def gather_views(home: str | None, postgres: str | None, runs: int) -> list[Any]:
    from orchestrator_graph.observe import LocalSource, team_prices
    from orchestrator_graph.persistence import open_persistence

    async with open_persistence(home, postgres) as (saver, store):
        return await LocalSource(saver, store, team_prices()).runs(runs)


def metrics(
    home: Home = None,
    postgres: Postgres = None,
    runs: Runs = RECENT,
    serve: Annotated[
        int | None, typer.Option(help="serve /metrics on this port instead of printing once")
    ] = None,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    interval: Annotated[float, typer.Option(help="seconds between re-reads when serving")] = 5.0,
) -> None:
    """Prometheus metrics of the recent runs: printed once, or served at /metrics (--serve)."""
    require("prometheus_client")
    from orchestrator_graph.metrics import exposition

    if serve is None:
        sys.stdout.write(exposition(asyncio.run(gather_views(home, postgres, runs))).decode())
        return
    asyncio.run(_serve_metrics(home, postgres, runs, host, serve, interval))


async def _serve_metrics(
    home: str | None, postgres: str | None, runs: int, host: str, port: int, interval: float
) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from orchestrator_graph.metrics import RunCollector

    collector = RunCollector(await gather_views(home, postgres, runs))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    Console(stderr=True).print(f"serving metrics on http://{host}:{port}/metrics")
    try:
        while True:
            await asyncio.sleep(interval)
            collector.update(await gather_views(home, postgres, runs))
    finally:
        server.shutdown()


def alerts(
    home: Home = None,
    postgres: Postgres = None,
    runs: Runs = RECENT,
    as_json: AsJson = False,
) -> None:
    """Alerts that fire now on the recent runs (the rules of ops/alerts.rules.yml). Exit code 1
    when any fires. Thresholds: ORCHESTRATOR_GRAPH_ALERT_<NAME> variables."""
    from orchestrator_graph.alerts import Thresholds, evaluate

    firing = evaluate(asyncio.run(gather_views(home, postgres, runs)), Thresholds.from_env())
    if as_json:
        print(json.dumps([a.model_dump(mode="json") for a in firing], indent=2))
    elif not firing:
        Console().print("no alerts firing")
    else:
        table = Table("alert", "severity", "summary", "runbook")
        for a in firing:
            table.add_row(a.name, a.severity, a.summary, a.runbook)
        Console().print(table)
    raise typer.Exit(1 if firing else 0)


def doctor(
    home: Home = None,
    postgres: Postgres = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="SPEC for every role or ROLE=SPEC, as for run"),
    ] = None,
    config: Annotated[Path, typer.Option(help="the server's langgraph.json")] = Path(
        "langgraph.json"
    ),
    ping: Annotated[
        bool, typer.Option(help="ask each configured model one short question")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Check this deployment: database and store, Chroma, models, auth, disk. Each check is
    printed with a fix. Exit code 1 when a check fails."""
    from orchestrator_graph.context import ROLES
    from orchestrator_graph.doctor import diagnose, worst
    from orchestrator_graph.memory import CHROMA_ENV
    from orchestrator_graph.persistence import data_dir

    specs: dict[str, str] = {}
    for spec in model or []:
        role, _, name = spec.partition("=") if "=" in spec else ("", "", spec)
        specs.update({r: name for r in ([role] if role else ROLES)})
    memory = os.environ.get(CHROMA_ENV) or str(data_dir(home) / "chroma")
    checks = asyncio.run(
        diagnose(
            home=home, postgres=postgres, memory=memory, models=specs, config=config, ping=ping
        )
    )
    if as_json:
        print(json.dumps([c.model_dump() for c in checks], indent=2))
    else:
        table = Table("check", "status", "found", "fix")
        for c in checks:
            table.add_row(c.name, MARK[c.status], c.detail, c.fix)
        Console(width=160).print(table)
    raise typer.Exit(1 if worst(checks) == "fail" else 0)


def dashboard(
    out: Annotated[Path, typer.Option(help="the HTML file to write (opens offline)")],
    thread: Annotated[
        str | None, typer.Option(help="one run's page instead of the portfolio")
    ] = None,
    home: Home = None,
    postgres: Postgres = None,
    runs: Runs = RECENT,
    roster: Annotated[
        Path | None, typer.Option(help="the team's roster file (default: the built-in teams)")
    ] = None,
) -> None:
    """The executive dashboard as one self-contained HTML file: the portfolio of recent runs,
    the team and the learning curve, or one run's page (--thread)."""
    require("plotly")
    from orchestrator_graph.dashboard import export

    views = asyncio.run(gather_views(home, postgres, runs))
    if thread is not None and not any(v.thread_id == thread for v in views):
        Console(stderr=True).print(f"error: no run on thread {thread!r} in the last {runs}")
        raise typer.Exit(2)
    started = time.perf_counter()
    path = export(views, out, thread=thread, memory=_memory(home), team=team_of(roster, views))
    Console(stderr=True).print(f"wrote {path} in {time.perf_counter() - started:.1f}s")


def trace(
    thread: str,
    home: Home = None,
    postgres: Postgres = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="OTLP/HTTP traces URL (default $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"),
    ] = None,
) -> None:
    """A run's OpenTelemetry spans (run, node steps, attempts): sent to an OTLP endpoint, or
    printed as JSON lines when none is set."""
    require("opentelemetry.sdk")
    spans = asyncio.run(_trace(thread, home, postgres, endpoint))
    for span in spans:
        print(span)


async def _trace(
    thread: str, home: str | None, postgres: str | None, endpoint: str | None
) -> list[str]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.observe import LocalSource, team_prices
    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.tracing import export_run, local_steps

    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    provider, memory = TracerProvider(), InMemorySpanExporter()
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(memory))
    async with open_persistence(home, postgres) as (saver, store):
        views = [
            v
            for v in await LocalSource(saver, store, team_prices()).runs()
            if v.thread_id == thread
        ]
        if not views:
            Console(stderr=True).print(f"error: no run on thread {thread!r}")
            raise typer.Exit(2)
        graph = create_orchestrator().compile(checkpointer=saver, store=store)
        count = export_run(views[0], await local_steps(graph, thread), provider)
    provider.shutdown()
    if endpoint:
        return [f"sent {count} spans to {endpoint}"]
    return [s.to_json(indent=None) for s in memory.get_finished_spans()]


def _memory(home: str | None) -> str:
    from orchestrator_graph.memory import CHROMA_ENV
    from orchestrator_graph.persistence import data_dir

    return os.environ.get(CHROMA_ENV) or str(data_dir(home) / "chroma")


def team_of(roster: Path | None, views: list[Any]) -> list[Any]:
    """The roster's workers, else the built-in teams (default and simulated), keeping those
    the runs used when they used any of them."""
    from orchestrator_graph.registry import load_roster
    from orchestrator_graph.simulation import simulated_workers
    from orchestrator_graph.team import default_team

    team = load_roster(roster) if roster else [*default_team(), *simulated_workers()]
    seen = {a.worker for v in views for a in v.attempts}
    return [w for w in team if w.name in seen] or team


COMMANDS: dict[str, Callable[..., None]] = {
    "metrics": metrics,
    "alerts": alerts,
    "doctor": doctor,
    "dashboard": dashboard,
    "trace": trace,
}


def register(app: typer.Typer) -> None:
    for name, command in COMMANDS.items():
        app.command(name)(command)

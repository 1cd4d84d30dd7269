"""``orchestrator-graph compliance THREAD``: the run's compliance report."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator_graph.cli.common import AsJson, Home, Postgres, app, guard


@app.command()
def compliance(
    thread: Annotated[str, typer.Argument(help="the thread whose run to report on")],
    home: Home = None,
    postgres: Postgres = None,
    as_json: AsJson = False,
) -> None:
    """Classifications, redactions and policy checks of a thread's run; exit 1 if a check
    failed."""

    async def go() -> int:
        from orchestrator_graph.errors import InputError
        from orchestrator_graph.persistence import open_persistence
        from orchestrator_graph.protection.compliance import compliance_report
        from orchestrator_graph.threads import inspect_thread

        found = await inspect_thread(thread, home, postgres)
        values = found.snapshot.values
        if not values.get("run_id"):
            raise InputError(f"thread {thread!r} has not started a run yet")
        async with open_persistence(home, postgres) as (_saver, store):
            report = await compliance_report(store, values["run_id"], values.get("plan"))
        if as_json:
            print(json.dumps(report.model_dump(), indent=2))
        else:
            _show(report)
        return 0 if report.outcome == "pass" else 1

    guard(go(), as_json)


def _show(report: object) -> None:
    from orchestrator_graph.protection.compliance import ComplianceReport

    assert isinstance(report, ComplianceReport)
    console = Console()
    console.print(
        f"run {escape(report.run_id)}  policy {escape(report.policy)}  "
        f"outcome [bold]{report.outcome}[/]",
        highlight=False,
    )
    levels = ", ".join(f"{t}={c}" for t, c in report.classifications.items())
    console.print(f"classifications: {escape(levels) or 'none'}", highlight=False)
    table = Table("kind", "distinct values", title="redactions")
    for kind, count in sorted(report.redactions.items()):
        table.add_row(escape(kind), str(count))
    console.print(table)
    checks = Table("check", "subject", "outcome", "detail", title="policy checks")
    for c in report.checks:
        checks.add_row(escape(c.check), escape(c.subject), c.outcome, escape(c.detail[:120]))
    console.print(checks)

"""``orchestrator-graph``: run, resume, inspect and plan orchestrated jobs from the shell.

Exit codes: 0 done; 1 finished partial or failed, or stopped by a model provider (resumable);
2 bad input; 3 waiting for a human decision or for more budget.

One module per group of commands (``runs``, ``planning``, ``ops``); ``settings`` checks the
options, ``driving`` runs the graph and ends it in an exit code, ``display`` shows it. Heavy
modules load inside the commands that need them, so ``--help`` stays fast."""

from __future__ import annotations

from orchestrator_graph.cli import ops, planning, runs
from orchestrator_graph.cli.common import EXAMPLE, app

__all__ = ["EXAMPLE", "app", "main", "ops", "planning", "runs"]

ops.register(app)  # metrics, alerts, doctor, dashboard


def main() -> None:
    app(prog_name="orchestrator-graph")

"""The command line's shared pieces: the typer app, the error console, the options' types, the one-
line failure and its exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchestrator_graph.context import ROLES
from orchestrator_graph.errors import (
    BudgetSpent,
    ContextError,
    OrchestratorError,
    ProviderError,
    StructuredOutputError,
)

SAMPLES = Path(__file__).resolve().parent / "samples"  # tools.SAMPLES, without importing tools


HELP = """Run, resume, inspect and plan orchestrated jobs from the shell.

Exit codes: 0 done; 1 finished partial or failed, or stopped by a model provider (resumable);
2 bad input; 3 waiting for a human decision or for more budget."""
# Plain help: typer's rich help formatting alone costs about 0.1 s of imports on every --help.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP, rich_markup_mode=None)


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


def stopped_line(thread: str, error: Exception, as_json: bool) -> int:
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


def option_error(error: ContextError) -> str:
    """A context error in the words of the command line: the option, the value, what it takes."""
    name, value = error.field, error.value
    if name.startswith("budget_"):
        option = f"--budget {name.removeprefix('budget_')}={value!r}"
    elif name.endswith("_model"):
        option = f"--model {name.removesuffix('_model')}={value!r}"
    else:
        option = f"--{name.replace('_', '-')} {value!r}"
    return f"{option} is not allowed: {error.allowed}"


def guard(coro: Any, as_json: bool = False) -> None:
    import asyncio
    import sqlite3

    try:
        code = asyncio.run(coro)
    except CliError as error:
        raise typer.Exit(_failed(str(error), error.code, as_json)) from None
    except ContextError as error:
        raise typer.Exit(_failed(str(option_error(error)), 2, as_json)) from None
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


def _failed(message: str, code: int, as_json: bool) -> int:
    """One line on stderr; with ``--json`` also a document on stdout."""
    line = " ".join(message.split())
    err.print(f"error: {line}", markup=False, highlight=False)
    if as_json:
        print(json.dumps({"status": "error", "error": line, "exit_code": code}))
    return code

"""Command-line options turned into a checked ``Context``, a team and a run's input, before
anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator_graph.cli.common import EXAMPLE, TEAM_KEYS, CliError, option_error
from orchestrator_graph.context import LIMIT_KEYS, METHOD_NAMES, ROLES, Context
from orchestrator_graph.errors import (
    ContextError,
)

if TYPE_CHECKING:  # the heavy modules load when a command needs them: --help stays fast
    from orchestrator_graph.state import InputState
    from orchestrator_graph.workers import Worker


def run_settings(
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
    context = checked_context(values)
    from orchestrator_graph.llm import resolve_model

    for role in ROLES:  # fail before the run starts, not inside it
        if spec := getattr(context, f"{role}_model"):
            resolve_model(spec)
    return values


def call_settings(methods: list[str] | None, limits: list[str] | None) -> dict[str, Any]:
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


def checked_context(values: dict[str, Any]) -> Context:
    try:
        return Context(**{k: v for k, v in values.items() if k not in TEAM_KEYS})
    except ContextError as error:
        raise CliError(option_error(error)) from None
    except TypeError as error:
        raise CliError(str(error)) from error


def team_of(values: dict[str, Any]) -> list[Worker] | None:
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


def team_settings(roster: Path | None, plugins: bool) -> dict[str, Any]:
    return {"roster": str(roster.resolve()) if roster else None, "plugins": plugins}


def run_input(request: str | None, example: bool, plan: Path | None) -> InputState:
    """The graph's input: the request (the example's, or a declared plan's goal when only a
    plan is given) and the declared plan, each checked against its limits."""
    from orchestrator_graph.limits import check_request

    declared = _read_plan(plan) if plan is not None else None
    text = EXAMPLE if example else request
    if not text and declared is not None:
        text = declared.get("goal") or f"the plan in {plan.name if plan else ''}"
    if not text:
        raise CliError("give a REQUEST, --example or --plan FILE")
    payload: InputState = {"request": check_request(text)}
    if declared is not None:
        payload["plan"] = declared
    return payload


def check_declared(payload: InputState, team: list[Worker] | None) -> None:
    """A declared plan checked against the team before a thread is created for it."""
    if "plan" not in payload:
        return
    from orchestrator_graph.models import Plan
    from orchestrator_graph.nodes.planner import validate_for_team
    from orchestrator_graph.registry import Registry
    from orchestrator_graph.team import default_team

    validate_for_team(Plan.model_validate(payload["plan"]), Registry(team or default_team()))

"""A role's prompt replaced by the user: a string or a file (the package's ``$name`` syntax;
it replaces the role's user message, its system message stays) or a ``ChatPromptTemplate``
(``{name}`` syntax; it replaces both). Checked at build time for the variables it must use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

from langchain_core.prompts import ChatPromptTemplate

from orchestrator_graph.prompts import load_prompt, prompt_dir

PromptOverride = str | Path | ChatPromptTemplate

OPTIONAL = frozenset({"examples", "feedback", "checks", "skills", "context", "criteria"})
"""Variables an override may leave out: the role still works without them."""


def prompt_roles() -> list[str]:
    return sorted(p.name.removesuffix(".user.md") for p in prompt_dir().glob("*.user.md"))


def variables(role: str) -> set[str]:
    """The variables the role's prompt is filled with."""
    return set(load_prompt(f"{role}.user").get_identifiers()) | set(
        load_prompt(f"{role}.system").get_identifiers()
    )


def check_overrides(overrides: Mapping[str, PromptOverride] | None) -> dict[str, Any]:
    """Role -> a ``Template`` (user message) or a ``ChatPromptTemplate``; a ``ValueError``
    naming the role and what to change for an unknown role, an unreadable file, or variables
    missing or unknown."""
    out: dict[str, Any] = {}
    for role, given in (overrides or {}).items():
        if role not in prompt_roles():
            raise ValueError(
                f"prompts: no role {role!r} to override; roles: {', '.join(prompt_roles())}"
            )
        prompt: ChatPromptTemplate | Template
        if isinstance(given, ChatPromptTemplate):
            used, prompt = set(given.input_variables), given
        elif isinstance(given, (str, Path)):
            template = Template(_text(role, given))
            used, prompt = set(template.get_identifiers()), template
        else:
            raise ValueError(
                f"prompts[{role!r}]: give a string, a file path or a ChatPromptTemplate, "
                f"got {type(given).__name__}"
            )
        known = variables(role)
        missing, unknown = sorted(known - OPTIONAL - used), sorted(used - known)
        if missing or unknown:
            raise ValueError(
                f"prompts[{role!r}]: "
                + "; ".join(
                    f"{what}: {', '.join(names)}"
                    for what, names in (("missing variables", missing), ("unknown ones", unknown))
                    if names
                )
                + f" (its variables: {', '.join(sorted(known))})"
            )
        out[role] = prompt
    return out


def _text(role: str, given: str | Path) -> str:
    path = Path(given)
    if isinstance(given, Path) or (
        "\n" not in given and len(given) < 1024 and path.suffix in (".md", ".txt")
    ):
        if not path.is_file():
            raise ValueError(f"prompts[{role!r}]: no file {str(path)!r}")
        return path.read_text(encoding="utf-8")
    return given

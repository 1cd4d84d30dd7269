"""Prompts are files in ``prompts/``, loaded by name and filled in at call time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate

from orchestrator_graph.textsafe import fence

_SOURCE_TREE = Path(__file__).resolve().parent.parent / "prompts"


@cache
def prompt_dir() -> Path:
    """``orchestrator_graph/prompts`` in an installed wheel, ``prompts/`` in a source checkout."""
    packaged = resources.files("orchestrator_graph") / "prompts"
    if packaged.is_dir():
        return Path(str(packaged))
    if _SOURCE_TREE.is_dir():
        return _SOURCE_TREE
    raise FileNotFoundError(f"prompt folder not found (looked in {packaged} and {_SOURCE_TREE})")


@cache
def load_prompt(name: str) -> Template:
    path = prompt_dir() / f"{name}.md"
    if not path.is_file():
        available = sorted(p.stem for p in prompt_dir().glob("*.md"))
        raise KeyError(f"no prompt named {name!r}; available: {', '.join(available)}")
    return Template(path.read_text(encoding="utf-8"))


def preload() -> None:
    """Read every prompt file now (at graph build), not on the event loop during a run."""
    for path in prompt_dir().glob("*.md"):
        load_prompt(path.stem)


_overrides: ContextVar[Mapping[str, Template | ChatPromptTemplate] | None] = ContextVar(
    "orchestrator_graph_prompts", default=None
)


@contextmanager
def overriding(prompts: Mapping[str, Template | ChatPromptTemplate] | None) -> Iterator[None]:
    """``messages`` inside the block use these prompts for their roles
    (``prompt_overrides.check_overrides`` made them)."""
    token = _overrides.set(prompts)
    try:
        yield
    finally:
        _overrides.reset(token)


def render(name: str, template: Template | None = None, **values: object) -> str:
    """Fill a prompt's ``$placeholders``; a missing value is an error, not a blank. Every value
    is fenced (``textsafe.fence``) unless the code built it as a ``Block``: data in a prompt
    cannot open or close one of its tagged blocks."""
    template = template or load_prompt(name)
    try:
        return template.substitute({k: fence(v) for k, v in values.items()})
    except KeyError as err:
        raise KeyError(f"prompt {name!r} needs a value for {err.args[0]!r}") from None


def messages(role: str, **values: object) -> list[BaseMessage]:
    """The system and user messages of a role: ``<role>.system.md`` and ``<role>.user.md``,
    or the role's override (``overriding``)."""
    override = (_overrides.get() or {}).get(role)
    if isinstance(override, ChatPromptTemplate):
        return override.format_messages(**{k: fence(values[k]) for k in override.input_variables})
    return [
        SystemMessage(render(f"{role}.system", None, **values)),
        HumanMessage(render(f"{role}.user", override, **values)),
    ]

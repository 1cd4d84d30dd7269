"""Which chat model plays which role: the graph's defaults, overridden per run by the context."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from langchain_core.language_models import BaseChatModel

from orchestrator_graph.context import ROLES, Context
from orchestrator_graph.llm import ModelSpec, resolve_model


class Roles:
    def __init__(self, default: ModelSpec, per_role: Mapping[str, ModelSpec] | None = None) -> None:
        unknown = sorted(set(per_role or {}) - set(ROLES))
        if unknown:
            raise ValueError(
                f"unknown model roles: {', '.join(unknown)}; roles are {', '.join(ROLES)}"
            )
        self.specs = {role: (per_role or {}).get(role, default) for role in ROLES}
        for role, spec in self.specs.items():
            if not isinstance(spec, BaseChatModel):
                _check_spec(role, spec)

    def model(self, role: str, context: Context) -> BaseChatModel:
        override = getattr(context, f"{role}_model")
        return _resolved(override) if override else _object_or_resolved(self.specs[role])


def _check_spec(role: str, spec: object) -> None:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"model for role {role!r} must be a chat model or a 'provider:model' string, "
            f"got {spec!r}"
        )


@cache
def _resolved(spec: str) -> BaseChatModel:
    return resolve_model(spec)


def _object_or_resolved(spec: ModelSpec) -> BaseChatModel:
    return spec if isinstance(spec, BaseChatModel) else _resolved(spec)

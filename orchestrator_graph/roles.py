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

    def labels(self, context: Context) -> dict[str, str]:
        """Role -> a name for the model that plays it this run (metrics group tokens by it)."""
        return {
            role: model_label(getattr(context, f"{role}_model") or spec)
            for role, spec in self.specs.items()
        }


def model_label(spec: ModelSpec) -> str:
    """``provider:model`` strings as given; a model object by its model name, else its type."""
    if isinstance(spec, str):
        return spec
    name = getattr(spec, "model_name", None) or getattr(spec, "model", None)
    return str(name) if isinstance(name, str) and name else spec._llm_type


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

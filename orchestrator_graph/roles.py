"""Which chat model plays which role, how its answers are asked for and how its calls are
bounded: the graph's defaults, overridden per run by the context."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from langchain_core.language_models import BaseChatModel

from orchestrator_graph.context import ROLES, Context
from orchestrator_graph.llm import (
    CallProfile,
    Limits,
    ModelSpec,
    ambient_deadline,
    resolve_model,
    split_spec,
)

DEFAULT_MAX_TOKENS = {"planner": 4096, "synthesizer": 4096}
"""Output-token limits per role (others: ``OTHER_MAX_TOKENS``): plans and reports are long."""
OTHER_MAX_TOKENS = 1024


class Roles:
    def __init__(
        self,
        default: ModelSpec,
        per_role: Mapping[str, ModelSpec] | None = None,
        prompts: Mapping[str, Any] | None = None,
    ) -> None:
        self.prompts = dict(prompts or {})
        unknown = sorted(set(per_role or {}) - set(ROLES))
        if unknown:
            raise ValueError(
                f"unknown model roles: {', '.join(unknown)}; roles are {', '.join(ROLES)}"
            )
        self.specs = {role: (per_role or {}).get(role, default) for role in ROLES}
        for role, spec in self.specs.items():
            if not isinstance(spec, BaseChatModel):
                _check_spec(role, spec)
                split_spec(spec)

    def spec(self, role: str, context: Context) -> ModelSpec:
        return getattr(context, f"{role}_model") or self.specs[role]

    def model(self, role: str, context: Context) -> BaseChatModel:
        spec = self.spec(role, context)
        if isinstance(spec, BaseChatModel):
            return spec
        limits = limits_for(role, context)
        return _resolved(split_spec(spec)[0], limits.timeout, limits.max_tokens)

    def configured(self, role: str, context: Context) -> bool:
        """Whether a model was chosen for the role: in the run's context (any, the offline one
        too), or in the graph as an object or a string other than the offline default."""
        if getattr(context, f"{role}_model"):
            return True
        spec = self.specs[role]
        return isinstance(spec, BaseChatModel) or split_spec(spec)[0] != "offline"

    def profile(
        self, role: str, context: Context, state: Mapping[str, Any] | None = None
    ) -> CallProfile:
        """How this role's calls are made in this run; with ``state``, bounded by the run's
        time and token budgets too."""
        spec = self.spec(role, context)
        method = (context.structured_output or {}).get(role)
        if method is None and isinstance(spec, str):
            method = split_spec(spec)[1]
        started = (state or {}).get("started_at") or 0.0
        deadline = (
            started + context.budget_seconds
            if state and context.budget_seconds and started
            else ambient_deadline()
        )
        return CallProfile(
            role=role,
            method=method,
            limits=limits_for(role, context),
            deadline=deadline,
            token_limit=context.budget_tokens if state else None,
            tokens_before=sum(((state or {}).get("tokens") or {}).values()),
            prompts=self.prompts,
            run_id=str((state or {}).get("run_id") or ""),
        )

    def labels(self, context: Context) -> dict[str, str]:
        """Role -> a name for the model that plays it this run (metrics group tokens by it)."""
        return {
            role: model_label(getattr(context, f"{role}_model") or spec)
            for role, spec in self.specs.items()
        }


def limits_for(role: str, context: Context) -> Limits:
    own = (context.role_limits or {}).get(role, {})
    return Limits(
        timeout=float(own.get("timeout", context.request_timeout)),
        max_tokens=int(
            own.get(
                "max_tokens",
                context.max_output_tokens or DEFAULT_MAX_TOKENS.get(role, OTHER_MAX_TOKENS),
            )
        ),
        retries=int(own.get("retries", context.provider_retries)),
        backoff=context.retry_backoff,
    )


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
def _resolved(spec: str, timeout: float, max_tokens: int) -> BaseChatModel:
    return resolve_model(spec, timeout=timeout, max_tokens=max_tokens)

"""The data policy: what to look for, what to do with it, who may handle each classification.

A YAML file (``default_policy.yaml`` beside this module is the default and documents the format),
read into pydantic models so a bad file is refused with the field that is wrong."""

from __future__ import annotations

import fnmatch
import os
import re
from functools import cache
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator_graph.errors import InputError
from orchestrator_graph.models import Classification

POLICY_ENV = "ORCHESTRATOR_GRAPH_POLICY"
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")
PERSONAL_KINDS = ("email", "phone", "ssn", "card", "iban")
CLASSIFICATIONS = get_args(Classification)
Action = Literal["redact", "mask", "refuse"]


class Detectors(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secrets: list[str] = Field(default_factory=list, description="detect-secrets plugin names")
    personal: list[Literal["email", "phone", "ssn", "card", "iban"]] = Field(default_factory=list)
    patterns: dict[str, str] = Field(default_factory=dict, description="kind -> regex")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {kind!r} is not a regular expression: {error}") from None
        return value


class Handlers(BaseModel):
    """Who may handle a classification: fnmatch patterns of models and regions."""

    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(default_factory=lambda: ["*"])
    regions: list[str] = Field(default_factory=lambda: ["*"])

    def allows_model(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def allows_region(self, region: str) -> bool:
        return any(fnmatch.fnmatchcase(region, p) for p in self.regions)


class ClassificationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Classification = "internal"
    levels: dict[Classification, Handlers] = Field(
        default_factory=lambda: {c: Handlers() for c in CLASSIFICATIONS}
    )

    def handlers(self, level: str) -> Handlers:
        return self.levels.get(level, Handlers())  # type: ignore[call-overload]


_REDACT: Action = "redact"


class DataPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    detectors: Detectors = Field(default_factory=Detectors)
    actions: dict[str, Action] = Field(default_factory=lambda: {"default": _REDACT})
    classification: ClassificationRules = Field(default_factory=ClassificationRules)
    source: str = Field("", exclude=True, description="the file it was read from")

    def action(self, kind: str) -> Action:
        return self.actions.get(kind) or self.actions.get("default") or "redact"


def load_policy(path: str | os.PathLike[str] | None = None) -> DataPolicy:
    """The policy at ``path``, else the file named by ``ORCHESTRATOR_GRAPH_POLICY``, else the
    default; a file that cannot be read or does not fit the format is refused in one line."""
    return _load(str(path or os.environ.get(POLICY_ENV) or DEFAULT_POLICY))


@cache
def _load(given: str) -> DataPolicy:
    path = str(Path(given).expanduser().resolve())
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"data policy {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise InputError(f"data policy {path}: not YAML ({' '.join(str(error).split())})") from None
    if not isinstance(data, dict):
        raise InputError(f"data policy {path}: expected a mapping at the top level")
    try:
        policy = DataPolicy.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InputError(f"data policy {path}: {where}: {first['msg']}") from None
    _check_plugins(path, policy.detectors.secrets)
    return policy.model_copy(update={"source": path})


def _check_plugins(path: str, names: list[str]) -> None:
    from orchestrator_graph.protection.detect import secret_plugins

    known = secret_plugins()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"data policy {path}: detectors.secrets: unknown detect-secrets plugins "
            f"{', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )

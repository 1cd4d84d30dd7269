"""Every structured-output schema the package sends is valid for OpenAI strict mode, Anthropic
tool schemas and Gemini function declarations; the drafts convert to the domain models."""

from __future__ import annotations

from typing import Any

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel
from schema_rules import all_rules

from orchestrator_graph.models import Task
from orchestrator_graph.schemas import STRUCTURED_OUTPUTS, MergedAnswer, PlanDraft, TaskDraft

CLEAN = {"openai": [], "anthropic": [], "gemini": []}


@pytest.mark.parametrize("schema", STRUCTURED_OUTPUTS, ids=lambda s: s.__name__)
def test_the_sdk_strict_schema_meets_every_providers_rules(schema):
    assert all_rules(to_strict_json_schema(schema)) == CLEAN


@pytest.mark.parametrize("schema", STRUCTURED_OUTPUTS, ids=lambda s: s.__name__)
def test_the_schema_as_sent_meets_every_providers_rules(schema):
    from orchestrator_graph.llm import sent_schema

    assert all_rules(sent_schema(schema)) == CLEAN


def test_the_rules_catch_what_providers_refuse():
    class Free(BaseModel):
        inputs: dict[str, Any]
        effort: float = 1.0

    found = all_rules(to_strict_json_schema(Free))
    assert "$.inputs: object without additionalProperties: false" in found["openai"]
    assert "$.inputs: free-form object (no properties)" in found["openai"]
    assert "$.effort: keywords strict mode does not permit: ['default']" in found["openai"]
    assert "$.inputs: object without properties" in found["gemini"]
    # the domain Task itself (what the planner used to fill) is refused
    assert all_rules(to_strict_json_schema(Task))["openai"]


def test_a_task_draft_converts_to_the_domain_task_and_accepts_the_old_dict_form():
    draft = TaskDraft.model_validate(
        {
            "id": "a",
            "title": "A",
            "skills": ["analysis"],
            "inputs": [{"name": "group_by", "value": "region"}, {"name": "n", "value": "3"}],
            "min_levels": {"analysis": 0.5},
            "priority_votes": [{"stakeholder": "cfo", "priority": 5}],
            "acceptance": [{"kind": "schema", "field": "x", "json_schema": {"type": "object"}}],
            "simplified": {"inputs": {"sample": 10}, "effort": 1, "note": "sample"},
        }
    )
    task = draft.to_task()
    assert task.inputs == {"group_by": "region", "n": 3}
    assert task.min_levels == {"analysis": 0.5} and task.priority_votes == {"cfo": 5}
    assert task.acceptance[0].json_schema == {"type": "object"}
    assert task.simplified is not None and task.simplified.inputs == {"sample": 10}


def test_an_out_of_range_value_is_named_for_the_re_ask():
    plan = PlanDraft.model_validate(
        {"goal": "g", "tasks": [{"id": "t", "title": "T", "skills": ["x"], "priority": 9}]}
    )
    with pytest.raises(ValueError, match="task 't': .*priority"):
        plan.to_plan()
    with pytest.raises(ValueError, match="JSON object"):
        MergedAnswer(output="[1]", reason="r").merged()


def test_every_schema_the_package_asks_for_is_in_the_registry():
    """Each ``ask_structured(model, Schema, ...)`` in the package names a registered schema."""
    import ast

    from test_structure import package_modules

    asked = set()
    for tree in package_modules().values():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ask_structured"
                and len(node.args) > 1
            ):
                asked.add(ast.unparse(node.args[1]))
    assert asked and asked <= {s.__name__ for s in STRUCTURED_OUTPUTS}, asked

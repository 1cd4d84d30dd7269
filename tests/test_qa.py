"""Quality gates: every code-checkable criterion, the rubric's veto, policies and thresholds."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from orchestrator_graph import Context, OfflineChatModel, Task, TaskResult
from orchestrator_graph.models import Criterion
from orchestrator_graph.qa import check_criterion, review_result

UPSTREAM = {"process": {"rows": [{"a": 1}, {"a": 2}, {"a": 3}], "total": 60.5}}


def check(output: Any, **criterion):
    return check_criterion(Criterion(**criterion), output, UPSTREAM)


@pytest.mark.parametrize(
    ("output", "criterion", "passes", "detail"),
    [
        (
            {"n": 3, "label": "ok"},
            {
                "kind": "schema",
                "json_schema": {
                    "type": "object",
                    "required": ["n", "label"],
                    "properties": {"n": {"type": "integer"}, "label": {"type": "string"}},
                },
            },
            True,
            "",
        ),
        (
            {"n": "three"},
            {
                "kind": "schema",
                "json_schema": {
                    "type": "object",
                    "required": ["n", "label"],
                    "properties": {"n": {"type": "integer"}},
                },
            },
            False,
            "'label' is a required property",
        ),
        (
            {"date": "2026-11-24"},
            {"kind": "matches", "field": "date", "pattern": r"\d{4}-\d\d-\d\d"},
            True,
            "",
        ),
        (
            {"date": "24/11/2026"},
            {"kind": "matches", "field": "date", "pattern": r"\d{4}-\d\d-\d\d"},
            False,
            "does not match",
        ),
        (
            {"md": "# Report\n## Findings\ntext\n## Risks\n"},
            {"kind": "sections", "field": "md", "keys": ["Findings", "Risks"]},
            True,
            "",
        ),
        (
            {"md": "# Report\n## Findings\n"},
            {"kind": "sections", "field": "md", "keys": ["Findings", "Risks"]},
            False,
            "['Risks']",
        ),
        ({"md": "based on process"}, {"kind": "references_upstream", "field": "md"}, True, ""),
        (
            {"md": "based on nothing"},
            {"kind": "references_upstream", "field": "md"},
            False,
            "['process']",
        ),
        (
            {"count": 3},
            {
                "kind": "matches_upstream",
                "field": "count",
                "task": "process",
                "upstream_field": "rows#len",
            },
            True,
            "",
        ),
        (
            {"stats": {"total": 61.0}},
            {
                "kind": "matches_upstream",
                "field": "stats.total",
                "task": "process",
                "upstream_field": "total",
            },
            False,
            "stats.total=61.0 but process.total=60.5",
        ),
        (
            {"count": 3},
            {"kind": "number_range", "field": "missing.path", "value": 0},
            False,
            "'missing'",
        ),
    ],
)
def test_code_checkable_criteria(output, criterion, passes, detail):
    result = check(output, **criterion)
    assert result.passed is passes, result.detail
    assert detail in result.detail


def test_free_text_criteria_are_left_to_the_rubric():
    assert check({"x": 1}, kind="text", description="reads well") is None


class Reviewer(OfflineChatModel):
    answer: dict[str, Any] = {}

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        call = {"name": "RubricReview", "args": self.answer, "id": "r1"}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))]
        )


TASK = Task(
    id="t",
    title="t",
    skills=["s"],
    acceptance=[
        {"kind": "has_keys", "keys": ["value"]},
        {"kind": "text", "description": "sensible"},
    ],
)
RESULT = TaskResult(task_id="t", attempt=1, worker="w", output={"value": 1})


async def review(answer: dict, policy: str = "standard", context: Context | None = None):
    context = context or Context()
    return await review_result(
        TASK,
        RESULT,
        policy=policy,
        threshold=context.threshold(policy),
        mode="auto",
        reviewer=Reviewer(answer=answer),
    )


async def test_a_rubric_rejection_stands_whatever_the_average():
    verdict = await review({"score": 0.9, "verdict": "reject", "reasons": ["wrong units"]})
    assert (
        verdict.verdict == "reject" and verdict.score == 0.95 and verdict.feedback == "wrong units"
    )


async def test_policies_and_configurable_thresholds():
    mild = {"score": 0.6, "verdict": "approve", "reasons": []}  # averaged with gates: 0.8
    assert (await review(mild, "standard")).verdict == "approve"
    strict = await review(mild, "strict")
    assert strict.verdict == "reject" and "below the strict threshold 0.9" in strict.feedback
    tuned = Context(qa_thresholds={"standard": 0.85})
    assert (await review(mild, "standard", tuned)).verdict == "reject"


async def test_the_plan_gate_records_checks_and_can_reject(tmp_path):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from orchestrator_graph import Plan, PlanRejectedError, create_orchestrator
    from orchestrator_graph.cli import EXAMPLE

    calls: list[str] = []

    class PlanCritic(OfflineChatModel):
        verdict: str = "reject"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
            name = kwargs["tools"][0]["function"]["name"]
            calls.append(name)
            prompt = "\n".join(str(m.content) for m in messages)
            args = (
                {"score": 0.2, "verdict": self.verdict, "reasons": ["no report of errors"]}
                if name == "RubricReview"
                else self.responders[name](prompt, {})
            )
            call = {"name": name, "args": args, "id": "c"}
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))]
            )

    store = InMemoryStore()
    graph = create_orchestrator(model=PlanCritic()).compile(
        checkpointer=InMemorySaver(), store=store
    )
    config = {"configurable": {"thread_id": "g"}}
    with pytest.raises(PlanRejectedError, match="rejected the model plan: no report of errors"):
        await graph.ainvoke(
            {"request": EXAMPLE}, config, context={"plan_review": True, "use_memory": False}
        )
    assert calls == ["PlanDraft", "RubricReview", "PlanDraft", "RubricReview"]  # one re-plan
    assert await store.asearch(("orchestrator_graph", "runs"), limit=5) == []  # nothing ran

    # without plan_review the gate still records what code can check, and does not block
    loose = Plan(deadline=0.5, tasks=[Task(id="t", title="t", skills=["reporting"], effort=2)])
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    await graph.ainvoke(
        {"request": "r", "plan": loose.model_dump()},
        {"configurable": {"thread_id": "h"}},
        context={"use_memory": False, "output_dir": str(tmp_path)},
        interrupt_before=["dispatcher"],
    )
    gate = (await graph.aget_state({"configurable": {"thread_id": "h"}})).values["plan_review"]
    failed = {c["name"]: c["detail"] for c in gate["checks"] if not c["passed"]}
    assert set(failed) == {"checkable_criteria", "deadline"} and gate["verdict"] == "approve"
    assert "critical path 2s exceeds the deadline 0.5s" in failed["deadline"]
